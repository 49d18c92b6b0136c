"""Fault tests of `textcls serve` at the HTTP level: HEAD on GET routes, a port already taken, requests
the HTTP parser refuses, and texts that are blank or cannot be text.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi", reason="the serve extra is not installed (pip install 'textcls[serve]')")

from tests.integration.test_server import CLEAN_EXIT, Server, free_port  # noqa: E402


@pytest.fixture(scope="module")
def server(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory):
    instance = Server(tiny_run, tmp_path_factory.mktemp("serve-faults") / "server.log", "--backend", "torch")
    yield instance
    assert instance.stop() in CLEAN_EXIT, instance.log_path.read_text()


def raw_exchange(port: int, request: bytes) -> tuple[str, dict[str, str], bytes]:
    """Send `request` as bytes over a fresh connection; (status line, headers, body) of the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(request)
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    status, *lines = head.decode("latin-1").split("\r\n")
    headers = {name.strip().lower(): value.strip() for name, value in (line.split(":", 1) for line in lines)}
    return status, headers, body


@pytest.mark.parametrize("path", ["/", "/healthz", "/v1/model"])
def test_head_answers_every_get_route_without_a_body(server: Server, path: str) -> None:
    got = httpx.get(server.url + path, timeout=10)
    head = httpx.head(server.url + path, timeout=10)
    assert head.status_code == 200 == got.status_code
    assert head.content == b""
    assert head.headers["content-type"] == got.headers["content-type"]


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GARBAGE\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
        b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Length: banana\r\n\r\n",
    ],
)
def test_a_request_the_http_parser_refuses_gets_the_json_error_shape(server: Server, request_bytes: bytes) -> None:
    status, headers, body = raw_exchange(server.port, request_bytes)
    assert status.startswith("HTTP/1.1 400"), status
    assert headers["content-type"] == "application/json"
    error = json.loads(body)["error"]
    assert error["status"] == 400 and error["type"] == "bad_request" and "HTTP request" in error["message"]


@pytest.mark.parametrize("blank", ["\u200b", "\u200c\u200d \ufeff", "\x00"])
def test_zero_width_and_nul_only_texts_are_refused_like_blank_ones(server: Server, blank: str) -> None:
    answer = httpx.post(f"{server.url}/v1/predict", json={"texts": ["fine", blank]}, timeout=30)
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert error["type"] == "invalid_request" and "texts" in error["message"] and "1" in error["message"]


def test_a_lone_surrogate_in_a_text_is_a_422_in_the_json_shape(server: Server) -> None:
    body = b'{"texts": ["fine", "bad \\ud800 text"]}'
    answer = httpx.post(
        f"{server.url}/v1/predict", content=body, headers={"content-type": "application/json"}, timeout=30
    )
    assert answer.status_code == 422 and answer.json()["error"]["type"] == "invalid_request"


def test_a_port_in_use_is_a_one_line_error_with_exit_2(tiny_run: Path) -> None:
    port = free_port()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        result = subprocess.run(
            [sys.executable, "-m", "textcls", "serve", str(tiny_run), "--port", str(port)],
            capture_output=True,
            text=True,
            env={**os.environ, "HF_HUB_OFFLINE": "1"},
            timeout=120,
        )
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if "error" in line.lower()]
    assert len(errors) == 1, result.stderr[-2000:]
    assert f"127.0.0.1:{port}" in errors[0] and "--port" in errors[0]
