"""Why a model predicted what it did: the `Explanation` value, attention rollout, and the helpers
families use to build one. Each family explains itself (its `explain` method) with what it has:

- transformers (pretrained, scratch-transformer): every layer's attention maps (layers, heads,
  tokens, tokens); `token_weights` is the [CLS] row of one layer (default the last), averaged over
  heads or one head, and `rollout` follows the [CLS] token through all layers (Abnar & Zuidema, 2020);
- additive attention pooling (lstm-attention): its weights over the tokens (tokens,);
- TF-IDF: the n-grams that push hardest towards the predicted label (tf-idf value x coefficient).

A family without such weights does not declare the "explain" capability, and `explain` says so.
Attention shows where a model looked, not why it decided; read it as a hint, not a proof.

Example:
    >>> expl = explain(textcls.load("runs/agnews"), "Stocks fell sharply.")  # doctest: +SKIP
    >>> expl.label, expl.words()[:2]                                        # doctest: +SKIP
    ('Business', [('stocks', 0.41), ('fell', 0.22)])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from textcls.data.texts import is_blank, text_problem
from textcls.errors import DataError, TextclsError

__all__ = ["Explanation", "attention_rollout", "explain"]

SPECIAL_TOKENS = frozenset({"[CLS]", "[SEP]", "[PAD]"})
CONTINUATION = "##"  # WordPiece marks a piece that continues the previous one


@dataclass
class Explanation:
    """One text's prediction and the token weights behind it.

    `token_weights` sums to 1 except for features (`features=True`, tfidf's n-grams), which hold raw
    contribution scores. `attention` is (layers, heads, tokens, tokens) for transformers, (tokens,) for
    attention pooling and None for features; `rollout` is (tokens,) for transformers, else None.
    `layer`/`head` say what `token_weights` shows (head None = mean over heads).
    """

    text: str
    family: str
    label: str
    probs: dict[str, float]
    tokens: list[str]
    token_weights: np.ndarray
    attention: np.ndarray | None = None
    rollout: np.ndarray | None = None
    layer: int | None = None
    head: int | None = None
    # True when `tokens` are features (n-grams) with raw contribution scores, not the text's tokens
    features: bool = False

    def save(self, out_dir: str | Path) -> dict[str, Path]:
        """Write the figures (PNG), an HTML page and the arrays (JSON) into `out_dir`; returns the paths."""
        from textcls.reporting.html import write_explanation

        return write_explanation(self, Path(out_dir))

    def words(self) -> list[tuple[str, float]]:
        """Word pieces merged into words, weights summed, [CLS]/[SEP]/[PAD] dropped, renormalised to sum 1.

        Features (tfidf's n-grams) come back as they are, with their raw contribution scores.

        Example:
            >>> Explanation("", "pretrained", "x", {}, ["[CLS]", "play", "##ing", "[SEP]"],
            ...             np.array([0.4, 0.2, 0.2, 0.2])).words()
            [('playing', 1.0)]
        """
        pairs = [(token, float(weight)) for token, weight in zip(self.tokens, self.token_weights)]
        if self.features:
            return pairs
        merged: list[list[Any]] = []
        for token, weight in pairs:
            if token in SPECIAL_TOKENS:
                continue
            if token.startswith(CONTINUATION) and merged:
                merged[-1][0] += token[len(CONTINUATION) :]
                merged[-1][1] += weight
            else:
                merged.append([token.removeprefix(CONTINUATION) or token, weight])
        total = sum(weight for _, weight in merged)
        scale = 1.0 / total if total > 0 else 0.0
        return [(word, weight * scale) for word, weight in merged]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: arrays become nested lists, and the merged `words` are included."""

        def as_list(array: np.ndarray | None) -> list | None:
            return None if array is None else np.asarray(array, dtype=float).tolist()

        return {
            "text": self.text,
            "family": self.family,
            "label": self.label,
            "probs": {name: float(p) for name, p in self.probs.items()},
            "tokens": list(self.tokens),
            "token_weights": as_list(self.token_weights),
            "attention": as_list(self.attention),
            "rollout": as_list(self.rollout),
            "layer": self.layer,
            "head": self.head,
            "features": self.features,
            "words": [[word, weight] for word, weight in self.words()],
        }


def attention_rollout(attention: np.ndarray) -> np.ndarray:
    """Attention rollout from [CLS] (Abnar & Zuidema, 2020), a distribution over tokens.

    Per layer A = 0.5 * mean over heads + 0.5 * I (the residual path), rows renormalised; the
    layers are multiplied in order (last layer on the left) and the [CLS] row (index 0) returned.

    Example:
        >>> attention_rollout(np.full((1, 1, 2, 2), 0.5)).tolist()  # 0.5 * uniform + 0.5 * identity
        [0.75, 0.25]
    """
    attention = np.asarray(attention, dtype=np.float64)
    if attention.ndim != 4 or attention.shape[-1] != attention.shape[-2]:
        raise TextclsError(
            f"attention_rollout: expected shape (layers, heads, tokens, tokens), found {attention.shape}"
        )
    tokens = attention.shape[-1]
    joint = np.eye(tokens)
    for layer_maps in attention:  # (heads, tokens, tokens)
        mixed = 0.5 * layer_maps.mean(axis=0) + 0.5 * np.eye(tokens)
        mixed /= mixed.sum(axis=-1, keepdims=True)
        joint = mixed @ joint
    return joint[0]


def _check_index(name: str, value: int | None, size: int, flag: str) -> int | None:
    """`value` as a non-negative index into `size` items (negatives count from the end), or None."""
    if value is None:
        return None
    if not -size <= value < size:
        raise TextclsError(
            f"{name}: expected an index in [{-size}, {size - 1}] (the model has {size} {name}s), "
            f"found {value}; pass {flag} between 0 and {size - 1}, or -1 for the last"
        )
    return value % size


def label_and_probs(label_names: Sequence[str], probs: np.ndarray) -> tuple[str, dict[str, float]]:
    """The most probable label and a name -> probability map, from one row of probabilities."""
    row = np.asarray(probs, dtype=float).reshape(-1)
    names = list(label_names)
    return names[int(row.argmax())], {name: float(p) for name, p in zip(names, row)}


def from_attention_maps(
    text: str,
    family: str,
    label_names: Sequence[str],
    probs: np.ndarray,
    tokens: list[str],
    maps: np.ndarray,
    layer: int,
    head: int | None,
) -> Explanation:
    """An Explanation from a transformer's attention maps (layers, heads, tokens, tokens) and its probabilities."""
    label, probs_by_name = label_and_probs(label_names, probs)
    num_layers, num_heads = maps.shape[:2]
    layer_index = _check_index("layer", layer, num_layers, "--layer")
    head_index = _check_index("head", head, num_heads, "--head")
    cls_rows = maps[layer_index, :, 0, :]  # (heads, tokens): where [CLS] looks in that layer
    weights = cls_rows.mean(axis=0) if head_index is None else cls_rows[head_index]
    weights = weights / weights.sum()
    return Explanation(
        text=text,
        family=family,
        label=label,
        probs=probs_by_name,
        tokens=tokens,
        token_weights=weights,
        attention=maps,
        rollout=attention_rollout(maps),
        layer=layer_index,
        head=head_index,
    )


def from_token_weights(
    text: str,
    family: str,
    label_names: Sequence[str],
    probs: np.ndarray,
    tokens: list[str],
    weights: Sequence[float] | np.ndarray,
    features: bool = False,
) -> Explanation:
    """An Explanation from one weight per token (attention pooling), or per feature with `features=True`."""
    label, probs_by_name = label_and_probs(label_names, probs)
    values = np.asarray(weights, dtype=np.float64 if features else np.float32)
    return Explanation(
        text=text,
        family=family,
        label=label,
        probs=probs_by_name,
        tokens=list(tokens),
        token_weights=values,
        attention=None if features else values.copy(),
        features=features,
    )


def check_text(text: Any) -> str:
    """`text` if it is a string that is neither blank nor unreadable (see `textcls.data.texts`), else a clear error."""
    if not isinstance(text, str) or is_blank(text):
        raise TextclsError(f"expected a non-empty text to explain, found {text!r}; pass the text in quotes")
    problem = text_problem(text)
    if problem is not None:
        raise DataError(f"the text to explain: {problem}")
    return text


class Explains(Protocol):
    """What `explain` needs: a classifier or a loaded `Run` with an `explain` method."""

    def explain(self, text: str, layer: int = -1, head: int | None = None) -> Explanation: ...


def explain(predictor: Explains, text: str, layer: int = -1, head: int | None = None) -> Explanation:
    """Explain `predictor`'s prediction for `text` (a classifier or a loaded `Run`): `predictor.explain(...)`.

    `layer` (default the last) and `head` (default the mean over heads) pick the attention map whose
    [CLS] row becomes `token_weights`; they count from 0, and negatives from the end.

    Example:
        >>> expl = explain(classifier, "Stocks fell sharply.", layer=-1, head=None)  # doctest: +SKIP
        >>> expl.attention.shape                                                     # doctest: +SKIP
        (6, 12, 6, 6)
    """
    return predictor.explain(check_text(text), layer=layer, head=head)
