"""Make docs/images/mlflow-run.png: a short textcls run reported to MLflow, shown by the MLflow UI.

Trains a small LSTM on generated topic sentences with `--report-to mlflow` into a throw-away SQLite
store, starts `mlflow ui` on it and photographs the run's metric charts with the system Chromium
(playwright, no browser download).

    python docs/screenshot_mlflow.py            # writes docs/images/mlflow-run.png
"""

from __future__ import annotations

import csv
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

OUT = Path(__file__).parent / "images" / "mlflow-run.png"
PORT = 5077
TOPICS = {
    "World": "minister election summit border treaty parliament",
    "Sports": "match goal striker season coach tournament",
    "Business": "stocks profit market shares earnings merger",
    "Sci/Tech": "software chip research launch network device",
}


def write_data(folder: Path, rows: int = 400, seed: int = 0) -> Path:
    """A CSV of short sentences, each built from its topic's words and shared filler; a tenth carry a wrong label,
    so the curves have somewhere to go."""
    rng = random.Random(seed)
    filler = "the a of in on with after before report says new".split()
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "train.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["label", "text"])
        for _ in range(rows):
            label = rng.choice(list(TOPICS))
            words = rng.choices(TOPICS[label].split(), k=1) + rng.choices(filler, k=8)
            rng.shuffle(words)
            shown = rng.choice(list(TOPICS)) if rng.random() < 0.1 else label
            writer.writerow([shown, " ".join(words)])
    return folder / "train.csv"


def wait_for(url: str, seconds: float = 90.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise SystemExit(f"mlflow ui did not answer at {url} within {seconds:.0f}s")


def main() -> None:
    import mlflow
    from playwright.sync_api import sync_playwright

    work = Path(tempfile.mkdtemp(prefix="textcls-mlflow-"))
    uri = f"sqlite:///{work / 'mlflow.db'}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri}
    train = write_data(work / "data")
    command = [sys.executable, "-m", "textcls", "train", "--train", str(train), "--family", "lstm", "--epochs", "6"]
    command += ["--batch-size", "16", "--logging-steps", "5", "--report-to", "mlflow"]
    command += ["--out", str(work / "agnews-lstm")]
    subprocess.run(command, check=True, env=env, cwd=work)

    client = mlflow.MlflowClient(uri)
    experiment = client.search_experiments()[0].experiment_id
    run = client.search_runs([experiment])[0]
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri, "--port", str(PORT)],
        env=env,
        cwd=work,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(f"http://127.0.0.1:{PORT}/health")
        chromium = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(f"http://127.0.0.1:{PORT}/#/experiments/{experiment}/runs/{run.info.run_id}/model-metrics")
            page.get_by_text("dev/accuracy").first.wait_for(timeout=90_000)
            assistant = page.locator("button[aria-label='Close'], button[aria-label='close']")
            if assistant.count():  # the assistant side panel hides part of the charts
                assistant.last.click()
            page.wait_for_timeout(4000)  # the charts draw after their names
            OUT.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(OUT))
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)
    print(f"wrote {OUT} ({OUT.stat().st_size // 1024} KB)")


if __name__ == "__main__":
    main()
