"""The HTML pages textcls writes, assembled from data (figures come from `textcls.reporting.plots`):

- the evaluation report: headline numbers, per-class table, confusion matrix, training curves,
  reliability diagram and the most confident mistakes, from scored predictions and a `RunRecord`
  (multi-label: micro/macro-F1, subset accuracy, Hamming loss, per-label table with thresholds, how
  often gold labels occur together, and the texts whose label sets are furthest off);
- an explanation's page and files (`write_explanation`), from an `Explanation`.

Pages are self-contained: figures are inline base64 PNGs, CSS is inline, nothing is fetched.

Example:
    >>> record = runfolder.read_record("runs/agnews")                                    # doctest: +SKIP
    >>> page = build_report(record, texts, labels, probs, record.info["label_names"], "test")  # doctest: +SKIP
    >>> write_report(Path("runs/agnews/report_test.html"), page)                        # doctest: +SKIP
"""

from __future__ import annotations

import base64
import html
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from textcls.data.imbalance import MIN_DEV_ROWS_PER_CLASS, small_classes
from textcls.data.multilabel import decide
from textcls.errors import ConfigError, StorageError
from textcls.files import folder_lock, make_folder, read_json_object, work_folder, write_json, write_text_atomic
from textcls.reporting import plots
from textcls.reporting.metrics import calibration, classification_metrics, multilabel_metrics
from textcls.runfolder import METRICS_FILE, RunRecord, read_record

log = logging.getLogger(__name__)

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
.warning { color: #8a4b00; background: #fff4e0; padding: 0.4em 0.6em; }
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
    run: RunRecord | str | Path,
    texts: list[str],
    labels: list[int],
    probs: np.ndarray,
    label_names: list[str],
    split_name: str,
    highlight: Highlighter | None = None,
    thresholds: Sequence[float] | np.ndarray | None = None,
) -> str:
    """The HTML page for predictions `probs` (rows, classes) on `split_name`, with the run's
    metrics (training curves) and info (family) where the record has them. `run` may also be a run
    folder, read with `read_record(strict=False)`.

    `highlight(text)` may return [(word, weight)] to colour the words of each shown mistake. A multi-label
    run passes its `thresholds` and `labels` as a (rows, labels) 0/1 matrix.
    """
    if not isinstance(run, RunRecord):
        run = read_record(run, strict=False)
    probs = np.asarray(probs, dtype=float)
    if probs.ndim != 2 or probs.shape != (len(texts), len(label_names)) or len(labels) != len(texts):
        raise ValueError(
            f"expected {len(texts)} texts, labels and probability rows over {len(label_names)} classes, "
            f"found {len(labels)} labels and probs of shape {probs.shape}; pass matching inputs"
        )
    if thresholds is not None:
        return _page(
            run,
            split_name,
            _multilabel_sections(
                run,
                texts,
                np.asarray(labels),
                probs,
                label_names,
                split_name,
                highlight,
                np.asarray(thresholds, dtype=float),
            ),
        )
    info, run_metrics = run.info, run.metrics
    metrics = classification_metrics(labels, probs, label_names)
    calib = calibration(labels, probs)
    run_name = run.name

    sections = [
        _headline_section(metrics, calib, run_name, split_name, info),
        _per_class_section(metrics, small_classes(labels, label_names)),
        _confusion_section(metrics),
        _curves_section(run_metrics),
        _calibration_section(calib),
        _mistakes_section(mistakes(texts, labels, probs, label_names, MISTAKES_SHOWN), highlight),
    ]
    return _page(run, split_name, sections)


