"""Scores of translations against references: exact match, token accuracy and corpus BLEU
(sacrebleu, default 13a tokenisation), overall and per bucket of source length in words.

Example:
    >>> scores(["1982-08-14"], ["1982-08-14"], tokens="chars")["exact_match"]
    1.0
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from textcls.seq2seq.pairs import tokenize


def token_accuracy(predictions: Sequence[str], references: Sequence[str], tokens: str) -> float:
    """Tokens equal at the same position, over the longer of each pair: a missing or extra token counts wrong."""
    correct = total = 0
    for prediction, reference in zip(predictions, references):
        predicted, gold = tokenize(prediction, tokens), tokenize(reference, tokens)
        correct += sum(p == g for p, g in zip(predicted, gold))
        total += max(len(predicted), len(gold))
    return correct / total if total else 0.0


def bleu(predictions: Sequence[str], references: Sequence[str]) -> float:
    """Corpus BLEU (0-100) with sacrebleu's defaults."""
    import sacrebleu

    if not predictions:
        return 0.0
    return float(sacrebleu.corpus_bleu(list(predictions), [list(references)]).score)


def scores(predictions: Sequence[str], references: Sequence[str], tokens: str) -> dict[str, Any]:
    """exact_match, token_accuracy (0-1), bleu (0-100) and the number of pairs."""
    exact = sum(p == r for p, r in zip(predictions, references))
    return {
        "pairs": len(references),
        "exact_match": exact / len(references) if references else 0.0,
        "token_accuracy": token_accuracy(predictions, references, tokens),
        "bleu": bleu(predictions, references),
    }


def length_bucket(words: int, width: int) -> tuple[int, int]:
    """The bucket (low, high) of source length `words`: 1-width, width+1 - 2*width, ..."""
    low = (max(words, 1) - 1) // width * width + 1
    return low, low + width - 1


def scores_by_length(
    sources: Sequence[str], predictions: Sequence[str], references: Sequence[str], tokens: str, width: int = 20
) -> list[dict[str, Any]]:
    """`scores` per bucket of source length in words (whitespace-split), shortest first, empty buckets left out.

    Example:
        >>> [row["bucket"] for row in scores_by_length(["a b", "a " * 30], ["x", "y"], ["x", "y"], "words")]
        ['1-20', '21-40']
    """
    groups: dict[tuple[int, int], list[int]] = {}
    for row, source in enumerate(sources):
        groups.setdefault(length_bucket(len(source.split()), width), []).append(row)
    rows = []
    for (low, high), members in sorted(groups.items()):
        bucket = scores([predictions[i] for i in members], [references[i] for i in members], tokens)
        rows.append({"bucket": f"{low}-{high}", "low": low, "high": high, **bucket})
    return rows
