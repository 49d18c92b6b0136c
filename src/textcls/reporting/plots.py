"""Every figure textcls draws: attention maps, token bars, the report's confusion matrix, training
curves and reliability diagram, and compare's accuracy-against-time plot.

Plotting works from arrays and plain values only (never hooks into a model, never imports a
textcls module above this one). matplotlib is an optional extra, imported when a figure is drawn;
figures are drawn on the Agg canvas without pyplot, so nothing here opens a window or touches
global backend state.

Example:
    >>> attention_heatmap(np.eye(3), ["[CLS]", "hi", "[SEP]"], Path("heatmap.png"))   # doctest: +SKIP
    >>> png = confusion_png(np.array([[5, 1], [2, 4]]), ["a", "b"])                    # doctest: +SKIP
"""

from __future__ import annotations

import importlib.util
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from textcls.errors import TextclsError
from textcls.files import write_atomic

__all__ = [
    "accuracy_vs_time",
    "alignment_matrix",
    "attention_grid",
    "attention_heatmap",
    "available",
    "confusion_png",
    "curves_png",
    "length_curves",
    "parameter_importance",
    "reliability_png",
    "search_history",
    "token_bars",
]

DPI = 100
EXTRA_HINT = "pip install 'textcls[plots]'"


def available() -> bool:
    """Whether matplotlib (the plots extra) is installed."""
    return importlib.util.find_spec("matplotlib") is not None


