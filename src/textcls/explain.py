"""Why a model predicted what it did: attention weights per token, and attention rollout.

Each family explains itself with what it has:

- pretrained and scratch-transformer: every layer's attention maps (layers, heads, tokens, tokens);
  `token_weights` is the [CLS] row of one layer (default the last), averaged over heads or one head,
  and `rollout` follows the [CLS] token through all layers (Abnar & Zuidema, 2020);
- lstm-attention: the additive attention pooling weights (tokens,);
- tfidf: the n-grams that push hardest towards the predicted label (tf-idf value x coefficient);
- lstm: has no attention, so it cannot be explained this way.

Attention shows where a model looked, not why it decided; read it as a hint, not a proof.

Example:
    >>> expl = explain(textcls.load("runs/agnews").classifier, "Stocks fell sharply.")  # doctest: +SKIP
    >>> expl.label, expl.words()[:2]                                                    # doctest: +SKIP
    ('Business', [('stocks', 0.41), ('fell', 0.22)])
"""

from __future__ import annotations

from pathlib import Path

from dataclasses import dataclass
from typing import Any

import numpy as np

from textcls.errors import TextclsError

__all__ = ["Explanation", "attention_rollout", "explain"]

SPECIAL_TOKENS = frozenset({"[CLS]", "[SEP]", "[PAD]"})
CONTINUATION = "##"  # WordPiece marks a piece that continues the previous one
TFIDF_TOP_K = 15
ATTENTION_FAMILIES = ("lstm-attention", "scratch-transformer", "pretrained", "tfidf")


@dataclass
class Explanation:
    """One text's prediction and the token weights behind it.

    `token_weights` sums to 1 except for tfidf, where it holds raw contribution scores.
    `attention` is (layers, heads, tokens, tokens) for pretrained/scratch-transformer, (tokens,) for
    lstm-attention and None for tfidf; `rollout` is (tokens,) for the transformer families, else None.
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

    def save(self, out_dir: str | Path) -> dict[str, Path]:
        """Write the figures (PNG), an HTML page and the arrays (JSON) into `out_dir`; returns the paths."""
        from textcls.plots import write_explanation

        return write_explanation(self, Path(out_dir))

    def words(self) -> list[tuple[str, float]]:
        """Word pieces merged into words, weights summed, [CLS]/[SEP]/[PAD] dropped, renormalised to sum 1.

        For tfidf the n-grams come back as they are, with their raw contribution scores.

        Example:
            >>> Explanation("", "pretrained", "x", {}, ["[CLS]", "play", "##ing", "[SEP]"],
            ...             np.array([0.4, 0.2, 0.2, 0.2])).words()
            [('playing', 1.0)]
        """
        pairs = [(token, float(weight)) for token, weight in zip(self.tokens, self.token_weights)]
        if self.family == "tfidf":
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
        raise TextclsError(f"attention_rollout: expected shape (layers, heads, tokens, tokens), found {attention.shape}")
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


def _from_maps(
    text: str, family: str, label: str, probs: dict[str, float], tokens: list[str], maps: np.ndarray,
    layer: int, head: int | None,
) -> Explanation:
    """An Explanation from attention maps (layers, heads, tokens, tokens)."""
    num_layers, num_heads = maps.shape[:2]
    layer_index = _check_index("layer", layer, num_layers, "--layer")
    head_index = _check_index("head", head, num_heads, "--head")
    cls_rows = maps[layer_index, :, 0, :]  # (heads, tokens): where [CLS] looks in that layer
    weights = cls_rows.mean(axis=0) if head_index is None else cls_rows[head_index]
    weights = weights / weights.sum()
    return Explanation(
        text=text, family=family, label=label, probs=probs, tokens=tokens, token_weights=weights,
        attention=maps, rollout=attention_rollout(maps), layer=layer_index, head=head_index,
    )


def _probabilities(classifier: Any, probs: np.ndarray) -> tuple[str, dict[str, float]]:
    row = np.asarray(probs, dtype=float).reshape(-1)
    names = list(classifier.label_names)
    return names[int(row.argmax())], {name: float(p) for name, p in zip(names, row)}


def _pretrained_attention(classifier: Any, text: str) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Tokens, attention maps (layers, heads, tokens, tokens) and class probabilities of one text."""
    import torch

    model, tokenizer = classifier.model, classifier.tokenizer
    encoded = tokenizer(text, truncation=True, max_length=classifier.max_length, return_tensors="pt")
    target = next(model.parameters()).device
    # SDPA and flash kernels never materialise the maps, so switch to eager for this one call.
    previous = getattr(model.config, "_attn_implementation", None)
    switched = previous not in (None, "eager")
    if switched:
        _set_attn_implementation(model, "eager")
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            output = model(**{k: v.to(target) for k, v in encoded.items()}, output_attentions=True)
    finally:
        model.train(was_training)
        if switched:
            _set_attn_implementation(model, previous)
    attentions = getattr(output, "attentions", None)
    if not attentions or any(a is None for a in attentions):
        raise TextclsError(
            f"expected attention maps from {type(model).__name__}, found none; this architecture does not "
            "return them (output_attentions=True); explain a BERT-like encoder or another family"
        )
    maps = torch.stack([a[0] for a in attentions]).float().cpu().numpy()  # (layers, heads, tokens, tokens)
    probs = torch.softmax(output.logits.float(), dim=-1)[0].cpu().numpy()
    tokens = tokenizer.convert_ids_to_tokens(encoded["input_ids"][0].tolist())
    return list(tokens), maps, probs


