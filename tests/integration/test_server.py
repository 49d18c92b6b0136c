"""The HTTP API through a real `textcls serve` process (uvicorn) on a free loopback port.

Covers predict, explain, model, health, auth on and off, hostile input, micro-batching under
concurrency, graceful shutdown, a schemathesis fuzz pass and the web page in headless Chromium.
"""

from __future__ import annotations

import concurrent.futures
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi", reason="the serve extra is not installed (pip install 'textcls[serve]')")

TOKEN = "test-token-0123456789"
# `textcls serve` answers or refuses what is queued, then exits 0 on SIGTERM.
CLEAN_EXIT = (0,)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """`textcls serve RUN` in a subprocess; stderr goes to a file the tests can read."""

    def __init__(self, run_dir: Path, log_path: Path, *args: str, env: dict[str, str] | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.log = log_path.open("w")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "textcls",
                "serve",
                str(run_dir),
                "--port",
                str(self.port),
                "--no-access-log",
                *args,
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}:\n{self.log_path.read_text()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"server did not answer /healthz in 120 s:\n{self.log_path.read_text()}")

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()
        return self.process.returncode


@pytest.fixture(scope="module")
def server(tiny_run, tmp_path_factory):
    # torch, so answers can be compared with the torch model to 1e-5 (auto may pick int8, whose
    # activation scales follow each micro-batch); the default backend has its own test below
    instance = Server(
        tiny_run, tmp_path_factory.mktemp("serve") / "server.log", "--max-texts", "32", "--backend", "torch"
    )
    yield instance
    assert instance.stop() in CLEAN_EXIT, instance.log_path.read_text()


@pytest.fixture(scope="module")
def guarded_server(tiny_run, tmp_path_factory):
    # The token comes from the environment, as a deployment would pass it.
    instance = Server(tiny_run, tmp_path_factory.mktemp("serve-auth") / "server.log", env={"TEXTCLS_TOKEN": TOKEN})
    yield instance
    instance.stop()


