"""The HTTP app: `create_app(run, ServeConfig)` builds it from a loaded `Run`, so tests need no CLI.

(No `from __future__ import annotations` here: FastAPI reads the request models from the
route annotations at runtime, and those models are built per app inside `create_app`.)

Routes:
    GET  /            a web page: paste a text, see the label, probability bars, weighted words
    GET  /healthz     liveness (never needs the token)
    GET  /v1/model    labels, family, backend, dev metrics, library versions, limits
    POST /v1/predict  {"texts": [...]} -> {"predictions": [{"label", "score", "probs"}, ...]}
                      (a multi-label run: {"predictions": [{"labels", "scores"}, ...]})
    POST /v1/explain  {"text": ..., "layer": -1, "head": null} -> label, probs, tokens, weights, words
    GET  /docs, /openapi.json

Every error has one shape, `{"error": {"status", "type", "message", "details"}}`: 413 for a body
over `max_body_bytes`, 422 for input the schema rejects (malformed JSON included), 400 for a body
that is not UTF-8, 401 without the token, 503 when the queue is full or the server is shutting
down; an unexpected failure is a generic 500 whose details go only to the log.
"""

import asyncio
import contextlib
import json
import logging
import secrets
import time
from importlib.resources import files
from typing import TYPE_CHECKING, Any, TypeAlias

from textcls.config import ServeConfig
from textcls.errors import TextclsError
from textcls.inference.predictions import prediction_records
from textcls.serving.batcher import MicroBatcher, Overloaded, ShuttingDown

if TYPE_CHECKING:
    from fastapi import FastAPI

    from textcls.runs.api import Run

log = logging.getLogger(__name__)

API_PREFIX = "/v1"


def _error_body(status: int, kind: str, message: str, details: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"error": {"status": status, "type": kind, "message": message, "details": details}}


def malformed_request_body(cause: str) -> bytes:
    """The JSON error body for a request the HTTP parser refused (uvicorn answers it before the app sees it)."""
    message = f"could not parse the HTTP request ({cause.rstrip('.')}); send a well-formed HTTP/1.1 request"
    return json.dumps(_error_body(400, "bad_request", message)).encode()


async def _send_error(send: Any, status: int, kind: str, message: str) -> None:
    """An error answer sent straight through ASGI, for middleware that answers before (or instead of) the app."""
    body = json.dumps(_error_body(status, kind, message)).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _unparsable_body(cause: BaseException | None) -> tuple[int, str, str]:
    """(status, type, message) for a body FastAPI could not parse; `cause` is what its parser raised."""
    if isinstance(cause, UnicodeDecodeError):
        return 400, "bad_request", "could not read the body as JSON: expected UTF-8 text"
    if isinstance(cause, RecursionError):
        return (
            422,
            "invalid_request",
            'could not parse the body as JSON: arrays or objects nested too deeply; send {"texts": ["...", ...]}',
        )
    # e.g. an integer of more than 4300 digits
    return 422, "invalid_request", f"could not parse the body as JSON: {cause}"


