"""Pictures of an `Explanation`: heatmaps, a layers x heads grid, token bars and an HTML page.

Plotting works from arrays only (never hooks into a model). matplotlib is an optional extra,
imported when a plot is drawn; figures are drawn on the Agg canvas without pyplot, so nothing
here opens a window or touches global backend state.

Example:
    >>> paths = write_explanation(explain(classifier, "Stocks fell."), Path("explain"))  # doctest: +SKIP
    >>> sorted(paths)                                                                    # doctest: +SKIP
    ['explanation.html', 'explanation.json', 'grid.png', 'heatmap.png', 'rollout.png']
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from textcls.errors import TextclsError
from textcls.files import write_atomic, write_json, write_text_atomic

if TYPE_CHECKING:
    from textcls.explain import Explanation

__all__ = ["attention_grid", "attention_heatmap", "highlight_html", "token_bars", "write_explanation"]

DPI = 100


def _figure(width: float, height: float) -> Any:
    """A matplotlib Figure on the Agg canvas; the import error names the extra to install."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as error:
        raise TextclsError(
            f"plots need matplotlib, found it missing ({error}); run `pip install 'textcls[plots]'`"
        ) from error
    figure = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(figure)
    return figure


def _save(figure: Any, path: Path) -> Path:
    return write_atomic(path, lambda temp: figure.savefig(temp, format="png", bbox_inches="tight"))


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
    axes.set_xticks(ticks, labels=list(tokens), rotation=90, fontsize=font)
    axes.set_yticks(ticks, labels=list(tokens), fontsize=font)
    axes.set_xlabel("key (attended to)")
    axes.set_ylabel("query")
    axes.set_title(title)
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
    figure.suptitle(title or f"attention, {layers} layers x {heads} heads, {len(tokens)} tokens")
    return _save(figure, path)


def token_bars(tokens: Sequence[str], weights: np.ndarray, path: Path, title: str = "") -> Path:
    """A horizontal bar per token (first token on top), for attention weights, rollout or n-gram scores."""
    weights = np.asarray(weights, dtype=float)
    figure = _figure(6, min(1.5 + 0.28 * len(tokens), 30))
    axes = figure.add_subplot(1, 1, 1)
    positions = np.arange(len(tokens))
    colors = ["tab:blue" if w >= 0 else "tab:red" for w in weights]
    axes.barh(positions, weights, color=colors)
    axes.set_yticks(positions, labels=list(tokens), fontsize=_label_size(len(tokens)))
    axes.invert_yaxis()
    axes.axvline(0.0, color="black", linewidth=0.5)
    axes.set_xlabel("weight")
    axes.set_title(title)
    return _save(figure, path)


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
    return f'<figure><img src="data:image/png;base64,{data}" alt="{caption}"><figcaption>{caption}</figcaption></figure>'


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


def write_explanation(expl: Explanation, out_dir: Path) -> dict[str, Path]:
    """Write explanation.json, the family's PNGs and a standalone explanation.html into `out_dir`.

    PNGs: heatmap.png (the chosen layer's map), grid.png (every layer and head) and rollout.png for
    pretrained/scratch-transformer; weights.png for lstm-attention and tfidf. Returns name -> path.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    data = expl.to_dict()
    paths["explanation.json"] = write_json(out_dir / "explanation.json", data)

    figures: list[tuple[str, str]] = []  # (file name, caption)
    if expl.attention is not None and np.ndim(expl.attention) == 4:
        head = "mean over heads" if expl.head is None else f"head {expl.head}"
        layer_maps = expl.attention[expl.layer]
        matrix = layer_maps.mean(axis=0) if expl.head is None else layer_maps[expl.head]
        caption = f"attention, layer {expl.layer}, {head}"
        attention_heatmap(matrix, expl.tokens, out_dir / "heatmap.png", caption)
        figures.append(("heatmap.png", caption))
        attention_grid(expl.attention, expl.tokens, out_dir / "grid.png")
        figures.append(("grid.png", "attention of every layer (rows) and head (columns)"))
        token_bars(expl.tokens, expl.rollout, out_dir / "rollout.png", "attention rollout from [CLS]")
        figures.append(("rollout.png", "attention rollout from [CLS] through all layers"))
    else:
        caption = "n-gram contributions to the predicted label" if expl.family == "tfidf" else "attention weights"
        token_bars(expl.tokens, expl.token_weights, out_dir / "weights.png", caption)
        figures.append(("weights.png", caption))
    for name, _ in figures:
        paths[name] = out_dir / name

    shown = "n-gram contributions" if expl.family == "tfidf" else "attention per word"
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
    return paths