def assert_error(response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert error["status"] == status and error["message"]
    return error


def test_predict_answers_one_record_per_text_in_order(server, tiny_run):
    import textcls

    texts = ["shares profit stocks merger", "goal coach striker season", "software chip internet", "minister treaty"]
    response = httpx.post(f"{server.url}/v1/predict", json={"texts": texts})
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    expected = textcls.load(tiny_run, textcls.PredictConfig(backend="torch")).predict_proba(texts)
    assert len(predictions) == len(texts)
    for record, row in zip(predictions, expected):
        names = list(record["probs"])
        assert names == ["World", "Sports", "Business", "Sci/Tech"]
        np.testing.assert_allclose([record["probs"][n] for n in names], row, atol=1e-5)
        assert record["label"] == names[int(row.argmax())] and record["score"] == pytest.approx(row.max(), abs=1e-5)


def test_explain_model_and_health(server):
    explained = httpx.post(f"{server.url}/v1/explain", json={"text": "profit shares", "layer": 0, "head": 1}).json()
    assert explained["tokens"] == ["[CLS]", "profit", "shares", "[SEP]"]
    assert sum(explained["token_weights"]) == pytest.approx(1.0, abs=1e-4)
    assert [w for w, _ in explained["words"]] == ["profit", "shares"]
    assert explained["layer"] == 0 and explained["head"] == 1 and explained["label"] in explained["probs"]
    card = httpx.get(f"{server.url}/v1/model").json()
    assert card["family"] == "pretrained" and card["backend"] == "torch" and card["backend_choice"] is None
    assert card["precision"] == "fp32"
    assert card["label_names"] == ["World", "Sports", "Business", "Sci/Tech"]
    assert 0.0 <= card["dev_metrics"]["accuracy"] <= 1.0 and card["versions"]["torch"].startswith("2.13")
    assert card["limits"]["max_texts"] == 32 and card["auth"] is False
    assert httpx.get(f"{server.url}/healthz").json()["status"] == "ok"
    assert "/v1/predict" in httpx.get(f"{server.url}/openapi.json").json()["paths"]


HOSTILE = {
    "malformed JSON": dict(content=b'{"texts": ["a",', headers={"content-type": "application/json"}),
    "not JSON at all": dict(content=b"texts=a", headers={"content-type": "application/x-www-form-urlencoded"}),
    "texts is a string": dict(json={"texts": "just one"}),
    "a number among texts": dict(json={"texts": ["ok", 3]}),
    "null text": dict(json={"texts": [None]}),
    "empty list": dict(json={"texts": []}),
    "empty text": dict(json={"texts": [""]}),
    "blank text": dict(json={"texts": ["fine", "   \n"]}),
    "10,000 texts": dict(json={"texts": ["word"] * 10_000}),
    "1 MB string": dict(json={"texts": ["a" * 1_000_000]}),
    "3 MB body": dict(json={"texts": ["b" * 3_000_000]}),
    "invalid UTF-8": dict(content=b'{"texts": ["\xff\xfe\xfa"]}', headers={"content-type": "application/json"}),
    "unknown field": dict(json={"texts": ["ok"], "temperature": 2}),
    "a list as the body": dict(json=[["ok"]]),
}
EXPECTED_STATUS = {"3 MB body": 413, "invalid UTF-8": 400}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_input_gets_a_json_4xx_and_the_server_keeps_serving(server, case):
    response = httpx.post(f"{server.url}/v1/predict", timeout=30, **HOSTILE[case])
    error = assert_error(response, EXPECTED_STATUS.get(case, 422))
    assert len(response.content) < 10_000  # the offending input is not echoed back
    if case == "not JSON at all":
        assert "Content-Type: application/json" in error["message"]
    assert httpx.post(f"{server.url}/v1/predict", json={"texts": ["still alive"]}).status_code == 200


def test_a_streamed_body_over_the_limit_gets_413_without_a_content_length(server):
    def chunks():  # no Content-Length: httpx sends it chunked, so the limit must count as it reads
        yield b'{"texts": ["'
        for _ in range(30):
            yield b"c" * 100_000
        yield b'"]}'

    response = httpx.post(f"{server.url}/v1/predict", content=chunks(), headers={"content-type": "application/json"})
    assert "content-length" not in response.request.headers
    assert assert_error(response, 413)["type"] == "payload_too_large"
    assert httpx.post(f"{server.url}/v1/predict", json={"texts": ["still alive"]}).status_code == 200


def test_bad_explain_requests_and_unknown_routes(server):
    assert_error(httpx.post(f"{server.url}/v1/explain", json={"text": "x", "layer": 99}), 422)
    assert_error(httpx.post(f"{server.url}/v1/explain", json={"text": "   "}), 422)
    assert_error(httpx.get(f"{server.url}/v1/nothing"), 404)
    assert_error(httpx.get(f"{server.url}/v1/predict"), 405)


def test_concurrent_requests_are_micro_batched(server):
    before = httpx.get(f"{server.url}/healthz").json()["batches"]
    texts = [f"shares profit number {i}" for i in range(64)]
    with httpx.Client(base_url=server.url, timeout=60) as client, concurrent.futures.ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda text: client.post("/v1/predict", json={"texts": [text]}), texts))
    assert all(a.status_code == 200 for a in answers)
    assert all(len(a.json()["predictions"]) == 1 for a in answers)
    batches = httpx.get(f"{server.url}/healthz").json()["batches"] - before
    assert batches < len(texts)  # some requests shared a model call


def test_auth_guards_the_api_but_not_health_or_page(guarded_server):
    url = guarded_server.url
    error = assert_error(httpx.post(f"{url}/v1/predict", json={"texts": ["a"]}), 401)
    assert "Bearer" in error["message"]
    assert_error(httpx.get(f"{url}/v1/model", headers={"Authorization": "Bearer wrong-token-xyz"}), 401)
    assert_error(httpx.post(f"{url}/v1/explain", json={"text": "a"}, headers={"Authorization": TOKEN}), 401)
    good = {"Authorization": f"Bearer {TOKEN}"}
    assert httpx.post(f"{url}/v1/predict", json={"texts": ["a"]}, headers=good).status_code == 200
    assert httpx.get(f"{url}/v1/model", headers=good).json()["auth"] is True
    assert httpx.get(f"{url}/healthz").status_code == 200
    assert httpx.get(f"{url}/").status_code == 200