def _figure(width: float, height: float) -> Any:
    """A matplotlib Figure on the Agg canvas; the import error names the extra to install."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as error:
        raise TextclsError(f"plots need matplotlib, found it missing ({error}); run `{EXTRA_HINT}`") from error
    figure = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(figure)
    return figure


def _save(figure: Any, path: Path) -> Path:
    return write_atomic(path, lambda temp: figure.savefig(temp, format="png", bbox_inches="tight"))


def _png(figure: Any) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", bbox_inches="tight", facecolor="white")
    return buffer.getvalue()


def _label_size(count: int) -> float:
    """Tick label font size that keeps `count` labels readable."""
    return float(np.clip(300 / max(count, 1), 4, 10))


def attention_heatmap(matrix: np.ndarray, tokens: Sequence[str], path: Path, title: str = "") -> Path:
    """One attention map (tokens, tokens) as a PNG: rows are queries, columns keys.

    Example:
        >>> attention_heatmap(expl.attention[-1].mean(0), expl.tokens, Path("heatmap.png"))  # doctest: +SKIP
    """
    matrix = np.asarray(matrix, dtype=float)
    size = min(4 + 0.25 * len(tokens), 20)
    figure = _figure(size + 1, size)
    axes = figure.add_subplot(1, 1, 1)
    image = axes.imshow(matrix, cmap="viridis", vmin=0.0, aspect="equal")
    ticks = np.arange(len(tokens))
    font = _label_size(len(tokens))
    axes.set_xticks(ticks, labels=list(tokens), rotation=90, fontsize=font, parse_math=False)
    axes.set_yticks(ticks, labels=list(tokens), fontsize=font, parse_math=False)
    axes.set_xlabel("key (attended to)")
    axes.set_ylabel("query")
    axes.set_title(title, parse_math=False)
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04)
    return _save(figure, path)


def attention_grid(attention: np.ndarray, tokens: Sequence[str], path: Path, title: str = "") -> Path:
    """All attention maps (layers, heads, tokens, tokens) as small multiples: one row per layer."""
    attention = np.asarray(attention, dtype=float)
    layers, heads = attention.shape[:2]
    figure = _figure(min(1.6 * heads + 1, 24), min(1.6 * layers + 1, 24))
    grid = figure.subplots(layers, heads, squeeze=False)
    for layer in range(layers):
        for head in range(heads):
            axes = grid[layer][head]
            axes.imshow(attention[layer, head], cmap="viridis", vmin=0.0, vmax=1.0)
            axes.set_xticks([])
            axes.set_yticks([])
            if layer == 0:
                axes.set_title(f"head {head}", fontsize=8)
            if head == 0:
                axes.set_ylabel(f"layer {layer}", fontsize=8)
    figure.suptitle(title or f"attention, {layers} layers x {heads} heads, {len(tokens)} tokens", parse_math=False)
    return _save(figure, path)


def token_bars(tokens: Sequence[str], weights: np.ndarray, path: Path, title: str = "") -> Path:
    """A horizontal bar per token (first token on top), for attention weights, rollout or n-gram scores."""
    weights = np.asarray(weights, dtype=float)
    figure = _figure(6, min(1.5 + 0.28 * len(tokens), 30))
    axes = figure.add_subplot(1, 1, 1)
    positions = np.arange(len(tokens))
    colors = ["tab:blue" if w >= 0 else "tab:red" for w in weights]
    axes.barh(positions, weights, color=colors)
    axes.set_yticks(positions, labels=list(tokens), fontsize=_label_size(len(tokens)), parse_math=False)
    axes.invert_yaxis()
    axes.axvline(0.0, color="black", linewidth=0.5)
    axes.set_xlabel("weight")
    axes.set_title(title, parse_math=False)
    return _save(figure, path)


def confusion_png(matrix: np.ndarray, label_names: Sequence[str]) -> bytes:
    """The confusion matrix (gold rows, predicted columns) as PNG bytes, coloured by share of the gold row."""
    n = len(label_names)
    size = max(4.0, 0.6 * n + 2.0)
    figure = _figure(size + 1.0, size)
    axes = figure.add_subplot()
    row_totals = matrix.sum(axis=1, keepdims=True)
    share = np.divide(matrix, row_totals, out=np.zeros(matrix.shape, dtype=float), where=row_totals > 0)
    image = axes.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0)
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04, label="share of gold row")
    axes.set_xticks(range(n), labels=list(label_names), rotation=45, ha="right", parse_math=False)
    axes.set_yticks(range(n), labels=list(label_names), parse_math=False)
    axes.set_xlabel("predicted")
    axes.set_ylabel("gold")
    if n <= 30:  # beyond that the numbers no longer fit their cells
        for gold in range(n):
            for predicted in range(n):
                axes.text(
                    predicted,
                    gold,
                    str(int(matrix[gold, predicted])),
                    ha="center",
                    va="center",
                    fontsize=9,
                    color="white" if share[gold, predicted] > 0.5 else "black",
                )
    return _png(figure)


def curves_png(epochs: list[dict[str, Any]]) -> bytes:
    """Training curves as PNG bytes: train/dev loss and dev accuracy/macro-F1 per epoch row of metrics.json."""
    figure = _figure(10.0, 3.6)
    loss_axes, score_axes = figure.subplots(1, 2)
    x = [e.get("epoch", i + 1) for i, e in enumerate(epochs)]

    def series(key: str) -> list[float]:
        return [np.nan if e.get(key) is None else float(e[key]) for e in epochs]

    loss_axes.plot(x, series("train_loss"), marker="o", label="train loss")
    loss_axes.plot(x, series("dev_loss"), marker="o", label="dev loss")
    loss_axes.set_xlabel("epoch")
    loss_axes.set_ylabel("loss")
    loss_axes.legend()
    loss_axes.grid(alpha=0.3)
    score_axes.plot(x, series("dev_accuracy"), marker="o", label="dev accuracy")
    if any(e.get("dev_macro_f1") is not None for e in epochs):
        score_axes.plot(x, series("dev_macro_f1"), marker="o", label="dev macro-F1")
    score_axes.set_xlabel("epoch")
    score_axes.set_ylabel("score")
    score_axes.legend()
    score_axes.grid(alpha=0.3)
    from matplotlib.ticker import MaxNLocator

    for axes in (loss_axes, score_axes):
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    figure.tight_layout()
    return _png(figure)


def reliability_png(calib: dict[str, Any]) -> bytes:
    """A reliability diagram as PNG bytes, from `evaluation.calibration`'s bins."""
    figure = _figure(5.0, 5.0)
    axes = figure.add_subplot()
    filled = [b for b in calib["bins"] if b["count"]]
    width = calib["bins"][0]["upper"] - calib["bins"][0]["lower"]
    axes.bar(
        [b["lower"] for b in filled],
        [b["accuracy"] for b in filled],
        width=width,
        align="edge",
        color="tab:blue",
        edgecolor="black",
        alpha=0.8,
        label="accuracy",
    )
    axes.plot([0, 1], [0, 1], linestyle="--", color="gray", label="perfect calibration")
    axes.plot(
        [b["confidence"] for b in filled],
        [b["accuracy"] for b in filled],
        "o",
        color="tab:orange",
        label="bin mean confidence",
    )
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1)
    axes.set_xlabel("confidence (top label)")
    axes.set_ylabel("accuracy")
    axes.set_title(f"Reliability diagram, ECE {calib['ece']:.3f}")
    axes.legend(loc="upper left")
    return _png(figure)


def accuracy_vs_time(rows: Sequence[dict[str, Any]], path: Path) -> Path:
    """Dev accuracy against training time, one labelled point per family row of compare.json."""
    figure = _figure(6.4, 4.2)
    figure.set_dpi(120)
    axes = figure.add_subplot(1, 1, 1)
    for row in rows:
        seconds = max(row["train_seconds"], 0.1)
        axes.scatter(seconds, row["dev_accuracy"], s=40)
        axes.annotate(
            row["family"], (seconds, row["dev_accuracy"]), textcoords="offset points", xytext=(6, 4), parse_math=False
        )
    axes.set_xscale("log")
    axes.margins(x=0.25, y=0.12)  # room for the labels of the outermost points
    axes.set_xlabel("training time (s, log scale)")
    axes.set_ylabel("dev accuracy")
    axes.set_title("accuracy against training time")
    axes.grid(alpha=0.3)
    figure.tight_layout()
    return write_atomic(path, lambda temporary: figure.savefig(temporary, format="png"))


