"""Training on a CPU without the cost of PyTorch's dropout masks there (measured by
`benchmarks/cpu_step.py`: MiniLM's bare training step, batch 32, bf16).

`nn.Dropout` draws its mask with `bernoulli_`: one draw of the Mersenne Twister per element, in one
thread. On MiniLM's step that, with SDPA drawing the same masks for the attention maps, is about a fifth
of the time. `fast_dropout` draws 16 random bits per element, four to each 64-bit draw of the same
generator, and compares them with a threshold: the same distribution (p to within 1/65,536), seeded,
saved and restored with torch's own RNG state. `FastDropout` is `nn.Dropout` with it; `eager_attention`
is transformers' eager attention for BERT-like models with it on the (batch, heads, seq, seq) maps,
registered with transformers' `AttentionInterface` (and eager's mask function with
`AttentionMaskInterface`, without which transformers builds no padding mask for a kernel it does not know).

`lean_cpu_training(model)` applies both around a training run on a CPU and undoes them after: the model
that comes out has its own modules and attention kernel again. Elsewhere it changes nothing.

Example:
    >>> with lean_cpu_training(model) as changes:  # doctest: +SKIP
    ...     trainer.train()
    >>> changes                                     # doctest: +SKIP
    ['dropout masks drawn 16 bits at a time (8 modules)', 'eager attention with that dropout (instead of sdpa)']
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

log = logging.getLogger(__name__)

MASK_LEVELS = 65_536  # each element's mask compares 16 random bits with a threshold
ATTENTION = "textcls_eager"  # the name `eager_attention` is registered under with transformers
# Model types (config.model_type) whose modeling module calls transformers' attention interface with
# exactly BERT's `eager_attention_forward` (checked against the installed transformers by
# tests/unit/test_cpu_speed.py), so `eager_attention` stands in for it unchanged.
BERT_ATTENTION_TYPES = frozenset({"bert", "roberta", "xlm-roberta", "camembert", "distilbert", "electra"})


# ---- dropout --------------------------------------------------------------------------------
def fast_dropout(x: torch.Tensor, p: float, training: bool = True) -> torch.Tensor:
    """`nn.functional.dropout(x, p, training)` in distribution, its mask about 3x cheaper to draw on a CPU.

    p is rounded to a multiple of 1/65,536 (0.1 becomes 0.100006) and kept elements are scaled by the
    inverse of that keep rate, in one rounding as `nn.functional.dropout` does, so the expectation is x.
    Off a CPU, or for p outside (0, 1) after rounding, it is `nn.functional.dropout` itself.

    Example:
        >>> fast_dropout(torch.ones(4), 0.5, training=False).tolist()
        [1.0, 1.0, 1.0, 1.0]
    """
    if not training or p == 0.0:
        return x
    dropped = round(p * MASK_LEVELS)  # of the 65,536 values 16 bits take
    if x.device.type != "cpu" or not 0 < dropped < MASK_LEVELS:
        return nn.functional.dropout(x, p, training)
    count = x.numel()
    # (count / 4,) 64-bit draws, read as (count,) 16-bit lanes uniform over [-32768, 32767]
    draws = torch.randint(-(2**63), 2**63 - 1, ((count + 3) // 4,), dtype=torch.int64)
    lanes = draws.view(torch.int16)[:count].view(x.shape)
    keep = lanes >= dropped - MASK_LEVELS // 2
    # x * {0, 1} is exact; the scale comes last so it is rounded once, in x's dtype
    return x * keep.to(x.dtype) * (MASK_LEVELS / (MASK_LEVELS - dropped))


class FastDropout(nn.Dropout):
    """`nn.Dropout` whose mask `fast_dropout` draws (in place: `nn.Dropout`'s own)."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if self.inplace:
            return super().forward(input)
        return fast_dropout(input, self.p, self.training)


def eager_attention(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float | None = None,
    dropout: float = 0.0,
    **kwargs: Any,
) -> tuple[torch.Tensor, torch.Tensor]:
    """transformers' `eager_attention_forward` of BERT-like models, its attention-map dropout `fast_dropout`.
    query, key, value: (batch, heads, seq, head size); the mask is additive, (batch, 1, seq, seq)."""
    if scaling is None:
        scaling = query.size(-1) ** -0.5
    weights = torch.matmul(query, key.transpose(2, 3)) * scaling  # (batch, heads, seq, seq)
    if attention_mask is not None:
        weights = weights + attention_mask
    weights = nn.functional.softmax(weights, dim=-1)
    weights = fast_dropout(weights, dropout, module.training)
    output = torch.matmul(weights, value).transpose(1, 2).contiguous()  # (batch, seq, heads, head size)
    return output, weights


@functools.cache
def register_attention() -> str:
    """Register `eager_attention` (and eager's padding mask) with transformers, once; its name."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, eager_mask

    AttentionInterface.register(ATTENTION, eager_attention)
    AttentionMaskInterface.register(ATTENTION, eager_mask)
    return ATTENTION


@contextlib.contextmanager
def fast_dropout_in(model: nn.Module) -> Iterator[list[str]]:
    """Every `nn.Dropout` of `model` a `FastDropout`, and a BERT-like transformers model's attention
    `eager_attention`, until the block ends; yields what was changed, in words."""
    swapped = [
        (parent, name, child)
        for parent in model.modules()
        for name, child in parent.named_children()
        if type(child) is nn.Dropout and not child.inplace
    ]
    for parent, name, child in swapped:
        fast = FastDropout(child.p)
        fast.train(child.training)
        setattr(parent, name, fast)
    changes = [f"dropout masks drawn 16 bits at a time ({len(swapped)} modules)"] if swapped else []
    config = getattr(model, "config", None)
    kernel = getattr(config, "_attn_implementation", None)
    # transformers models can switch their attention; only a BERT-like eager or sdpa one is switched
    set_kernel = getattr(model, "set_attn_implementation", None)
    if getattr(config, "model_type", None) not in BERT_ATTENTION_TYPES or kernel not in ("eager", "sdpa"):
        set_kernel = None
    try:
        if set_kernel is not None:
            set_kernel(register_attention())
            changes.append(f"eager attention with that dropout (instead of {kernel})")
        yield changes
    finally:
        if set_kernel is not None:
            set_kernel(kernel)
        for parent, name, child in swapped:
            child.train(getattr(parent, name).training)
            setattr(parent, name, child)


# ---- around training ----------------------------------------------------------------------
@contextlib.contextmanager
def lean_cpu_training(model: nn.Module) -> Iterator[list[str]]:
    """`fast_dropout_in(model)` while a CPU trains `model`; yields what was changed (nothing for a model
    whose parameters are not on a CPU)."""
    parameter = next(model.parameters(), None)
    if parameter is None or parameter.device.type != "cpu":
        yield []
        return
    with fast_dropout_in(model) as changes:
        if changes:
            log.info("training on a CPU: %s", "; ".join(changes))
        yield changes
