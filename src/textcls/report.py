"""A one-page HTML evaluation report: headline numbers, per-class table, confusion matrix,
training curves, reliability diagram and the most confident mistakes.

The page is self-contained: figures are inline base64 PNGs, CSS is inline, nothing is fetched.

Example:
    >>> clf = textcls.load("runs/agnews")                                          # doctest: +SKIP
    >>> probs = clf.predict_proba(texts)                                           # doctest: +SKIP
    >>> page = build_report(Path("runs/agnews"), texts, labels, probs, clf.label_names, "test")  # doctest: +SKIP
    >>> write_report(Path("runs/agnews/report_test.html"), page)                  # doctest: +SKIP
"""

from __future__ import annotations

import base64
import html
import io
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from textcls.evaluation import calibration, classification_metrics
from textcls.files import write_text_atomic
from textcls.runs import METRICS_FILE, RUN_FILE

MISTAKES_SHOWN = 20

Highlighter = Callable[[str], list[tuple[str, float]]]

_CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em auto; max-width: 1100px;
       color: #222; background: #fff; padding: 0 1em; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ddd; padding-bottom: 0.2em; margin-top: 1.6em; }
.cards { display: flex; flex-wrap: wrap; gap: 1em; }
.card { border: 1px solid #ddd; border-radius: 6px; padding: 0.6em 1em; min-width: 8em; background: #fafafa; }
.card .value { font-size: 1.6em; font-weight: 600; } .card .name { color: #666; font-size: 0.85em; }
table { border-collapse: collapse; margin: 0.5em 0; }
th, td { border: 1px solid #ddd; padding: 0.3em 0.7em; text-align: right; }
th { background: #f3f3f3; } td.text, th.text { text-align: left; }
img { max-width: 100%; height: auto; }
.note { color: #666; font-style: italic; }
.mistake td.text { max-width: 650px; line-height: 1.6; }
.word { border-radius: 3px; padding: 0 1px; }
"""


def mistakes(
    texts: Sequence[str],
    labels: Sequence[int],
    probs: np.ndarray,
    label_names: Sequence[str],
    k: int = MISTAKES_SHOWN,
) -> list[dict[str, Any]]:
    """The `k` wrong predictions the model was most sure of, most confident first.

    Example:
        >>> mistakes(["a", "b"], [0, 1], np.array([[.9, .1], [.7, .3]]), ["x", "y"])
        [{'index': 1, 'text': 'b', 'gold': 'y', 'predicted': 'x', 'confidence': 0.7}]
    """
    probs = np.asarray(probs, dtype=float)
    gold = np.asarray(labels)
    predicted = probs.argmax(axis=1)  # (rows,)
    confidence = probs.max(axis=1)  # (rows,)
    wrong = np.flatnonzero(predicted != gold)
    # Stable sort so ties keep data order, which keeps reports reproducible.
    order = wrong[np.argsort(-confidence[wrong], kind="stable")][:k]
    return [
        {
            "index": int(i),
            "text": texts[i],
            "gold": label_names[int(gold[i])],
            "predicted": label_names[int(predicted[i])],
            "confidence": float(confidence[i]),
        }
        for i in order
    ]


def write_report(path: Path, html_text: str) -> Path:
    """Write the page next to `path` and rename it into place, so a reader never sees half a report."""
    return write_text_atomic(Path(path), html_text)


def build_report(
    run_dir: Path,
    texts: list[str],
    labels: list[int],
    probs: np.ndarray,
    label_names: list[str],
    split_name: str,
    highlight: Highlighter | None = None,
) -> str:
    """The HTML page for predictions `probs` (rows, classes) on `split_name`, with the run's
    `metrics.json` (training curves) and `textcls.json` (family) when the run folder has them.

    `highlight(text)` may return [(word, weight)] to colour the words of each shown mistake.
    """
    run_dir = Path(run_dir)
    probs = np.asarray(probs, dtype=float)
    if probs.ndim != 2 or probs.shape != (len(texts), len(label_names)) or len(labels) != len(texts):
        raise ValueError(
            f"expected {len(texts)} texts, labels and probability rows over {len(label_names)} classes, "
            f"found {len(labels)} labels and probs of shape {probs.shape}; pass matching inputs"
        )
    info = _read_json(run_dir / RUN_FILE)
    run_metrics = _read_json(run_dir / METRICS_FILE)
    metrics = classification_metrics(labels, probs, label_names)
    calib = calibration(labels, probs)
    run_name = run_dir.name or str(run_dir)
    title = f"textcls report: {run_name} on {split_name}"

    sections = [
        _headline_section(metrics, calib, run_name, split_name, info),
        _per_class_section(metrics),
        _confusion_section(metrics),
        _curves_section(run_metrics),
        _calibration_section(calib),
        _mistakes_section(mistakes(texts, labels, probs, label_names, MISTAKES_SHOWN), highlight),
    ]
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        f"<title>{_esc(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        f"<h1>{_esc(title)}</h1>\n" + "\n".join(sections) + "\n</body>\n</html>\n"
    )


# ---------------------------------------------------------------- sections


def _headline_section(
    metrics: dict[str, Any], calib: dict[str, Any], run_name: str, split_name: str, info: dict[str, Any] | None
) -> str:
    cards = [
        ("accuracy", f"{metrics['accuracy']:.4f}"),
        ("macro-F1", f"{metrics['macro_f1']:.4f}"),
        ("ECE", f"{calib['ece']:.4f}"),
        ("rows", str(metrics["num_samples"])),
        ("run", run_name),
        ("split", split_name),
    ]
    if info and info.get("family"):
        cards.append(("family", str(info["family"])))
    body = "".join(
        f'<div class="card"><div class="name">{_esc(name)}</div><div class="value">{_esc(value)}</div></div>'
        for name, value in cards
    )
    return f'<section id="headline">\n<h2>Headline</h2>\n<div class="cards">{body}</div>\n</section>'


def _per_class_section(metrics: dict[str, Any]) -> str:
    rows = "".join(
        f'<tr><td class="text">{_esc(name)}</td><td>{m["precision"]:.4f}</td><td>{m["recall"]:.4f}</td>'
        f'<td>{m["f1"]:.4f}</td><td>{m["support"]}</td></tr>'
        for name, m in metrics["per_class"].items()
    )
    return (
        '<section id="per-class">\n<h2>Per class</h2>\n<table>\n'
        '<tr><th class="text">label</th><th>precision</th><th>recall</th><th>F1</th><th>support</th></tr>\n'
        f"{rows}\n</table>\n</section>"
    )


def _confusion_section(metrics: dict[str, Any]) -> str:
    image = _img(_confusion_png(np.array(metrics["confusion_matrix"]), metrics["label_names"]), "confusion matrix")
    return (
        '<section id="confusion">\n<h2>Confusion matrix</h2>\n'
        '<p class="note">Rows: gold label; columns: predicted label; colour: share of the gold row.</p>\n'
        f"{image}\n</section>"
    )


def _curves_section(run_metrics: dict[str, Any] | None) -> str:
    epochs = ((run_metrics or {}).get("train") or {}).get("epochs") or []
    head = '<section id="curves">\n<h2>Training curves</h2>\n'
    if run_metrics is None:
        return head + f'<p class="note">No {METRICS_FILE} in the run folder, so no training curves.</p>\n</section>'
    if len(epochs) < 2:
        note = "Only one epoch was recorded; a curve needs at least two." if epochs else "No epochs were recorded."
        table = ""
        if epochs:
            e = epochs[0]
            table = "<table><tr>" + "".join(f"<th>{_esc(k)}</th>" for k in e) + "</tr><tr>"
            table += "".join(f"<td>{_esc(_fmt(v))}</td>" for v in e.values()) + "</tr></table>"
        return head + f'<p class="note">{note}</p>\n{table}\n</section>'
    return head + _img(_curves_png(epochs), "training curves") + "\n</section>"


def _calibration_section(calib: dict[str, Any]) -> str:
    rows = "".join(
        f"<tr><td>{b['lower']:.1f}–{b['upper']:.1f}</td><td>{b['count']}</td>"
        f"<td>{_fmt(b['confidence'])}</td><td>{_fmt(b['accuracy'])}</td></tr>"
        for b in calib["bins"]
    )
    return (
        '<section id="calibration">\n<h2>Calibration</h2>\n'
        f"<p>Expected calibration error (top-label, {len(calib['bins'])} equal-width bins): "
        f"<b>{calib['ece']:.4f}</b></p>\n"
        f"{_img(_reliability_png(calib), 'reliability diagram')}\n"
        "<details><summary>bins</summary><table><tr><th>confidence</th><th>rows</th>"
        f"<th>mean confidence</th><th>accuracy</th></tr>{rows}</table></details>\n</section>"
    )


def _mistakes_section(shown: list[dict[str, Any]], highlight: Highlighter | None) -> str:
    head = f'<section id="mistakes">\n<h2>Most confident mistakes (top {MISTAKES_SHOWN})</h2>\n'
    if not shown:
        return head + '<p class="note">No mistakes on this split.</p>\n</section>'
    rows = "".join(
        f'<tr class="mistake"><td>{m["confidence"]:.3f}</td><td class="text">{_esc(m["gold"])}</td>'
        f'<td class="text">{_esc(m["predicted"])}</td><td class="text">{_highlighted(m["text"], highlight)}</td></tr>'
        for m in shown
    )
    return (
        head + '<table>\n<tr><th>confidence</th><th class="text">gold</th><th class="text">predicted</th>'
        f'<th class="text">text</th></tr>\n{rows}\n</table>\n</section>'
    )


def _highlighted(text: str, highlight: Highlighter | None) -> str:
    """Escaped text; with `highlight`, one span per word whose background alpha is |weight| / max |weight|."""
    if highlight is None:
        return _esc(text)
    words = list(highlight(text))
    if not words:
        return _esc(text)
    largest = max(abs(float(weight)) for _, weight in words) or 1.0
    spans = []
    for word, weight in words:
        alpha = min(abs(float(weight)) / largest, 1.0)
        # Orange for evidence for the prediction, blue for evidence against it.
        colour = "255, 140, 0" if weight >= 0 else "30, 120, 255"
        spans.append(
            f'<span class="word" style="background-color: rgba({colour}, {alpha:.3f})" '
            f'title="{float(weight):.4f}">{_esc(word)}</span>'
        )
    return " ".join(spans)


# ---------------------------------------------------------------- figures


def _figure(width: float, height: float) -> Any:
    # Lazy import: the library (and the CLI's startup) need no matplotlib unless a report is built.
    # Figure without pyplot uses the Agg canvas and keeps no global state.
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100)


def _png(figure: Any) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", bbox_inches="tight", facecolor="white")
    return buffer.getvalue()


def _confusion_png(matrix: np.ndarray, label_names: Sequence[str]) -> bytes:
    n = len(label_names)
    size = max(4.0, 0.6 * n + 2.0)
    figure = _figure(size + 1.0, size)
    axes = figure.add_subplot()
    row_totals = matrix.sum(axis=1, keepdims=True)
    share = np.divide(matrix, row_totals, out=np.zeros(matrix.shape, dtype=float), where=row_totals > 0)
    image = axes.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0)
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04, label="share of gold row")
    axes.set_xticks(range(n), labels=list(label_names), rotation=45, ha="right")
    axes.set_yticks(range(n), labels=list(label_names))
    axes.set_xlabel("predicted")
    axes.set_ylabel("gold")
    if n <= 30:  # beyond that the numbers no longer fit their cells
        for gold in range(n):
            for predicted in range(n):
                axes.text(predicted, gold, str(int(matrix[gold, predicted])), ha="center", va="center",
                          fontsize=9, color="white" if share[gold, predicted] > 0.5 else "black")
    return _png(figure)


def _curves_png(epochs: list[dict[str, Any]]) -> bytes:
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


def _reliability_png(calib: dict[str, Any]) -> bytes:
    figure = _figure(5.0, 5.0)
    axes = figure.add_subplot()
    filled = [b for b in calib["bins"] if b["count"]]
    width = calib["bins"][0]["upper"] - calib["bins"][0]["lower"]
    axes.bar([b["lower"] for b in filled], [b["accuracy"] for b in filled], width=width, align="edge",
             color="tab:blue", edgecolor="black", alpha=0.8, label="accuracy")
    axes.plot([0, 1], [0, 1], linestyle="--", color="gray", label="perfect calibration")
    axes.plot([b["confidence"] for b in filled], [b["accuracy"] for b in filled], "o", color="tab:orange",
              label="bin mean confidence")
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1)
    axes.set_xlabel("confidence (top label)")
    axes.set_ylabel("accuracy")
    axes.set_title(f"Reliability diagram, ECE {calib['ece']:.3f}")
    axes.legend(loc="upper left")
    return _png(figure)


# ---------------------------------------------------------------- helpers


def _img(png: bytes, alt: str) -> str:
    return f'<img src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}" alt="{_esc(alt)}">'


def _esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def _read_json(path: Path) -> dict[str, Any] | None:
    """A run-folder JSON file, or None when it is missing or unreadable (the report still renders)."""
    if not path.is_file():
        return None
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    return payload if isinstance(payload, dict) else None


def write_run_report(run_dir: Path, scored: Any, path: Path) -> Path:
    """The report for `scored` (a `runs.Scored`), mistakes highlighted by the model's own weights.

    Families without attention weights (plain lstm) get the mistakes as plain text.
    """
    from textcls.errors import TextclsError
    from textcls.explain import explain

    classifier = scored.classifier

    def highlight(text: str) -> list[tuple[str, float]]:
        return explain(classifier, text).words()

    try:
        explain(classifier, scored.texts[0])
    except TextclsError:  # this family has nothing to highlight with
        highlight = None  # type: ignore[assignment]
    page = build_report(
        Path(run_dir), scored.texts, scored.labels, scored.probs, classifier.label_names, scored.split, highlight
    )
    return write_report(path, page)
