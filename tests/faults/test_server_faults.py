"""Faults at the server's edge, through a real `textcls serve` process on a loopback port.

SIGTERM under load (every request answered or refused in the JSON error shape, a bounded exit
with status 0, no traceback), a request cut off by the shutdown timeout, one large request beside
small ones, and bodies the JSON parser cannot read.
"""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import subprocess
import time

import numpy as np
import pytest

httpx = pytest.importorskip("httpx")
aiohttp = pytest.importorskip("aiohttp")
pytest.importorskip("fastapi", reason="the serve extra is not installed (pip install 'textcls[serve]')")

from tests.integration.test_server import Server  # noqa: E402

SHUTDOWN_TIMEOUT = 2.0  # --graceful-timeout for the SIGTERM tests
EXIT_BOUND = SHUTDOWN_TIMEOUT + 10.0  # the shutdown, plus the interpreter's exit (torch) on a busy 2-core machine
TOPIC_TEXT = "shares profit merger investors quarterly stocks report after the new season " * 3


@pytest.fixture()
def start_server(tiny_run, tmp_path):
    """Starts `textcls serve` on the tiny run with extra flags; kills what a failed test left running."""
    started: list[Server] = []

    def start(*args: str) -> Server:
        started.append(Server(tiny_run, tmp_path / f"server{len(started)}.log", *args))
        return started[-1]

    yield start
    for server in started:
        if server.process.poll() is None:
            server.process.kill()
            server.process.wait()


def wait_for_exit(server: Server, signalled: float) -> tuple[int, float]:
    """(exit status, seconds since `signalled`); kills the process if it outlives `EXIT_BOUND`."""
    try:
        returncode = server.process.wait(timeout=max(0.0, signalled + EXIT_BOUND - time.monotonic()))
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()
        pytest.fail(f"the server was still running {EXIT_BOUND:.0f} s after SIGTERM:\n{server.log_path.read_text()}")
    finally:
        server.log.close()
    return returncode, time.monotonic() - signalled


def assert_clean_log(server: Server) -> str:
    log = server.log_path.read_text()
    assert "Traceback" not in log, log
    assert "Exception in ASGI application" not in log, log
    assert "Finished server process" in log, log
    return log


def assert_error_shape(body: bytes, status: int) -> dict:
    error = json.loads(body)["error"]
    assert set(error) == {"status", "type", "message", "details"} and error["status"] == status and error["message"]
    return error


def test_sigterm_under_load_answers_or_refuses_every_request_in_json_and_exits_0(start_server):
    # 200 requests of 256 texts in chunks of 4: thousands of model calls, far more than fit in the
    # 1 s before SIGTERM plus the 2 s shutdown timeout, so some requests must be refused.
    server = start_server("--max-batch", "4", "--graceful-timeout", str(SHUTDOWN_TIMEOUT))
    texts = [f"{TOPIC_TEXT} {i}" for i in range(256)]

    async def load() -> tuple[list, float]:
        connector = aiohttp.TCPConnector(limit=0)  # one connection per request: all 200 in flight at once
        async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as session:

            async def ask() -> tuple[int, str, bytes]:
                async with session.post(f"{server.url}/v1/predict", json={"texts": texts}) as response:
                    return response.status, response.headers.get("content-type", ""), await response.read()

            requests = [asyncio.create_task(ask()) for _ in range(200)]
            await asyncio.sleep(1.0)
            signalled = time.monotonic()
            server.process.send_signal(signal.SIGTERM)
            return await asyncio.gather(*requests, return_exceptions=True), signalled

    answers, signalled = asyncio.run(load())
    returncode, took = wait_for_exit(server, signalled)

    lost = [answer for answer in answers if isinstance(answer, BaseException)]
    assert not lost, f"{len(lost)} requests got no HTTP answer, e.g. {lost[0]!r}"
    statuses = [status for status, _, _ in answers]
    assert set(statuses) <= {200, 503}, statuses
    assert statuses.count(503) > 0  # the queue held more than the timeout allows
    assert statuses.count(200) > 0  # served oldest first, some finish in the timeout (about 10 here)
    for status, content_type, body in answers:
        assert content_type.startswith("application/json"), (status, content_type, body[:200])
        if status == 200:
            assert len(json.loads(body)["predictions"]) == len(texts)
        else:
            assert assert_error_shape(body, 503)["type"] == "shutting_down"
    assert returncode == 0, server.log_path.read_text()
    assert took < EXIT_BOUND
    assert_clean_log(server)