class BodyLimit:
    """ASGI middleware: a request body over `max_bytes` gets 413 before the app reads it whole.

    Not FastAPI's own `max_body_size`: with a declared Content-Length over the limit, it answers a
    plain-text 413 outside the exception handlers, so clients would meet a second error shape.
    """

    def __init__(self, app: Any, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._reject(send)
            return
        # No (or a false) Content-Length, e.g. a chunked upload: read up to the limit, then replay it.
        chunks, received, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunks.append(message.get("body", b""))
            received += len(chunks[-1])
            if received > self.max_bytes:
                await self._reject(send)
                return
            more = message.get("more_body", False)
        replayed = False

        async def replay() -> dict:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()  # after the body: waits for http.disconnect

        await self.app(scope, replay, send)

    async def _reject(self, send: Any) -> None:
        await _send_error(
            send, 413, "payload_too_large", f"request body over {self.max_bytes} bytes; send fewer or shorter texts"
        )


class AnswerCancelled:
    """ASGI middleware: a request that uvicorn cancels when its graceful-shutdown timeout runs out
    (a stalled upload, a model call longer than the time left) gets a JSON 503, not uvicorn's
    plain-text 500 and a traceback in the log."""

    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracked(message: dict) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except asyncio.CancelledError:
            if started:
                raise
            log.warning(
                "%s %s was still running when the shutdown timeout ran out; answered 503",
                scope["method"],
                scope["path"],
            )
            await _send_error(
                send, 503, "shutting_down", "the server shut down before this request was answered; retry"
            )
            # Not re-raised: this is uvicorn's task for this one request and it ends here; re-raising
            # would only make uvicorn log a traceback and try to send its own 500.


def _model_card(run: "Run", config: ServeConfig) -> dict[str, Any]:
    dev = (run.metrics or {}).get("dev", {})
    thresholds = run.thresholds
    return {
        "run": run.run_dir.name,
        "family": run.family,
        "label_names": list(run.label_names),
        "multi_label": thresholds is not None,
        "thresholds": None if thresholds is None else {n: float(t) for n, t in zip(run.label_names, thresholds)},
        "backend": run.predict_config.backend,
        # what torch runs in; ONNX graphs run as exported (fp32, or int8 weights): none to report, as in
        # evaluate's metrics
        "precision": (run.predict_config.precision or "fp32") if run.predict_config.backend == "torch" else None,
        "backend_choice": run.backend_choice,  # what --backend auto measured, where it ran
        "max_length": run.classifier.max_length,
        "dev_metrics": {key: dev[key] for key in ("accuracy", "macro_f1", "micro_f1", "num_samples") if key in dev},
        "train_config": run.info.get("train_config"),
        "versions": run.info.get("versions"),
        "created": run.info.get("created"),
        "limits": {
            "max_texts": config.max_texts,
            "max_text_chars": config.max_text_chars,
            "max_body_bytes": config.max_body_bytes,
            "max_batch": config.max_batch,
            "max_wait_ms": config.max_wait_ms,
        },
        "auth": config.token is not None,
    }


def create_app(run: "Run", config: ServeConfig | None = None) -> "FastAPI":
    """A FastAPI app serving a loaded run with `config`'s limits, micro-batching and auth.

    Example:
        >>> app = create_app(textcls.load("runs/agnews"), ServeConfig(token="s3cret-token"))  # doctest: +SKIP
        >>> uvicorn.run(app, host="127.0.0.1", port=8000)                                      # doctest: +SKIP
    """
    from fastapi import Depends, FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import HTMLResponse, JSONResponse
    from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
    from starlette.exceptions import HTTPException

    from textcls import __version__
    from textcls.serving.schemas import (
        ErrorResponse,
        ExplainFields,
        ExplainResponse,
        MultiLabelPredictResponse,
        PredictFields,
        PredictResponse,
        request_models,
    )

    config = config or ServeConfig()
    batcher = MicroBatcher(
        run.predict_proba,
        max_batch=config.max_batch,
        max_wait=config.max_wait_ms / 1000.0,
        max_queue=config.max_queue,
        max_calls=run.classifier.concurrent_calls,
    )
    card = _model_card(run, config)
    thresholds = run.thresholds  # set for a multi-label run
    if TYPE_CHECKING:  # the models are made here, capped at `config`'s limits; mypy knows their fields
        PredictRequest: TypeAlias = PredictFields
        ExplainRequest: TypeAlias = ExplainFields
    else:
        PredictRequest, ExplainRequest = request_models(config)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        await batcher.start()
        yield
        # Under `textcls serve` the batcher was closed when the shutdown began (see `serving.serve`).
        await batcher.stop(config.graceful_timeout)

    app = FastAPI(
        title="textcls",
        version=__version__,
        summary=f"{run.family} text classifier: {', '.join(run.label_names)}",
        lifespan=lifespan,
        responses={422: {"model": ErrorResponse, "description": "Input the schema rejects"}},
    )
    app.state.batcher = batcher
    app.add_middleware(BodyLimit, max_bytes=config.max_body_bytes)
    app.add_middleware(AnswerCancelled)  # added last: the outermost, so it sees every request

    # ---- one error shape -----------------------------------------------------------------
    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, error: RequestValidationError) -> JSONResponse:
        # Drop the offending input from the details: echoing a 1 MB string back helps nobody.
        details = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")} for e in error.errors()
        ]
        message = "; ".join(f"{'.'.join(map(str, d['loc']))}: {d['msg']}" for d in details[:5])
        unparsable = [e for e in error.errors() if e.get("type") == "json_invalid"]  # FastAPI's JSONDecodeError
        if unparsable:
            where, reason = unparsable[0].get("loc", ("body", "?"))[-1], unparsable[0].get("ctx", {}).get("error", "")
            message = f"could not parse the body as JSON at character {where}: {reason}"
        content_type = request.headers.get("content-type", "")
        if request.method == "POST" and "json" not in content_type:
            message = (
                f"expected a JSON body with Content-Type: application/json, found {content_type or 'none'!r}; {message}"
            )
        return JSONResponse(_error_body(422, "invalid_request", message, details), status_code=422)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> JSONResponse:
        status, message = error.status_code, str(error.detail)
        kind = {400: "bad_request", 401: "unauthorized", 404: "not_found", 405: "method_not_allowed"}.get(
            status, "http_error"
        )
        if status == 400 and message == "There was an error parsing the body":  # FastAPI's words, for any parser error
            status, kind, message = _unparsable_body(error.__cause__)
        return JSONResponse(_error_body(status, kind, message), status_code=status, headers=error.headers)

    @app.exception_handler(Overloaded)
    async def overloaded(request: Request, error: Overloaded) -> JSONResponse:
        kind = "shutting_down" if isinstance(error, ShuttingDown) else "overloaded"
        return JSONResponse(_error_body(503, kind, str(error)), status_code=503, headers={"Retry-After": "1"})

    @app.exception_handler(TextclsError)
    async def model_refused(request: Request, error: TextclsError) -> JSONResponse:
        return JSONResponse(_error_body(422, "unprocessable", str(error)), status_code=422)

    @app.exception_handler(Exception)
    async def internal_error(request: Request, error: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse(
            _error_body(500, "internal_error", "internal server error; details are in the server log"), status_code=500
        )

    # ---- auth --------------------------------------------------------------------------------
    bearer = HTTPBearer(auto_error=False, description="Needed when the server was started with --token.")

    async def authorised(credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> None:
        if config.token is None:
            return
        given = credentials.credentials if credentials is not None else ""
        if not secrets.compare_digest(given.encode(), config.token.encode()):
            raise HTTPException(
                401,
                "missing or wrong bearer token; send 'Authorization: Bearer TOKEN'",
                headers={"WWW-Authenticate": "Bearer"},
            )

    guarded = [Depends(authorised)] if config.token is not None else []
    errors: dict[int | str, dict[str, Any]] = (
        {401: {"model": ErrorResponse}, 503: {"model": ErrorResponse}}
        if config.token
        else {503: {"model": ErrorResponse}}
    )

    # ---- routes ------------------------------------------------------------------------------
    page = files("textcls.serving").joinpath("page.html").read_text(encoding="utf-8")

    @app.api_route("/", methods=["GET", "HEAD"], response_class=HTMLResponse, include_in_schema=False)
    async def index() -> HTMLResponse:
        return HTMLResponse(page)

    @app.api_route("/healthz", methods=["GET", "HEAD"], summary="Liveness: the model is loaded and the batcher runs")
    async def healthz() -> dict[str, Any]:
        return {"status": "ok", "backend": card["backend"], "queued": batcher.queued, "batches": batcher.batches}

    @app.api_route(
        f"{API_PREFIX}/model",
        methods=["GET", "HEAD"],
        dependencies=guarded,
        responses=errors,
        summary="What this server runs",
    )
    async def model_card() -> dict[str, Any]:
        return card

    @app.post(
        f"{API_PREFIX}/predict",
        response_model=PredictResponse if thresholds is None else MultiLabelPredictResponse,
        dependencies=guarded,
        responses=errors,
        summary="Classify texts",
    )
    async def predict(body: PredictRequest) -> dict[str, Any]:
        started = time.perf_counter()
        probs = await batcher.predict(body.texts)
        log.debug("predicted %d texts in %.1f ms", len(body.texts), (time.perf_counter() - started) * 1000)
        return {"predictions": prediction_records(probs, run.label_names, thresholds)}

    @app.post(
        f"{API_PREFIX}/explain",
        response_model=ExplainResponse,
        dependencies=guarded,
        responses=errors,
        summary="Classify one text and show the words it weighs",
    )
    async def explain(body: ExplainRequest) -> dict[str, Any]:
        explanation = await batcher.call(run.explain, body.text, body.layer, body.head)
        result = explanation.to_dict()
        return {
            "label": result["label"],
            "score": result["probs"][result["label"]],
            "probs": result["probs"],
            "family": result["family"],
            "tokens": result["tokens"],
            "token_weights": result["token_weights"],
            "words": result["words"],
            "layer": result["layer"],
            "head": result["head"],
        }

    return app