def test_graceful_shutdown_finishes_in_flight_requests(tiny_run, tmp_path):
    # A long batching wait keeps the request in flight while SIGTERM arrives.
    instance = Server(tiny_run, tmp_path / "server.log", "--max-wait-ms", "1000", "--max-batch", "1000")
    answers: list = []
    request = threading.Thread(
        target=lambda: answers.append(
            httpx.post(f"{instance.url}/v1/predict", json={"texts": ["goal coach"]}, timeout=30)
        )
    )
    request.start()
    time.sleep(0.4)
    assert instance.stop() in CLEAN_EXIT
    request.join()
    assert answers and answers[0].status_code == 200
    assert answers[0].json()["predictions"][0]["label"]
    assert "Finished server process" in instance.log_path.read_text()


def test_schemathesis_fuzz_finds_no_server_error(server):
    schemathesis = pytest.importorskip("schemathesis")
    from hypothesis import HealthCheck, given, settings
    from schemathesis.checks import not_a_server_error

    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.path for op in operations} >= {"/v1/predict", "/v1/explain", "/v1/model", "/healthz"}
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def fuzz(case):
            case.call_and_validate(base_url=server.url, checks=[not_a_server_error], timeout=30)

        fuzz()
    assert httpx.get(f"{server.url}/healthz").status_code == 200


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def test_the_web_page_shows_a_label_for_typed_text(server):
    sync_api = pytest.importorskip("playwright.sync_api")
    executable = _chromium()
    if executable is None:
        pytest.skip("no Chromium on PATH (apt-get install chromium)")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.goto(server.url)
            page.wait_for_function("document.getElementById('model').textContent.includes('pretrained')")
            page.fill("#text", "Shares and profit rise as investors cheer the merger")
            page.click("#classify")
            page.wait_for_function("document.getElementById('label').textContent.length > 0", timeout=30_000)
            label = page.text_content("#label")
            assert label in {"World", "Sports", "Business", "Sci/Tech"}
            assert page.locator("#bars .bar").count() == 4
            assert "profit" in page.text_content("#words")
            assert page.text_content("#error") == ""
        finally:
            browser.close()


def test_by_default_the_server_runs_what_auto_chose_and_says_so(tiny_run, tmp_path):
    import shutil

    run_dir = tmp_path / "run"
    shutil.copytree(tiny_run, run_dir)
    (run_dir / "backends.json").unlink(missing_ok=True)
    instance = Server(run_dir, tmp_path / "server.log")
    try:
        card = httpx.get(f"{instance.url}/v1/model").json()
        choice = card["backend_choice"]
        assert choice["backend"] == card["backend"] and card["backend"] in ("torch", "onnx", "onnx-int8")
        assert choice["candidates"][0]["name"] == "torch fp32" and not choice["cached"]
        # a precision is what torch runs in; an ONNX graph runs as exported, so it reports none
        assert card["precision"] == (choice["precision"] if card["backend"] == "torch" else None)
        assert httpx.get(f"{instance.url}/healthz").json()["backend"] == card["backend"]
        response = httpx.post(f"{instance.url}/v1/predict", json={"texts": ["shares profit stocks", "goal coach"]})
        assert response.status_code == 200 and len(response.json()["predictions"]) == 2
    finally:
        assert instance.stop() in CLEAN_EXIT, instance.log_path.read_text()
    assert "backend auto: chose" in instance.log_path.read_text() and (run_dir / "backends.json").is_file()


def test_a_chunk_run_is_served_reading_long_texts_in_pooled_windows(chunk_run, tmp_path):
    """The server answers what torch's `predict_proba` gives, windows pooled, for texts past max_length."""
    import textcls
    from tests.conftest import make_long_texts

    texts = [text for _, text in make_long_texts(6, seed=4)]
    expected = textcls.load(chunk_run, textcls.PredictConfig(backend="torch")).predict_proba(texts)
    server = Server(chunk_run, tmp_path / "server.log", "--backend", "torch")
    try:
        answer = httpx.post(f"{server.url}/v1/predict", json={"texts": texts}, timeout=60)
    finally:
        server.stop()
    assert answer.status_code == 200, answer.text
    probs = np.array(
        [
            [row["probs"][name] for name in ("World", "Sports", "Business", "Sci/Tech")]
            for row in answer.json()["predictions"]
        ]
    )
    assert np.allclose(probs, expected, atol=1e-5)
