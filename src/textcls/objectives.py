"""What the torch families minimise: cross-entropy with optional class weights, on each text's logits,
pooled over its windows under `--long-text chunk`. Both training loops (the own loop in
`models/neural.py` and the pretrained family's `Trainer`) call the same `Objective`.

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


@dataclass(frozen=True)
class Objective:
    """A loss over text logits: `class_weights` (classes,) or None, `pooling` of window logits (mean or max)."""

    class_weights: torch.Tensor | None = None
    pooling: str = "mean"

    @classmethod
    def of(cls, class_weights: np.ndarray | None, pooling: str = "mean") -> Objective:
        weights = None if class_weights is None else torch.as_tensor(class_weights, dtype=torch.float32)
        return cls(weights, pooling)

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy of (texts, classes) fp32 logits; weighted, it is the weighted mean, as torch's."""
        weights = None if self.class_weights is None else self.class_weights.to(logits.device)
        return F.cross_entropy(logits.float(), labels, weight=weights)

    def pool(self, window_logits: torch.Tensor, window_owner: torch.Tensor | None, texts: int) -> torch.Tensor:
        """(windows, classes) -> (texts, classes): each text's windows' mean or max; as is without an owner map."""
        if window_owner is None:
            return window_logits
        index = window_owner.to(window_logits.device)[:, None].expand_as(window_logits)
        empty = window_logits.new_zeros((texts, window_logits.shape[1]))
        reduce = "amax" if self.pooling == "max" else "mean"
        return empty.scatter_reduce(0, index, window_logits, reduce=reduce, include_self=False)

    def text_loss(self, window_logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(loss, text logits) of a batch from the engine's `TokenizedRows`."""
        logits = self.pool(window_logits, batch.get("window_owner"), len(batch["labels"]))
        return self.loss(logits, batch["labels"]), logits
