"""LSTM text classifiers: a bidirectional LSTM over WordPiece embeddings, pooled two ways.

- `lstm`: the LSTM's states, max-pooled over the real tokens of each text, feed a linear head.
- `lstm-attention`: additive (Bahdanau) attention pools the states instead,
  score_i = vᵀ tanh(W h_i + b), α = softmax over the real tokens, context = Σ α_i h_i,
  and the weights α come back with the logits so they can be plotted.

Padded batches are packed (`pack_padded_sequence`), so padding never enters the recurrence and a
text's output does not depend on what it is batched with.

Example:
    >>> model = AttentionLSTMModel(vocab_size=30522, num_labels=4)
    >>> input_ids, attention_mask = pad_batch([[101, 7592, 102], [101, 102]])
    >>> logits, weights = model(input_ids, attention_mask)
    >>> logits.shape, weights.shape
    (torch.Size([2, 4]), torch.Size([2, 3]))
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from textcls.models.base import EXPLAIN
from textcls.models.neural import PAD_ID, TokenAttention, TorchClassifier
from textcls.reporting.explanations import Explanation, check_text, from_token_weights

__all__ = ["AttentionLSTMClassifier", "AttentionLSTMModel", "LSTMClassifier", "LSTMModel"]


class BiLSTMEncoder(nn.Module):
    """Token ids -> bidirectional LSTM states, zero at padding."""

    def __init__(self, vocab_size: int, embedding_dim: int, hidden_size: int, dropout: float):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=PAD_ID)
        self.dropout = nn.Dropout(dropout)
        self.lstm = nn.LSTM(embedding_dim, hidden_size, batch_first=True, bidirectional=True)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        lengths = attention_mask.sum(dim=1).cpu()  # (batch,), on the CPU as packing requires
        embedded = self.dropout(self.embedding(input_ids))  # (batch, seq, embedding)
        packed = pack_padded_sequence(embedded, lengths, batch_first=True, enforce_sorted=False)
        packed_states, _ = self.lstm(packed)
        states, _ = pad_packed_sequence(packed_states, batch_first=True, total_length=input_ids.shape[1])
        return states  # (batch, seq, 2 * hidden)


class LSTMModel(nn.Module):
    """BiLSTM, max over the real tokens' states, dropout, linear head; no attention weights."""

    def __init__(
        self, vocab_size: int, num_labels: int, embedding_dim: int = 128, hidden_size: int = 128, dropout: float = 0.3
    ):
        super().__init__()
        self.encoder = BiLSTMEncoder(vocab_size, embedding_dim, hidden_size, dropout)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(2 * hidden_size, num_labels)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, None]:
        states = self.encoder(input_ids, attention_mask)  # (batch, seq, 2 * hidden)
        padding = attention_mask[:, :, None] == 0  # (batch, seq, 1)
        pooled = states.masked_fill(padding, float("-inf")).max(dim=1).values  # (batch, 2 * hidden)
        return self.head(self.dropout(pooled)), None  # (batch, classes)