def alignment_matrix(
    weights: np.ndarray, source_tokens: Sequence[str], output_tokens: Sequence[str], path: Path, title: str = ""
) -> Path:
    """An encoder-decoder's alignment (output tokens, source tokens) as a PNG, like Bahdanau et al.'s
    Fig. 3: source tokens across the top, output tokens down, grey levels for alpha(t, i) (white = 1).

    Example:
        >>> alignment_matrix(t.attention, t.source_tokens, t.output_tokens, Path("alignment.png"))  # doctest: +SKIP
    """
    weights = np.asarray(weights, dtype=float)
    rows, columns = weights.shape
    cell = 0.32
    figure = _figure(min(2.0 + cell * columns, 30), min(1.5 + cell * rows, 30))
    axes = figure.add_subplot(1, 1, 1)
    axes.imshow(weights, cmap="gray", vmin=0.0, vmax=1.0, aspect="equal", interpolation="nearest")
    axes.xaxis.tick_top()
    axes.set_xticks(
        np.arange(columns), labels=list(source_tokens), rotation=90, fontsize=_label_size(columns), parse_math=False
    )
    axes.set_yticks(np.arange(rows), labels=list(output_tokens), fontsize=_label_size(rows), parse_math=False)
    axes.set_xlabel("source")
    axes.xaxis.set_label_position("top")
    axes.set_ylabel("output")
    if title:
        axes.set_title(title, fontsize=9, parse_math=False)  # matplotlib lifts it above the top tick labels
    return _save(figure, path)


def length_curves(rows: Sequence[dict[str, Any]], path: Path) -> Path:
    """BLEU and exact match against source length, one line per run (Bahdanau et al.'s Fig. 2 in spirit).

    Each row: `name`, `x` (bucket middles, source words), `bleu` (0-100), `exact_match` (0-100).
    """
    figure = _figure(10.0, 4.0)
    figure.set_dpi(120)
    bleu_axes, exact_axes = figure.subplots(1, 2)
    for row in rows:
        bleu_axes.plot(row["x"], row["bleu"], marker="o", label=row["name"])
        exact_axes.plot(row["x"], row["exact_match"], marker="o", label=row["name"])
    for axes, label in ((bleu_axes, "BLEU"), (exact_axes, "exact match (%)")):
        axes.set_xlabel("source length (words)")
        axes.set_ylabel(label)
        axes.set_ylim(0, 102)
        axes.grid(alpha=0.3)
        for text in axes.legend(fontsize=8).get_texts():
            text.set_parse_math(False)  # run names are shown as written
    bleu_axes.set_title("BLEU against source length")
    exact_axes.set_title("exact match against source length")
    figure.tight_layout()
    return write_atomic(path, lambda temporary: figure.savefig(temporary, format="png"))


def search_history(numbers: Sequence[int], values: Sequence[float | None], states: Sequence[str], path: Path) -> Path:
    """A search's optimisation history: each finished trial's score (pruned ones at their last reported epoch,
    hollow) and the best score so far, against the trial number."""
    figure = _figure(6.4, 4.2)
    axes = figure.add_subplot(1, 1, 1)
    best, best_x, best_y = None, [], []
    for number, value, state in zip(numbers, values, states):
        if value is None:
            continue
        if state == "COMPLETE":
            axes.scatter(number, value, s=30, color="tab:blue")
            best = value if best is None else max(best, value)
        else:
            axes.scatter(number, value, s=30, facecolors="none", edgecolors="tab:gray")
        if best is not None:
            best_x.append(number)
            best_y.append(best)
    axes.step(best_x, best_y, where="post", color="tab:red", label="best so far")
    axes.scatter([], [], s=30, color="tab:blue", label="complete")
    axes.scatter([], [], s=30, facecolors="none", edgecolors="tab:gray", label="pruned (last epoch)")
    axes.set_xlabel("trial")
    axes.set_ylabel("dev score")
    axes.set_title("optimisation history")
    axes.legend(loc="lower right")
    axes.grid(alpha=0.3)
    figure.tight_layout()
    return _save(figure, path)


def parameter_importance(names: Sequence[str], importances: Sequence[float], path: Path) -> Path:
    """How much of the score's variation each searched setting explains (shares summing to 1), largest on top."""
    order = np.argsort(np.asarray(importances, dtype=float))
    figure = _figure(6.4, 0.6 + 0.45 * max(len(names), 1))
    axes = figure.add_subplot(1, 1, 1)
    axes.barh([names[i] for i in order], [importances[i] for i in order], color="tab:blue")
    axes.set_xlabel("importance (share of the score's variance)")
    axes.set_title("hyper-parameter importance")
    axes.grid(alpha=0.3, axis="x")
    figure.tight_layout()
    return _save(figure, path)
