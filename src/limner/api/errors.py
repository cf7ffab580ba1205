"""The one place where errors become HTTP responses, in the shape of each route's protocol.

limner's routes (and fal's queue protocol) answer ``{"detail": [{loc, msg, type}],
"error_type"}``; the OpenAI-compatible routes answer OpenAI's ``{"error": {message, type,
param, code}}``, with bad input as 400 where limner says 422. The protocol is told by the
path, so the same error reads right wherever it is raised: in a route, in request validation,
in the body-size or API-key middleware. Every 429 and 503 carries ``Retry-After``.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Final, Literal

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException
from starlette.types import Send

from limner.errors import (
    Conflict,
    InvalidInput,
    LimnerError,
    MethodNotAllowed,
    NotFound,
    StoreUnavailable,
)

log = logging.getLogger("limner.api")
Protocol = Literal["limner", "openai"]
OPENAI_PREFIXES: Final = ("/v1/images/", "/v1/audio/", "/v1/chat/", "/v1/completions", "/v1/embeddings")
# limner input field -> the OpenAI request field it comes from (for ``param``).
OPENAI_PARAMS: Final = {
    "num_outputs": "n",
    "width": "size",
    "height": "size",
    "text": "input",
    "mask_image": "mask",
    "max_tokens": "max_tokens",
}
# How soon a client may retry an error that says nothing itself.
DEFAULT_RETRY_AFTER_S: Final = {429: 1, 503: 1}


def protocol_of(path: str) -> Protocol:
    return "openai" if path.startswith(OPENAI_PREFIXES) else "limner"


def _openai_kind(status: int) -> str:
    if status == 401:
        return "authentication_error"
    if status == 403:
        return "permission_error"
    if status == 404:
        return "not_found_error"
    if status == 429:
        return "rate_limit_error"
    if status >= 500:
        return "server_error"
    return "invalid_request_error"


def _openai_param(exc: LimnerError) -> str | None:
    loc = [str(part) for part in exc.loc]
    if len(loc) >= 2 and loc[0] in ("body", "query", "form"):
        return OPENAI_PARAMS.get(loc[1], loc[1])
    return None


def status_of(exc: LimnerError, protocol: Protocol) -> int:
    return 400 if protocol == "openai" and isinstance(exc, InvalidInput) else exc.status_code


def body_of(exc: LimnerError, protocol: Protocol) -> dict[str, Any]:
    if protocol == "openai":
        kind = _openai_kind(status_of(exc, protocol))
        return {"error": {"message": exc.message, "type": kind, "param": _openai_param(exc), "code": exc.error_type}}
    return {"detail": exc.detail(), "error_type": exc.error_type}


def headers_of(exc: LimnerError) -> dict[str, str]:
    headers: dict[str, str] = {}
    retry_after = exc.retry_after_s if exc.retry_after_s is not None else DEFAULT_RETRY_AFTER_S.get(exc.status_code)
    if retry_after is not None:
        headers["Retry-After"] = str(max(int(retry_after), 0))
    if exc.status_code == 401:
        headers["WWW-Authenticate"] = 'Key realm="limner", Bearer realm="limner"'
    return headers


def render(exc: LimnerError, path: str) -> JSONResponse:
    protocol = protocol_of(path)
    return JSONResponse(status_code=status_of(exc, protocol), content=body_of(exc, protocol), headers=headers_of(exc))


async def send_error(send: Send, exc: LimnerError, path: str) -> None:
    """The same response, from ASGI middleware (before any route runs)."""
    protocol = protocol_of(path)
    body = json.dumps(body_of(exc, protocol)).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers_of(exc).items()]
    await send({"type": "http.response.start", "status": status_of(exc, protocol), "headers": headers})
    await send({"type": "http.response.body", "body": body})


def from_validation(errors: list[Any]) -> InvalidInput:
    """pydantic's errors as one InvalidInput that names the first field (and keeps them all)."""
    details = [
        {"loc": list(err.get("loc", ())), "msg": str(err.get("msg", "")), "type": str(err.get("type", ""))}
        for err in errors
    ]
    first = details[0] if details else {"loc": [], "msg": "invalid request"}
    loc = tuple(first["loc"])
    field = str(loc[1]) if len(loc) > 1 and loc[0] in ("body", "query", "path", "header") else ""
    message = f"{field}: {first['msg']}" if field else str(first["msg"])
    return InvalidInput(message, loc=loc, details=details or None)


def _from_http(exc: HTTPException) -> LimnerError:
    text = exc.detail if isinstance(exc.detail, str) else json.dumps(exc.detail)
    if exc.status_code == 400:  # FastAPI's own "error parsing the body" (bad or too deep JSON)
        return InvalidInput(f"the request body could not be read: {text}", loc=("body",))
    if exc.status_code == 404:
        return NotFound(text)
    if exc.status_code == 405:
        return MethodNotAllowed(text)
    if exc.status_code == 409:
        return Conflict(text)
    error = LimnerError(text)
    error.status_code = exc.status_code
    error.error_type = "http_error" if exc.status_code < 500 else "internal_error"
    return error


async def _limner_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, LimnerError)
    return render(exc, request.url.path)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return render(from_validation(list(exc.errors())), request.url.path)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    return render(_from_http(exc), request.url.path)


async def _store_error(request: Request, exc: Exception) -> JSONResponse:
    log.warning("job store error on %s %s: %s", request.method, request.url.path, exc)
    return render(StoreUnavailable("the job store is unreachable; try again shortly"), request.url.path)


async def _too_deep(request: Request, _exc: Exception) -> JSONResponse:
    # A JSON body nested so deeply that the parser gave up (FastAPI parses some bodies itself).
    return render(InvalidInput("the request body is nested too deeply", loc=("body",)), request.url.path)


def install(app: FastAPI) -> None:
    app.add_exception_handler(LimnerError, _limner_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(DBAPIError, _store_error)
    app.add_exception_handler(RecursionError, _too_deep)
