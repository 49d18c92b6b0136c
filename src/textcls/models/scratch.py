"""A small transformer encoder trained from scratch, written from torch.nn building blocks.

Reads top to bottom as "Attention Is All You Need" describes the encoder, with pre-LayerNorm blocks:

    x = embedding(ids) * sqrt(d_model) + sinusoidal positions
    for each block:  x = x + dropout(self_attention(layer_norm(x)))
                     x = x + dropout(feed_forward(layer_norm(x)))
    logits = head(dropout(masked mean over the real tokens of layer_norm(x)))

Self-attention is the explicit softmax(QKᵀ/√d_head)V, so the attention maps come back with the
logits: (batch, layers, heads, seq, seq), every row a distribution with exactly 0 on padded keys.

Example:
    >>> model = ScratchTransformerModel(vocab_size=30522, num_labels=4, d_model=64, num_heads=4, num_layers=2)
    >>> input_ids, attention_mask = pad_batch([[101, 7592, 102], [101, 102]])
    >>> logits, maps = model(input_ids, attention_mask)
    >>> logits.shape, maps.shape
    (torch.Size([2, 4]), torch.Size([2, 2, 4, 3, 3]))
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, cast

import numpy as np
import torch
from torch import nn

from textcls.errors import ConfigError
from textcls.models.base import EXPLAIN
from textcls.models.neural import PAD_ID, TokenAttention, TorchClassifier
from textcls.reporting.explanations import Explanation, check_text, from_attention_maps

__all__ = ["ScratchTransformerClassifier", "ScratchTransformerModel", "sinusoidal_positions"]


def sinusoidal_positions(length: int, dim: int) -> torch.Tensor:
    """Fixed encodings (length, dim): PE[p, 2i] = sin(p / 10000^(2i/dim)), PE[p, 2i+1] = cos(same).

    Example:
        >>> sinusoidal_positions(2, 4)[1].tolist()  # [sin 1, cos 1, sin 0.01, cos 0.01]  # doctest: +ELLIPSIS
        [0.841..., 0.540..., 0.0099..., 0.9999...]
    """
    position = torch.arange(length, dtype=torch.float32)[:, None]  # (length, 1)
    frequency = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))  # (dim/2,)
    table = torch.zeros(length, dim)
    table[:, 0::2] = torch.sin(position * frequency)
    table[:, 1::2] = torch.cos(position * frequency[: dim // 2])  # an odd dim has one cosine fewer
    return table


class MultiHeadSelfAttention(nn.Module):
    """softmax(QKᵀ/√d_head + mask) V in `num_heads` heads; also returns the weights."""

    def __init__(self, d_model: int, num_heads: int):
        super().__init__()
        if d_model % num_heads:
            raise ConfigError(
                f"d_model: expected a multiple of num_heads ({num_heads}), found {d_model}; change either"
            )
        self.num_heads = num_heads
        self.qkv = nn.Linear(d_model, 3 * d_model)  # the Q, K and V projections in one matrix multiply
        self.out = nn.Linear(d_model, d_model)

    def forward(self, x: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        batch, seq, d_model = x.shape
        head_dim = d_model // self.num_heads
        q, k, v = self.qkv(x).split(d_model, dim=-1)  # (batch, seq, d_model) each
        # (batch, heads, seq, head_dim) each
        q, k, v = (t.view(batch, seq, self.num_heads, head_dim).transpose(1, 2) for t in (q, k, v))
        scores = q @ k.transpose(-2, -1) / math.sqrt(head_dim)  # (batch, heads, seq, seq)
        # padded keys -> -inf before the softmax: exactly 0 weight; every query row keeps [CLS] at least
        padded_keys = attention_mask[:, None, None, :] == 0  # (batch, 1, 1, seq)
        weights = torch.softmax(
            scores.float().masked_fill(padded_keys, float("-inf")), dim=-1
        )  # (batch, heads, seq, seq)
        context = weights.to(v.dtype) @ v  # (batch, heads, seq, head_dim)
        context = context.transpose(1, 2).reshape(batch, seq, d_model)  # (batch, seq, d_model)
        return self.out(context), weights


class FeedForward(nn.Module):
    """Position-wise d_model -> ff_dim -> d_model with GELU."""

    def __init__(self, d_model: int, ff_dim: int):
        super().__init__()
        self.up = nn.Linear(d_model, ff_dim)
        self.down = nn.Linear(ff_dim, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(nn.functional.gelu(self.up(x)))


class EncoderBlock(nn.Module):
    """Pre-LayerNorm block: x + dropout(attention(LN(x))), then x + dropout(feed_forward(LN(x)))."""

    def __init__(self, d_model: int, num_heads: int, ff_dim: int, dropout: float):
        super().__init__()
        self.attention_norm = nn.LayerNorm(d_model)
        self.attention = MultiHeadSelfAttention(d_model, num_heads)
        self.feed_forward_norm = nn.LayerNorm(d_model)
        self.feed_forward = FeedForward(d_model, ff_dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        attended, weights = self.attention(self.attention_norm(x), attention_mask)  # (batch, seq, d_model)
        x = x + self.dropout(attended)
        x = x + self.dropout(self.feed_forward(self.feed_forward_norm(x)))
        return x, weights  # (batch, seq, d_model), (batch, heads, seq, seq)


class ScratchTransformerModel(nn.Module):
    """Embeddings + sinusoidal positions, `num_layers` encoder blocks, masked mean pooling, linear head."""

    def __init__(
        self,
        vocab_size: int,
        num_labels: int,
        d_model: int = 256,
        num_heads: int = 4,
        num_layers: int = 2,
        ff_dim: int = 1024,
        dropout: float = 0.1,
    ):
        super().__init__()
        self.d_model = d_model
        self.embedding = nn.Embedding(vocab_size, d_model, padding_idx=PAD_ID)
        # std 1/sqrt(d): after the sqrt(d) scaling the embeddings have unit scale, like the encodings
        nn.init.normal_(self.embedding.weight, std=d_model**-0.5)
        with torch.no_grad():
            self.embedding.weight[PAD_ID].zero_()
        self.register_buffer("positions", sinusoidal_positions(512, d_model), persistent=False)
        self.dropout = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(EncoderBlock(d_model, num_heads, ff_dim, dropout) for _ in range(num_layers))
        self.final_norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, num_labels)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        seq = input_ids.shape[1]
        table = cast(torch.Tensor, self.positions)  # a registered buffer: (max_positions, d_model)
        positions = table[:seq] if seq <= len(table) else sinusoidal_positions(seq, self.d_model)
        x = self.embedding(input_ids) * math.sqrt(self.d_model) + positions.to(
            input_ids.device
        )  # (batch, seq, d_model)
        x = self.dropout(x)
        maps = []
        for block in self.blocks:
            x, weights = block(x, attention_mask)
            maps.append(weights)  # (batch, heads, seq, seq)
        x = self.final_norm(x)  # (batch, seq, d_model)
        real = attention_mask[:, :, None].to(x.dtype)  # (batch, seq, 1)
        pooled = (x * real).sum(dim=1) / real.sum(dim=1)  # (batch, d_model), padding left out
        logits = self.head(self.dropout(pooled))  # (batch, classes)
        return logits, torch.stack(maps, dim=1)  # (batch, layers, heads, seq, seq)


class ScratchTransformerClassifier(TorchClassifier):
    """Family "scratch-transformer": a small pre-LayerNorm transformer encoder trained from scratch.

    Example:
        >>> # weights: (layers, heads, tokens, tokens)
        >>> clf.attention(["Stocks fell sharply."])[0].weights.shape  # doctest: +SKIP
        (2, 4, 6, 6)
    """

    family = "scratch-transformer"
    capabilities = TorchClassifier.capabilities | {EXPLAIN}
    bf16_on_cpu = True

    @classmethod
    def default_hparams(cls) -> dict[str, Any]:
        return {"d_model": 256, "num_heads": 4, "num_layers": 2, "ff_dim": 1024, "dropout": 0.1}

    @classmethod
    def build_module(cls, hparams: Mapping[str, Any], vocab_size: int, num_labels: int) -> nn.Module:
        return ScratchTransformerModel(vocab_size, num_labels, **hparams)

    @classmethod
    def describe(cls, hparams: Mapping[str, Any]) -> str:
        return (
            f"scratch-transformer: {hparams['num_layers']} layers, d_model {hparams['d_model']}, "
            f"{hparams['num_heads']} heads, ff {hparams['ff_dim']}"
        )

    def attention(self, texts: str | Sequence[str]) -> list[TokenAttention]:
        """Per text, its tokens and attention maps (layers, heads, tokens, tokens), rows summing to 1."""
        return self._token_attention(texts)

    def explain(self, text: str, layer: int = -1, head: int | None = None) -> Explanation:
        """Every layer's attention maps for `text`; `layer`/`head` pick the one whose [CLS] row is shown."""
        (token_attention,) = self.attention([check_text(text)])
        maps = np.asarray(token_attention.weights, dtype=np.float32)  # (layers, heads, tokens, tokens)
        return from_attention_maps(
            text, self.family, self.label_names, self.predict_proba([text]), token_attention.tokens, maps, layer, head
        )
