"""Serve a run over HTTP (FastAPI + uvicorn), behind the `serve` extra.

Example:
    >>> from textcls.serving import create_app                              # doctest: +SKIP
    >>> app = create_app(textcls.load("runs/agnews"), ServeConfig())         # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import signal
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textcls.config import PredictConfig, ServeConfig
from textcls.errors import ConfigError, TextclsError

if TYPE_CHECKING:
    from fastapi import FastAPI

    from textcls.runs.api import Run

log = logging.getLogger(__name__)

__all__ = ["create_app", "serve", "serving_predict_config"]


def _require_serving() -> None:
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as error:
        raise TextclsError(
            f"serving needs FastAPI and uvicorn ({error.name} is missing); pip install 'textcls[serve]'"
        ) from error


def create_app(run: Run, config: ServeConfig | None = None) -> FastAPI:
    """See `textcls.serving.app.create_app`."""
    _require_serving()
    from textcls.serving.app import create_app as build

    return build(run, config)


def serving_predict_config(options: dict[str, Any] | None = None) -> PredictConfig:
    """The PredictConfig a server uses: `options`, with ONNX Runtime's thread spinning off unless given,
    so an idle server leaves the cores alone."""
    given = {k: v for k, v in (options or {}).items() if v is not None}
    return PredictConfig(**{"spin": False, **given})


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def serve(run_dir: str | Path, config: ServeConfig, predict_config: PredictConfig | None = None) -> None:
    """Load a run on `predict_config.backend` and serve it until SIGINT/SIGTERM.

    On a signal the server stops accepting connections, answers the queued requests it can within
    `config.graceful_timeout` seconds, refuses the rest with 503, and returns (exit status 0).
    """
    _require_serving()
    from textcls.runs.api import load

    _check_port_free(config.host, config.port)  # before the model loads: a taken port fails in a moment
    run = load(run_dir, predict_config or serving_predict_config())
    run.predict_proba(["warm-up"])  # first call allocates; do it before the first user waits
    app = create_app(run, config)
    if config.token is None and not _is_loopback(config.host):
        log.warning(
            "serving on %s without a token: anyone who can reach this address can use the model; "
            "pass --token or set TEXTCLS_TOKEN",
            config.host,
        )
    log.info(
        "serving %s (%s, backend %s) on http://%s:%d  (page /, API docs /docs)",
        run_dir,
        run.family,
        run.predict_config.backend,
        config.host,
        config.port,
    )
    server = _uvicorn_server(app, config)
    with _signals_stop(server):
        try:
            server.run()
        except SystemExit as stop:  # uvicorn exits when it cannot listen (the port was taken since the check)
            if stop.code in (0, None):
                raise
            raise ConfigError(f"could not listen on {config.host}:{config.port}; {_PORT_FIX}") from None


_PORT_FIX = "pass another --port, or stop the process that listens there"


def _check_port_free(host: str, port: int) -> None:
    """Raise a `ConfigError` naming `host:port` when nothing can listen there (taken, or not this machine's)."""
    import socket

    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds: TIME_WAIT is no obstacle
            probe.bind((host, port))
    except OSError as error:
        raise ConfigError(f"could not listen on {host}:{port}: {error.strerror or error}; {_PORT_FIX}") from None


def _json_errors_protocol(protocol: type) -> type:
    """uvicorn's HTTP protocol `protocol`, answering a request it cannot parse (a bad request line, header or
    Content-Length) with the server's JSON error body instead of uvicorn's plain text."""
    from textcls.serving.app import malformed_request_body

    class JsonErrorProtocol(protocol):
        def send_400_response(self, msg: str) -> None:
            body = malformed_request_body(msg)
            head = (
                "HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\n"
                f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
            )
            self.transport.write(head.encode("ascii") + body)
            self.transport.close()

    return JsonErrorProtocol


def _uvicorn_server(app: Any, config: ServeConfig) -> Any:
    """A uvicorn server that closes the app's batcher as its shutdown begins."""
    import uvicorn
    from uvicorn.protocols.http.auto import AutoHTTPProtocol

    class Server(uvicorn.Server):
        async def shutdown(self, sockets: Any = None) -> None:
            # uvicorn next waits up to `graceful_timeout` for open requests, then cancels them.
            # Closing the batcher first bounds that wait: it answers what fits in the time, refuses the rest.
            app.state.batcher.close(config.graceful_timeout)
            await super().shutdown(sockets)

    return Server(
        uvicorn.Config(
            app,
            host=config.host,
            port=config.port,
            # uvicorn hands it to asyncio.wait_for, which takes a float; its annotation says int
            timeout_graceful_shutdown=config.graceful_timeout,  # type: ignore[arg-type]
            access_log=config.access_log,
            log_level="info",
            http=_json_errors_protocol(AutoHTTPProtocol),
        )
    )


@contextlib.contextmanager
def _signals_stop(server: Any):
    """Route SIGINT/SIGTERM to `server.handle_exit` while it runs.

    uvicorn re-raises the signal it stopped on once its shutdown is done; with Python's default
    handler that turns a clean stop into "killed by SIGTERM" (exit -15). With uvicorn's own handler
    it is a no-op, so a clean stop exits 0, and a signal that comes before uvicorn listens still stops it.
    """
    if threading.current_thread() is not threading.main_thread():  # signals reach the main thread only
        yield
        return
    previous = {sig: signal.signal(sig, server.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
