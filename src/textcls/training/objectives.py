"""What the torch families minimise: cross-entropy with optional class weights, or for `--multi-label`
binary cross-entropy of each label's sigmoid, on each text's logits, pooled over its windows under
`--long-text chunk`; for `textcls distill`, a teacher's temperature-scaled soft targets plus the hard
labels' cross-entropy. Both training loops (the own loop in `models/neural.py` and the pretrained
family's `Trainer`) call the same `Objective`.

Example:
    >>> objective = Objective(class_weights=torch.tensor([1.0, 4.0]))
    >>> logits = torch.tensor([[2.0, 0.0], [0.0, 2.0]])
    >>> round(objective.loss(logits, torch.tensor([0, 1])).item(), 4)
    0.1269
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from textcls.data.loading import Split


def probabilities(logits: np.ndarray, multi_label: bool) -> np.ndarray:
    """What the loss makes of (texts, classes) logits, as numpy: a softmax over the classes, or for multi-label
    each label's own sigmoid (every backend applies this after the model or graph, so both match training).

    Example:
        >>> probabilities(np.array([[0.0, 0.0]], dtype=np.float32), multi_label=True).tolist()
        [[0.5, 0.5]]
    """
    scores = torch.from_numpy(np.ascontiguousarray(logits, dtype=np.float32))
    return (torch.sigmoid(scores) if multi_label else torch.softmax(scores, dim=-1)).numpy()


@dataclass(frozen=True)
class Distillation:
    """Knowledge distillation's loss settings: the `temperature` both softmaxes are read at, and `alpha`, the
    weight of the hard labels' cross-entropy (the soft targets' term weighs 1 - alpha)."""

    temperature: float = 2.0
    alpha: float = 0.5


def distillation_of(split: Split) -> Distillation | None:
    """The distillation settings a training split carries (`textcls distill`), or None."""
    targets = split.soft_targets
    return None if targets is None else Distillation(targets.temperature, targets.alpha)


def soft_target_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """KL(teacher || student) of softmax(logits / T), the mean over texts, times T^2 (so its gradients keep
    their size as T changes). Both (texts, classes); teacher log-probabilities serve as well as its logits.

    Example:
        >>> same = torch.tensor([[1.0, 0.0]])
        >>> soft_target_loss(same, same, temperature=2.0).item()
        0.0
    """
    student = F.log_softmax(student_logits.float() / temperature, dim=-1)
    teacher = F.log_softmax(teacher_logits.float() / temperature, dim=-1)
    return F.kl_div(student, teacher, reduction="batchmean", log_target=True) * temperature**2


@dataclass(frozen=True)
class Objective:
    """A loss over text logits: `class_weights` (classes,) or None, `pooling` of window logits (mean or max),
    and `multi_label`: labels are (texts, labels) 0/1 and each label is its own sigmoid (no class weights).

    With `distillation`, training labels are (texts, 1 + classes) float32 (`data.loading.SoftTargets.targets`):
    column 0 the hard label, -1 for a text without one, then the teacher's logits; 1-D labels (dev) still
    get the plain cross-entropy."""

    class_weights: torch.Tensor | None = None
    pooling: str = "mean"
    multi_label: bool = False
    distillation: Distillation | None = None

    @classmethod
    def of(
        cls,
        class_weights: np.ndarray | None,
        pooling: str = "mean",
        multi_label: bool = False,
        distillation: Distillation | None = None,
    ) -> Objective:
        weights = None if class_weights is None else torch.as_tensor(class_weights, dtype=torch.float32)
        return cls(weights, pooling, multi_label, distillation)

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy of (texts, classes) fp32 logits; weighted, it is the weighted mean, as torch's.
        Multi-label: binary cross-entropy with logits, the mean over texts and labels. Distilling: see
        `distillation_loss`."""
        if self.distillation is not None and labels.ndim == 2:
            return self.distillation_loss(logits, labels, self.distillation)
        if self.multi_label:
            return F.binary_cross_entropy_with_logits(logits.float(), labels.float())
        weights = None if self.class_weights is None else self.class_weights.to(logits.device)
        return F.cross_entropy(logits.float(), labels, weight=weights)

    def distillation_loss(self, logits: torch.Tensor, targets: torch.Tensor, settings: Distillation) -> torch.Tensor:
        """(1 - alpha) x the soft-target loss over every text + alpha x the (class-weighted) cross-entropy of
        the texts with a hard label, their mean (0 in a batch without one)."""
        hard, teacher_logits = targets[:, 0].long(), targets[:, 1:]
        soft = soft_target_loss(logits, teacher_logits, settings.temperature)
        labelled = (hard >= 0).float()  # (texts,)
        known = hard.clamp(min=0)
        each = F.cross_entropy(logits.float(), known, reduction="none")  # (texts,)
        weight = labelled if self.class_weights is None else labelled * self.class_weights.to(logits.device)[known]
        hard_loss = (each * weight).sum() / weight.sum().clamp(min=1e-12)
        return (1.0 - settings.alpha) * soft + settings.alpha * hard_loss

    def pool(self, window_logits: torch.Tensor, window_owner: torch.Tensor | None, texts: int) -> torch.Tensor:
        """(windows, classes) -> (texts, classes): each text's windows' mean or max; as is without an owner map."""
        if window_owner is None:
            return window_logits
        index = window_owner.to(window_logits.device)[:, None].expand_as(window_logits)
        empty = window_logits.new_zeros((texts, window_logits.shape[1]))
        reduce = "amax" if self.pooling == "max" else "mean"
        return empty.scatter_reduce(0, index, window_logits, reduce=reduce, include_self=False)

    def text_loss(
        self, window_logits: torch.Tensor, batch: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(loss, text logits) of a batch from the engine's `TokenizedRows`."""
        logits = self.pool(window_logits, batch.get("window_owner"), len(batch["labels"]))
        return self.loss(logits, batch["labels"]), logits