def _set_attn_implementation(model: Any, name: str) -> None:
    if hasattr(model, "set_attn_implementation"):
        model.set_attn_implementation(name)
    else:  # older transformers read the private config field at every forward
        model.config._attn_implementation = name


def explain(classifier: Any, text: str, layer: int = -1, head: int | None = None) -> Explanation:
    """Explain `classifier`'s prediction for `text` with its attention (or n-gram contributions).

    `layer` (default the last) and `head` (default the mean over heads) pick the attention map whose
    [CLS] row becomes `token_weights`; they count from 0, and negatives from the end.

    Example:
        >>> expl = explain(classifier, "Stocks fell sharply.", layer=-1, head=None)  # doctest: +SKIP
        >>> expl.attention.shape                                                     # doctest: +SKIP
        (6, 12, 6, 6)
    """
    family = getattr(classifier, "family", "")
    if not isinstance(text, str) or not text.strip():
        raise TextclsError(f"expected a non-empty text to explain, found {text!r}; pass the text in quotes")
    if family == "pretrained":
        tokens, maps, probs = _pretrained_attention(classifier, text)
        label, prob_map = _probabilities(classifier, probs)
        return _from_maps(text, family, label, prob_map, tokens, maps, layer, head)
    if family == "scratch-transformer":
        (token_attention,) = classifier.attention([text])
        label, prob_map = _probabilities(classifier, classifier.predict_proba([text]))
        maps = np.asarray(token_attention.weights, dtype=np.float32)
        return _from_maps(text, family, label, prob_map, list(token_attention.tokens), maps, layer, head)
    if family == "lstm-attention":
        (token_attention,) = classifier.attention([text])
        label, prob_map = _probabilities(classifier, classifier.predict_proba([text]))
        weights = np.asarray(token_attention.weights, dtype=np.float32)  # (tokens,)
        return Explanation(
            text=text, family=family, label=label, probs=prob_map, tokens=list(token_attention.tokens),
            token_weights=weights, attention=weights.copy(), rollout=None,
        )
    if family == "tfidf":
        label, prob_map = _probabilities(classifier, classifier.predict_proba([text]))
        ngrams = classifier.top_ngrams(text, k=TFIDF_TOP_K)
        return Explanation(
            text=text, family=family, label=label, probs=prob_map, tokens=[term for term, _ in ngrams],
            token_weights=np.array([score for _, score in ngrams], dtype=np.float64),
        )
    if family == "lstm":
        raise TextclsError(
            "expected a model with attention, found the lstm family, which has none (it max-pools its states); "
            "the lstm family has no attention; use lstm-attention, scratch-transformer, pretrained or tfidf"
        )
    raise TextclsError(
        f"expected a model of family {', '.join(ATTENTION_FAMILIES)}, found {family or type(classifier).__name__!r}; "
        "explain a run trained with one of those families"
    )
