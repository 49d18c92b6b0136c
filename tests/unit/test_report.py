"""The HTML evaluation report and calibration, from generated predictions: no model is trained."""

from __future__ import annotations

import base64
import io
import json
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

from textcls.reporting.html import build_report, mistakes, write_report
from textcls.reporting.metrics import calibration

LABEL_NAMES = ["World", "Sports", "Business", "Sci/Tech"]
SECTION_IDS = ["headline", "per-class", "confusion", "curves", "calibration", "mistakes"]
CHROMIUM = Path("/usr/bin/chromium")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
IMG_PATTERN = re.compile(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"')


def random_predictions(n: int = 60, classes: int = 4, seed: int = 0) -> tuple[list[str], list[int], np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = [i % classes for i in range(n)]
    logits = rng.normal(size=(n, classes)) * 2.0
    logits[np.arange(n), labels] += 1.5  # better than chance, but with mistakes
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)  # (n, classes)
    texts = [f"row {i} about {LABEL_NAMES[labels[i]]} news" for i in range(n)]
    texts[0] = "<script>alert('x')</script> & friends"
    return texts, labels, probs


@pytest.fixture()
def run_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "runs" / "demo-run"
    folder.mkdir(parents=True)
    epochs = [
        {
            "epoch": e,
            "step": 10 * e,
            "train_loss": 1.4 / e,
            "dev_loss": 1.2 / e + 0.1,
            "dev_accuracy": 0.4 + 0.15 * e,
            "dev_macro_f1": 0.35 + 0.15 * e,
        }
        for e in (1, 2, 3)
    ]
    (folder / "metrics.json").write_text(json.dumps({"train": {"epochs": epochs}, "dev": {}}), encoding="utf-8")
    (folder / "textcls.json").write_text(json.dumps({"format_version": 1, "family": "tfidf"}), encoding="utf-8")
    return folder


@pytest.fixture()
def report_html(run_dir: Path) -> str:
    texts, labels, probs = random_predictions()
    return build_report(run_dir, texts, labels, probs, LABEL_NAMES, "dev")


def decode_png_pixels(data: bytes) -> np.ndarray:
    from matplotlib.image import imread

    assert data.startswith(PNG_MAGIC)
    return imread(io.BytesIO(data), format="png")


def test_report_has_every_section_and_headline_facts(report_html: str) -> None:
    for section in SECTION_IDS:
        assert f'id="{section}"' in report_html
    headline = report_html.split('id="headline"')[1].split("</section>")[0]
    for fact in ("accuracy", "macro-F1", "ECE", "rows", "demo-run", "tfidf", "60"):
        assert fact in headline
    assert "http://" not in report_html and "https://" not in report_html


def test_report_figures_are_valid_non_blank_pngs(report_html: str) -> None:
    images = IMG_PATTERN.findall(report_html)
    assert report_html.count('<img src="data:image/png;base64,') == len(images) >= 3
    for encoded in images:
        pixels = decode_png_pixels(base64.b64decode(encoded))
        assert pixels.ndim == 3 and pixels.shape[0] > 50 and pixels.shape[1] > 50
        assert pixels.std() > 0.01


def test_curves_note_without_metrics_or_with_one_epoch(tmp_path: Path) -> None:
    texts, labels, probs = random_predictions()
    page = build_report(tmp_path, texts, labels, probs, LABEL_NAMES, "test")
    curves = page.split('id="curves"')[1].split("</section>")[0]
    assert "No metrics.json" in curves and "<img" not in curves

    one_epoch = {"epoch": 1, "step": 5, "train_loss": 1.0, "dev_loss": 0.9, "dev_accuracy": 0.5, "dev_macro_f1": 0.4}
    (tmp_path / "metrics.json").write_text(json.dumps({"train": {"epochs": [one_epoch]}}), encoding="utf-8")
    page = build_report(tmp_path, texts, labels, probs, LABEL_NAMES, "test")
    curves = page.split('id="curves"')[1].split("</section>")[0]
    assert "one epoch" in curves and "<img" not in curves


def test_user_text_is_escaped(run_dir: Path) -> None:
    texts, labels, probs = random_predictions()
    probs[0] = [0.01, 0.97, 0.01, 0.01]  # row 0 (gold World) becomes the most confident mistake
    page = build_report(run_dir, texts, labels, probs, LABEL_NAMES, "dev")
    assert "<script>" not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; friends" in page
    assert "Sci/Tech" in page


def test_mistakes_are_wrong_and_sorted_by_confidence() -> None:
    texts, labels, probs = random_predictions()
    predicted = probs.argmax(axis=1)
    wrong = int((predicted != np.array(labels)).sum())
    assert wrong > 3

    shown = mistakes(texts, labels, probs, LABEL_NAMES, k=3)
    assert len(shown) == 3
    confidences = [m["confidence"] for m in shown]
    assert confidences == sorted(confidences, reverse=True)
    assert all(m["gold"] != m["predicted"] for m in shown)
    # The top three are the three most confident of all wrong rows.
    wrong_confidences = sorted(probs.max(axis=1)[predicted != np.array(labels)], reverse=True)
    assert confidences == pytest.approx(wrong_confidences[:3])
    assert len(mistakes(texts, labels, probs, LABEL_NAMES, k=1000)) == wrong


def test_mistakes_empty_when_all_correct() -> None:
    probs = np.eye(4)[[0, 1, 2, 3]]
    assert mistakes(["a", "b", "c", "d"], [0, 1, 2, 3], probs, LABEL_NAMES) == []


def test_calibration_perfect_vs_over_confident() -> None:
    rng = np.random.default_rng(1)
    n = 20_000
    confidence = rng.uniform(0.5, 1.0, size=n)
    # Perfectly calibrated: the top label is right with probability equal to its confidence.
    correct = rng.uniform(size=n) < confidence
    labels = np.where(correct, 0, 1)
    probs = np.stack([confidence, 1.0 - confidence], axis=1)  # (n, 2), top label is class 0
    calibrated = calibration(labels, probs, bins=10)
    assert calibrated["ece"] < 0.02
    assert sum(b["count"] for b in calibrated["bins"]) == n
    assert len(calibrated["bins"]) == 10
    assert calibrated["bins"][0]["count"] == 0 and calibrated["bins"][0]["accuracy"] is None

    # Over-confident: same predictions, but the model claims 0.99 every time.
    over = np.stack([np.full(n, 0.99), np.full(n, 0.01)], axis=1)
    over_confident = calibration(labels, over, bins=10)
    assert over_confident["ece"] > calibrated["ece"] + 0.15
    assert sum(b["count"] for b in over_confident["bins"]) == n


def test_calibration_edges_and_bad_input() -> None:
    probs = np.array([[1.0, 0.0], [0.5, 0.5], [0.0, 1.0]])
    result = calibration([0, 1, 1], probs, bins=4)
    assert sum(b["count"] for b in result["bins"]) == 3
    assert result["bins"][-1]["count"] == 2  # confidence 1.0 goes in the last bin
    with pytest.raises(ValueError, match="bins"):
        calibration([0], np.array([[1.0, 0.0]]), bins=0)
    with pytest.raises(ValueError, match="shape"):
        calibration([0, 1], np.array([[1.0, 0.0]]))


def test_highlight_callback_output_appears_as_spans(run_dir: Path) -> None:
    texts, labels, probs = random_predictions()
    calls: list[str] = []

    def highlight(text: str) -> list[tuple[str, float]]:
        calls.append(text)
        words = text.split()
        return [(word, float(i)) for i, word in enumerate(words)]

    page = build_report(run_dir, texts, labels, probs, LABEL_NAMES, "dev", highlight=highlight)
    section = page.split('id="mistakes"')[1].split("</section>")[0]
    assert calls, "highlight was never called"
    assert section.count('<span class="word"') == sum(len(t.split()) for t in calls)
    assert "rgba(255, 140, 0, 1.000)" in section  # the heaviest word of each text is fully opaque
    assert "rgba(255, 140, 0, 0.000)" in section
    assert "<script>" not in page


def test_highlights_mark_the_whole_text_as_written() -> None:
    """The model's words are lower-cased pieces of the first tokens: the cell shows the original text whole,
    its matching words marked in order, and nothing for the words the model never saw."""
    from textcls.reporting.html import _highlighted

    text = "Stocks FELL, again & again; the end <b>"
    cell = _highlighted(text, lambda _: [("stocks", 0.5), ("fell", -1.0), (",", 0.1), ("again", 0.2)])
    plain = re.sub(r"<[^>]+>", "", cell.replace("&lt;b&gt;", "")).replace("&amp;", "&")
    assert plain == text.replace(" <b>", " ")
    assert ">Stocks</span>" in cell and ">FELL</span>" in cell and "rgba(30, 120, 255, 1.000)" in cell
    assert cell.count('<span class="word"') == 4 and cell.endswith("the end &lt;b&gt;")


def test_write_report_is_atomic_and_returns_path(tmp_path: Path, report_html: str) -> None:
    path = write_report(tmp_path / "out" / "report.html", report_html)
    assert path == tmp_path / "out" / "report.html"
    assert path.read_text(encoding="utf-8") == report_html
    assert [p.name for p in path.parent.iterdir()] == ["report.html"]  # no temporary file left


@pytest.mark.skipif(
    not CHROMIUM.exists(), reason=f"headless Chromium not installed at {CHROMIUM} (apt-get install -y chromium)"
)
def test_report_renders_in_headless_chromium(tmp_path: Path, report_html: str) -> None:
    report = write_report(tmp_path / "report.html", report_html)
    shot = tmp_path / "shot.png"
    command = [
        str(CHROMIUM),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
        "--window-size=1200,2400",
        f"--screenshot={shot}",
        report.resolve().as_uri(),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert shot.is_file(), f"no screenshot; chromium exit {result.returncode}: {result.stderr[-2000:]}"
    pixels = decode_png_pixels(shot.read_bytes())
    assert pixels.shape[:2] == (2400, 1200)
    rgb = pixels[..., :3]
    assert rgb.std() > 0.05
    non_white = (rgb < 0.95).any(axis=-1).mean()
    assert non_white > 0.03, f"only {non_white:.1%} of the screenshot is not white; figures did not render?"
    # The confusion heatmap's blues show up as clearly coloured pixels.
    blue = ((rgb[..., 2] - rgb[..., 0]) > 0.2).mean()
    assert blue > 0.002