class AdditiveAttention(nn.Module):
    """Bahdanau pooling: α = softmax_i(vᵀ tanh(W h_i + b)) over real tokens, context = Σ α_i h_i."""

    def __init__(self, input_size: int, attention_dim: int):
        super().__init__()
        self.project = nn.Linear(input_size, attention_dim)  # W, b
        self.score = nn.Linear(attention_dim, 1, bias=False)  # v

    def forward(self, states: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        scores = self.score(torch.tanh(self.project(states))).squeeze(-1)  # (batch, seq)
        # -inf before the softmax: padding gets exactly 0 weight and the rest still sums to 1
        scores = scores.masked_fill(attention_mask == 0, float("-inf"))
        weights = torch.softmax(scores.float(), dim=-1)  # (batch, seq)
        context = torch.einsum("bs,bsh->bh", weights.to(states.dtype), states)  # (batch, hidden)
        return context, weights


class AttentionLSTMModel(nn.Module):
    """BiLSTM, additive attention pooling, dropout, linear head; returns the attention weights."""

    def __init__(
        self,
        vocab_size: int,
        num_labels: int,
        embedding_dim: int = 128,
        hidden_size: int = 128,
        attention_dim: int = 128,
        dropout: float = 0.3,
    ):
        super().__init__()
        self.encoder = BiLSTMEncoder(vocab_size, embedding_dim, hidden_size, dropout)
        self.attention = AdditiveAttention(2 * hidden_size, attention_dim)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(2 * hidden_size, num_labels)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        states = self.encoder(input_ids, attention_mask)  # (batch, seq, 2 * hidden)
        context, weights = self.attention(states, attention_mask)  # (batch, 2 * hidden), (batch, seq)
        return self.head(self.dropout(context)), weights  # (batch, classes), (batch, seq)


class LSTMClassifier(TorchClassifier):
    """Family "lstm": a bidirectional LSTM with max pooling, trained from scratch.

    Example:
        >>> config = TrainConfig(family="lstm")  # doctest: +SKIP
        >>> clf, summary = LSTMClassifier.fit(train, dev, label_names, config, Path("ckpt"))  # doctest: +SKIP
    """

    family = "lstm"
    no_explain_reason = "has no attention; use lstm-attention, the same encoder with additive attention pooling"
    # bf16 autocast saved only ~5% per step for these small, overhead-bound LSTM cells on a 2-core CPU:
    # not worth rounding the recurrence, so "auto" trains them in fp32 there.
    bf16_on_cpu = False

    @classmethod
    def default_hparams(cls) -> dict[str, Any]:
        return {"embedding_dim": 128, "hidden_size": 128, "dropout": 0.3}

    @classmethod
    def build_module(cls, hparams: Mapping[str, Any], vocab_size: int, num_labels: int) -> nn.Module:
        return LSTMModel(vocab_size, num_labels, **hparams)

    @classmethod
    def describe(cls, hparams: Mapping[str, Any]) -> str:
        return f"lstm: embedding {hparams['embedding_dim']}, BiLSTM 2x{hparams['hidden_size']}, max pooling"


class AttentionLSTMClassifier(TorchClassifier):
    """Family "lstm-attention": a bidirectional LSTM with additive attention pooling.

    Example:
        >>> clf.attention(["Stocks fell sharply."])[0].weights.shape  # doctest: +SKIP
        (6,)
    """

    family = "lstm-attention"
    capabilities = TorchClassifier.capabilities | {EXPLAIN}
    bf16_on_cpu = False

    @classmethod
    def default_hparams(cls) -> dict[str, Any]:
        return {"embedding_dim": 128, "hidden_size": 128, "attention_dim": 128, "dropout": 0.3}

    @classmethod
    def build_module(cls, hparams: Mapping[str, Any], vocab_size: int, num_labels: int) -> nn.Module:
        return AttentionLSTMModel(vocab_size, num_labels, **hparams)

    @classmethod
    def describe(cls, hparams: Mapping[str, Any]) -> str:
        return (
            f"lstm-attention: embedding {hparams['embedding_dim']}, BiLSTM 2x{hparams['hidden_size']}, "
            f"additive attention {hparams['attention_dim']}"
        )

    def attention(self, texts: str | Sequence[str]) -> list[TokenAttention]:
        """Per text, its tokens and the attention weight of each, shape (tokens,), summing to 1."""
        return self._token_attention(texts)

    def explain(self, text: str, layer: int = -1, head: int | None = None) -> Explanation:
        """The additive-attention weights over the tokens of `text` (`layer`/`head` do not apply)."""
        (token_attention,) = self.attention([check_text(text)])
        weights = np.asarray(token_attention.weights, dtype=np.float32)  # (tokens,)
        return from_token_weights(
            text, self.family, self.label_names, self.predict_proba([text]), token_attention.tokens, weights
        )