def test_a_request_still_running_at_the_shutdown_timeout_gets_a_json_503(start_server):
    server = start_server("--graceful-timeout", "1")
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as connection:
        # Headers and half a body, then nothing: the request is in flight until uvicorn gives up on it.
        connection.sendall(
            b"POST /v1/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b'Content-Length: 100\r\n\r\n{"texts": ["half'
        )
        time.sleep(0.5)
        signalled = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        received = b""
        while chunk := connection.recv(65536):
            received += chunk
    returncode, took = wait_for_exit(server, signalled)

    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 503"), received[:300]
    assert b"content-type: application/json" in head.lower()
    assert assert_error_shape(body, 503)["type"] == "shutting_down"
    assert returncode == 0 and took < EXIT_BOUND
    assert "answered 503" in assert_clean_log(server)


@pytest.fixture(scope="module")
def server(tiny_run, tmp_path_factory):
    # torch: answers are compared with the torch model to 1e-5 (see tests/integration/test_server.py)
    instance = Server(
        tiny_run, tmp_path_factory.mktemp("serve-faults") / "server.log", "--max-batch", "8", "--backend", "torch"
    )
    yield instance
    assert instance.stop() == 0, instance.log_path.read_text()


def test_a_large_request_does_not_starve_a_small_one(server, tiny_run):
    import textcls

    large = [f"{TOPIC_TEXT} {i}" for i in range(256)]

    async def race() -> tuple[list, list[str]]:
        finished: list[str] = []
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:

            async def ask(name: str, texts: list[str]) -> dict:
                async with session.post(f"{server.url}/v1/predict", json={"texts": texts}) as response:
                    assert response.status == 200, await response.text()
                    answer = await response.json()
                finished.append(name)
                return answer

            async def model_calls() -> int:
                async with session.get(f"{server.url}/healthz") as response:
                    return (await response.json())["batches"]

            before = await model_calls()
            larges = [asyncio.create_task(ask(f"large{i}", large)) for i in range(8)]
            while await model_calls() < before + 8:  # the large ones are being served
                await asyncio.sleep(0.01)
            small = await ask("small", ["goal coach striker"])
            return [small, *await asyncio.gather(*larges)], finished

    answers, finished = asyncio.run(race())
    # Served a chunk at a time, the 8 x 256 texts take 256 model calls; the small request needs one.
    # (Run whole, one call each, the large ones were all done before the small one was even sent.)
    assert finished[0] == "small", finished
    expected = textcls.load(tiny_run, textcls.PredictConfig(backend="torch")).predict_proba(large)
    probs = [[record["probs"][name] for name in record["probs"]] for record in answers[1]["predictions"]]
    np.testing.assert_allclose(probs, expected, atol=1e-5)  # 32 chunks, rows back in input order


UNPARSABLE = {
    "10,000 nested arrays": b"[" * 10_000 + b"]" * 10_000,
    "texts nested 5,000 deep": b'{"texts": ' + b"[" * 5_000 + b"]" * 5_000 + b"}",
    "cut-off JSON": b'{"texts": ["a",',
    "trailing garbage": b'{"texts": ["a"]} and more',
    "an integer of 5,000 digits": b'{"texts": [' + b"7" * 5_000 + b"]}",
}


@pytest.mark.parametrize("case", list(UNPARSABLE))
def test_a_body_json_cannot_parse_gets_a_4xx_that_says_json(server, case):
    response = httpx.post(
        f"{server.url}/v1/predict", content=UNPARSABLE[case], headers={"content-type": "application/json"}, timeout=30
    )
    assert response.status_code in (400, 422) and response.headers["content-type"].startswith("application/json")
    message = assert_error_shape(response.content, response.status_code)["message"]
    assert "JSON" in message and "UTF-8" not in message, message
    assert len(response.content) < 10_000  # the body is not echoed back
    assert httpx.post(f"{server.url}/v1/predict", json={"texts": ["still alive"]}).status_code == 200


def test_a_body_that_is_not_utf8_still_says_utf8(server):
    response = httpx.post(
        f"{server.url}/v1/predict", content=b'{"texts": ["\xff\xfe\xfa"]}', headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert "UTF-8" in assert_error_shape(response.content, 400)["message"]