def _page(run: RunRecord, split_name: str, sections: list[str]) -> str:
    title = f"textcls report: {run.name} on {split_name}"
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{_esc(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        f"<h1>{_esc(title)}</h1>\n" + "\n".join(sections) + "\n</body>\n</html>\n"
    )


# ---------------------------------------------------------------- multi-label


def multilabel_mistakes(
    texts: Sequence[str],
    gold: np.ndarray,
    scores: np.ndarray,
    thresholds: np.ndarray,
    label_names: Sequence[str],
    k: int = MISTAKES_SHOWN,
) -> list[dict[str, Any]]:
    """The `k` texts whose predicted label set misses its gold set the most surely: ranked by the largest
    |score - gold| over their wrong labels.

    Example:
        >>> gold, scores = np.array([[1, 0], [1, 1]]), np.array([[0.9, 0.2], [0.8, 0.1]])
        >>> multilabel_mistakes(["a", "b"], gold, scores, np.array([0.5, 0.5]), ["x", "y"])
        [{'index': 1, 'text': 'b', 'gold': ['x', 'y'], 'predicted': ['x'], 'confidence': 0.9}]
    """
    gold = np.asarray(gold) > 0.5
    predicted = decide(scores, thresholds).astype(bool)
    wrong = predicted != gold  # (rows, labels)
    miss = np.where(wrong, np.abs(scores - gold), 0.0).max(axis=1)  # (rows,)
    rows = np.flatnonzero(wrong.any(axis=1))
    order = rows[np.argsort(-miss[rows], kind="stable")][:k]
    names = np.asarray(label_names, dtype=object)
    return [
        {
            "index": int(i),
            "text": texts[i],
            "gold": list(names[gold[i]]),
            "predicted": list(names[predicted[i]]),
            "confidence": round(float(miss[i]), 6),
        }
        for i in order
    ]


def _multilabel_sections(
    run: RunRecord,
    texts: list[str],
    gold: np.ndarray,
    scores: np.ndarray,
    label_names: list[str],
    split_name: str,
    highlight: Highlighter | None,
    thresholds: np.ndarray,
) -> list[str]:
    metrics = multilabel_metrics(gold, scores, label_names, thresholds)
    cards = [
        ("micro-F1", f"{metrics['micro_f1']:.4f}"),
        ("macro-F1", f"{metrics['macro_f1']:.4f}"),
        ("subset accuracy", f"{metrics['subset_accuracy']:.4f}"),
        ("Hamming loss", f"{metrics['hamming_loss']:.4f}"),
        (
            "labels a text (gold / predicted)",
            f"{metrics['labels_per_text']['gold']:.2f} / {metrics['labels_per_text']['predicted']:.2f}",
        ),
        ("rows", str(metrics["num_samples"])),
        ("run", run.name),
        ("split", split_name),
    ]
    if run.info and run.info.get("family"):
        cards.append(("family", str(run.info["family"])))
    body = "".join(
        f'<div class="card"><div class="name">{_esc(name)}</div><div class="value">{_esc(value)}</div></div>'
        for name, value in cards
    )
    headline = f'<section id="headline">\n<h2>Headline (multi-label)</h2>\n<div class="cards">{body}</div>\n</section>'
    rows = "".join(
        f'<tr><td class="text">{_esc(name)}</td><td>{m["precision"]:.4f}</td><td>{m["recall"]:.4f}</td>'
        f"<td>{m['f1']:.4f}</td><td>{m['support']}</td><td>{metrics['thresholds'][name]:.2f}</td></tr>"
        for name, m in metrics["per_label"].items()
    )
    per_label = (
        '<section id="per-label">\n<h2>Per label</h2>\n<p class="note">Each label is decided on its own: predicted '
        "when its score reaches its threshold (tuned per label on dev, or --threshold).</p>\n<table>\n"
        '<tr><th class="text">label</th><th>precision</th><th>recall</th><th>F1</th><th>support</th>'
        "<th>threshold</th></tr>\n"
        f"{rows}\n</table>\n</section>"
    )
    header = "".join(f"<th>{_esc(name)}</th>" for name in label_names)
    cells = "".join(
        f'<tr><th class="text">{_esc(name)}</th>' + "".join(f"<td>{count}</td>" for count in row) + "</tr>"
        for name, row in zip(label_names, metrics["co_occurrence"])
    )
    co_occurrence = (
        '<section id="co-occurrence">\n<h2>Labels together</h2>\n<p class="note">Texts whose gold labels include both '
        "the row's and the column's label; the diagonal is each label's support.</p>\n"
        f"<table>\n<tr><th></th>{header}</tr>\n{cells}\n</table>\n</section>"
    )
    shown = multilabel_mistakes(texts, gold, scores, thresholds, label_names, MISTAKES_SHOWN)
    head = f'<section id="mistakes">\n<h2>Label sets furthest off (top {MISTAKES_SHOWN})</h2>\n'
    if not shown:
        mistakes_section = head + '<p class="note">Every text got exactly its labels.</p>\n</section>'
    else:
        lines = "".join(
            f'<tr class="mistake"><td>{m["confidence"]:.3f}</td><td class="text">{_esc(" + ".join(m["gold"]))}</td>'
            f'<td class="text">{_esc(" + ".join(m["predicted"]) or "(none)")}</td>'
            f'<td class="text">{_highlighted(m["text"], highlight)}</td></tr>'
            for m in shown
        )
        mistakes_section = (
            head
            + '<table>\n<tr><th>largest |score - gold|</th><th class="text">gold</th><th class="text">predicted</th>'
            f'<th class="text">text</th></tr>\n{lines}\n</table>\n</section>'
        )
    return [headline, per_label, co_occurrence, _curves_section(run.metrics), mistakes_section]


# ---------------------------------------------------------------- sections


def _headline_section(
    metrics: dict[str, Any], calib: dict[str, Any], run_name: str, split_name: str, info: dict[str, Any] | None
) -> str:
    cards = [
        ("accuracy", f"{metrics['accuracy']:.4f}"),
        ("macro-F1", f"{metrics['macro_f1']:.4f}"),
        (f"lowest recall ({metrics['lowest_recall']['label']})", f"{metrics['lowest_recall']['recall']:.4f}"),
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


def _per_class_section(metrics: dict[str, Any], small: dict[str, int]) -> str:
    warning = ""
    if small:
        shown = ", ".join(f"{name} ({rows} rows)" for name, rows in small.items())
        warning = (
            f'<p class="warning">Fewer than {MIN_DEV_ROWS_PER_CLASS} rows of {_esc(shown)}: one row moves their '
            "recall by 5 points or more, so read their figures as rough; add rows of these classes.</p>\n"
        )
    rows = "".join(
        f'<tr><td class="text">{_esc(name)}</td><td>{m["precision"]:.4f}</td><td>{m["recall"]:.4f}</td>'
        f"<td>{m['f1']:.4f}</td><td>{m['support']}</td></tr>"
        for name, m in metrics["per_class"].items()
    )
    return (
        '<section id="per-class">\n<h2>Per class</h2>\n' + warning + "<table>\n"
        '<tr><th class="text">label</th><th>precision</th><th>recall</th><th>F1</th><th>support</th></tr>\n'
        f"{rows}\n</table>\n</section>"
    )


def _confusion_section(metrics: dict[str, Any]) -> str:
    image = _figure(
        lambda: plots.confusion_png(np.array(metrics["confusion_matrix"]), metrics["label_names"]), "confusion matrix"
    )
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
    return head + _figure(lambda: plots.curves_png(epochs), "training curves") + "\n</section>"


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
        f"{_figure(lambda: plots.reliability_png(calib), 'reliability diagram')}\n"
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
    """The whole text, escaped; with `highlight`, its words found in order in the text each in a span whose
    background alpha is |weight| / max |weight|. The model's words are lower-cased word pieces of the first
    max_length tokens: they mark the original text, which is shown whole and as written.

    Example:
        >>> _highlighted("Stocks FELL, again.", lambda text: [("stocks", 1.0), ("fell", -0.5)]).count("<span")
        2
    """
    if highlight is None:
        return _esc(text)
    words = [(word, float(weight)) for word, weight in highlight(text) if word.strip()]
    if not words:
        return _esc(text)
    largest = max(abs(weight) for _, weight in words) or 1.0
    lowered, cursor, parts = text.lower(), 0, []
    for word, weight in words:
        start = lowered.find(word.lower(), cursor)
        if start < 0:
            continue  # an [UNK] piece, or one the tokenizer normalised (accents): left unmarked
        end = start + len(word)
        alpha = min(abs(weight) / largest, 1.0)
        # Orange for evidence for the prediction, blue for evidence against it.
        colour = "255, 140, 0" if weight >= 0 else "30, 120, 255"
        parts.append(_esc(text[cursor:start]))
        parts.append(
            f'<span class="word" style="background-color: rgba({colour}, {alpha:.3f})" '
            f'title="{weight:.4f}">{_esc(text[start:end])}</span>'
        )
        cursor = end
    parts.append(_esc(text[cursor:]))
    return "".join(parts)


# ---------------------------------------------------------------- helpers


def _figure(draw: Callable[[], bytes], alt: str) -> str:
    """`draw`'s PNG as an image tag; a figure that cannot be drawn is logged and noted in the page instead."""
    try:
        return _img(draw(), alt)
    except Exception as error:  # matplotlib raises many kinds; a figure is never worth the report
        log.warning("the %s figure was not drawn: %s: %s", alt, type(error).__name__, error)
        cause = _esc(f"{type(error).__name__}: {error}")
        return f'<p class="warning">The {_esc(alt)} figure could not be drawn ({cause}).</p>'


def _drawn(draw: Callable[[], Any], name: str) -> bool:
    """Whether `draw` wrote the figure `name`; a failure is logged, and the rest of the files still written."""
    try:
        draw()
    except StorageError:  # a full or read-only disk fails the whole set, which then leaves the old one whole
        raise
    except Exception as error:  # matplotlib raises many kinds; a figure is never worth the explanation
        log.warning("the figure %s was not drawn: %s: %s", name, type(error).__name__, error)
        return False
    return True


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


# ---------------------------------------------------------------- explanations


def highlight_html(words_and_weights: Sequence[tuple[str, float]], title: str = "") -> str:
    """An HTML fragment: each word in a <span> shaded by its weight (max weight = full colour).

    Example:
        >>> highlight_html([("stocks", 0.6), ("<b>", 0.3)])  # doctest: +ELLIPSIS
        '<div class="highlight"><span ... title="0.6000">stocks</span> <span ... title="0.3000">&lt;b&gt;</span></div>'
    """
    top = max((float(w) for _, w in words_and_weights), default=0.0)
    spans = []
    for word, weight in words_and_weights:
        alpha = max(float(weight), 0.0) / top if top > 0 else 0.0
        spans.append(
            f'<span style="background-color: rgba(255, 140, 0, {alpha:.3f}); padding: 1px 2px; border-radius: 3px" '
            f'title="{float(weight):.4f}">{html.escape(word)}</span>'
        )
    heading = f"<h3>{html.escape(title)}</h3>" if title else ""
    return f'{heading}<div class="highlight">{" ".join(spans)}</div>'


def _png_tag(path: Path, alt: str) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    caption = html.escape(alt)
    return (
        f'<figure><img src="data:image/png;base64,{data}" alt="{caption}"><figcaption>{caption}</figcaption></figure>'
    )


def _prob_bars(probs: dict[str, float], label: str) -> str:
    rows = []
    for name, p in sorted(probs.items(), key=lambda item: -item[1]):
        weight = "bold" if name == label else "normal"
        rows.append(
            f'<div style="display: flex; align-items: center; gap: 8px; font-weight: {weight}">'
            f'<span style="width: 10em">{html.escape(name)}</span>'
            f'<div style="background: #4a78c2; height: 12px; width: {300 * p:.1f}px"></div>'
            f"<span>{p:.3f}</span></div>"
        )
    return "\n".join(rows)


def write_explanation(expl: Any, out_dir: Path) -> dict[str, Path]:
    """Write explanation.json, the PNGs and a standalone explanation.html of an `Explanation` into `out_dir`.

    PNGs: heatmap.png (the chosen layer's map), grid.png (every layer and head) and rollout.png for
    attention maps (layers, heads, tokens, tokens); weights.png for one weight per token or feature.
    Returns name -> path.

    The files are one set: they are written into a `out_dir/.explanation.*.partial/` folder and moved into `out_dir`
    only once all are written (a previous explanation's files the new one lacks are removed then), so a
    failed write leaves the previous explanation as it was, never half of each. Files of those names that
    are not an earlier explanation's (no textcls explanation.json beside them) are never replaced: that is
    a `ConfigError` before anything is drawn.
    """
    final_dir = make_folder(Path(out_dir))
    _check_explanation_folder(final_dir)
    with work_folder(final_dir, "explanation") as work_dir:
        names = _write_explanation_files(expl, work_dir)
        with folder_lock(final_dir):  # two explains into one folder: each moves its whole set in turn
            _check_explanation_folder(final_dir)
            for name in EXPLANATION_FILES - set(names):
                (final_dir / name).unlink(missing_ok=True)
            for name in names:
                os.replace(work_dir / name, final_dir / name)
    return {name: final_dir / name for name in names}


# every file `write_explanation` may write: a new explanation removes those of an old one it does not write
EXPLANATION_FILES = frozenset(
    {"explanation.json", "explanation.html", "heatmap.png", "grid.png", "rollout.png", "weights.png"}
)
# what marks explanation.json as one textcls wrote (`Explanation.to_dict`)
_EXPLANATION_KEYS = frozenset({"text", "label", "family", "tokens", "token_weights"})


def _check_explanation_folder(folder: Path) -> None:
    """Refuse `folder` when it holds files named like an explanation's that no earlier explanation wrote."""
    present = sorted(name for name in EXPLANATION_FILES if (folder / name).exists())
    if not present or _is_explanation(folder / "explanation.json"):
        return
    raise ConfigError(
        f"{folder} holds {', '.join(present)}, which textcls explain did not write (no explanation of its own "
        "is there), and an explanation would replace them; pass another --out or move those files"
    )


def _is_explanation(path: Path) -> bool:
    data = read_json_object(path)
    return data is not None and _EXPLANATION_KEYS <= data.keys()


def _write_explanation_files(expl: Any, out_dir: Path) -> list[str]:
    """`write_explanation`'s files, written into `out_dir`; returns their names."""
    paths: dict[str, Path] = {}
    data = expl.to_dict()
    paths["explanation.json"] = write_json(out_dir / "explanation.json", data)

    figures: list[tuple[str, str]] = []  # (file name, caption)
    if expl.attention is not None and np.ndim(expl.attention) == 4:
        head = "mean over heads" if expl.head is None else f"head {expl.head}"
        layer_maps = expl.attention[expl.layer]
        matrix = layer_maps.mean(axis=0) if expl.head is None else layer_maps[expl.head]
        caption = f"attention, layer {expl.layer}, {head}"
        if _drawn(
            lambda: plots.attention_heatmap(matrix, expl.tokens, out_dir / "heatmap.png", caption), "heatmap.png"
        ):
            figures.append(("heatmap.png", caption))
        if _drawn(lambda: plots.attention_grid(expl.attention, expl.tokens, out_dir / "grid.png"), "grid.png"):
            figures.append(("grid.png", "attention of every layer (rows) and head (columns)"))
        rollout = "attention rollout from [CLS]"
        if _drawn(lambda: plots.token_bars(expl.tokens, expl.rollout, out_dir / "rollout.png", rollout), "rollout.png"):
            figures.append(("rollout.png", "attention rollout from [CLS] through all layers"))
    else:
        caption = "n-gram contributions to the predicted label" if expl.features else "attention weights"
        if _drawn(
            lambda: plots.token_bars(expl.tokens, expl.token_weights, out_dir / "weights.png", caption), "weights.png"
        ):
            figures.append(("weights.png", caption))
    for name, _ in figures:
        paths[name] = out_dir / name

    shown = "n-gram contributions" if expl.features else "attention per word"
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>textcls explanation</title>
<style>body {{ font-family: sans-serif; max-width: 60em; margin: 2em auto; }} img {{ max-width: 100%; }}
.highlight {{ line-height: 2; font-size: 1.2em; }}</style></head>
<body>
<h1>Prediction: {html.escape(expl.label)}</h1>
<p>Family: {html.escape(expl.family)}</p>
<blockquote>{html.escape(expl.text)}</blockquote>
<h2>Probabilities</h2>
{_prob_bars(expl.probs, expl.label)}
<h2>Words ({shown})</h2>
{highlight_html(expl.words())}
<h2>Figures</h2>
{"".join(_png_tag(out_dir / name, caption) for name, caption in figures)}
</body></html>
"""
    paths["explanation.html"] = write_text_atomic(out_dir / "explanation.html", page)
    return list(paths)


# ---------------------------------------------------------------- label audit


def build_audit_page(summary: dict[str, Any], issues: Sequence[dict[str, Any]], label_names: Sequence[str]) -> str:
    """The HTML page of a label audit (`textcls audit`): the summary, rows and issues per class, and each
    issue's text (escaped) with its given and suggested label, most likely error first.

    Example:
        >>> page = build_audit_page({"rows": 2, "issues": 1, "per_class": []},
        ...     [{"rank": 1, "row": 2, "given": "World", "suggested": "Sports", "label_quality": 0.01,
        ...       "text": "<b>goal</b>"}], ["World", "Sports"])
        >>> "&lt;b&gt;goal&lt;/b&gt;" in page and "<b>goal</b>" not in page
        True
    """
    title = f"textcls label audit: {summary.get('source', '')}"
    labels = _esc(", ".join(label_names))
    cards = [
        ("rows audited", summary.get("rows")),
        ("likely label errors", summary.get("issues")),
        ("out-of-sample accuracy", summary.get("out_of_sample_accuracy")),
        ("method", summary.get("method")),
        ("folds", summary.get("folds")),
    ]
    card_html = "".join(
        f'<div class="card"><div class="value">{_esc(_fmt(value))}</div><div class="name">{_esc(name)}</div></div>'
        for name, value in cards
        if value is not None
    )
    class_rows = "".join(
        f'<tr><td class="text">{_esc(row["label"])}</td><td>{row["rows"]}</td><td>{row["issues"]}</td>'
        f"<td>{row['suggested']}</td></tr>"
        for row in summary.get("per_class", [])
    )
    per_class = (
        '<table><tr><th class="text">class</th><th>rows</th><th>issues (given)</th><th>issues (suggested)</th></tr>'
        f"{class_rows}</table>"
    )
    issue_rows = "".join(
        f'<tr class="mistake"><td>{issue["rank"]}</td><td>{issue["row"]}</td><td class="text">{_esc(issue["given"])}'
        f'</td><td class="text">{_esc(issue["suggested"])}</td><td>{float(issue["label_quality"]):.4f}</td>'
        f'<td class="text">{_esc(issue["text"])}</td></tr>'
        for issue in issues
    )
    total = summary.get("issues", len(issues))
    note = (
        f'<p class="note">The {len(issues)} most likely of {total} issues; issues.csv and issues.jsonl list all.</p>'
        if len(issues) < (total or 0)
        else ""
    )
    listing = (
        '<table><tr><th>rank</th><th>row</th><th class="text">given label</th><th class="text">suggested label</th>'
        f'<th>label quality</th><th class="text">text</th></tr>{issue_rows}</table>'
        if issues
        else '<p class="note">No likely label errors found.</p>'
    )
    sections = [
        f'<div class="cards">{card_html}</div>',
        f"<h2>Per class</h2>{per_class}",
        f"<h2>Likely label errors</h2>{note}{listing}",
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{_esc(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        f"<h1>{_esc(title)}</h1>\n" + "\n".join(sections) + f'\n<p class="note">Labels: {labels}</p>\n'
        "</body>\n</html>\n"
    )
