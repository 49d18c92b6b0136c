"""Render the `textcls serve` web page in headless Chromium and save docs/serve.png.

python docs/screenshot_page.py --run runs/agnews --backend onnx-int8
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time

import httpx

TEXT = "NASA's new rover sends back the first images of the Martian surface, scientists say."


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", default="runs/agnews")
    parser.add_argument("--backend", default="torch")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--output", default="docs/serve.png")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        sys.exit("no Chromium on PATH (apt-get install chromium)")
    url = f"http://127.0.0.1:{args.port}"
    with tempfile.TemporaryFile() as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "textcls", "serve", args.run, "--backend", args.backend, "--port", str(args.port)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            for _ in range(300):
                try:
                    if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.3)
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
                page = browser.new_page(viewport={"width": 900, "height": 620})
                page.goto(url)
                page.wait_for_function("document.getElementById('model').textContent.includes('accuracy')")
                page.fill("#text", TEXT)
                page.click("#classify")
                page.wait_for_function("document.getElementById('words').textContent.length > 0")
                page.screenshot(path=args.output, full_page=True)
                print(f"{page.text_content('#label')}: written {args.output}")
                browser.close()
        finally:
            server.terminate()
            server.wait(timeout=60)


if __name__ == "__main__":
    main()
