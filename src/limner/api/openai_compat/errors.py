"""Errors on the OpenAI-compatible routes, in OpenAI's shape:
``{"error": {"message", "type", "param", "code"}}``.

``type`` is OpenAI's kind (``invalid_request_error``, ``authentication_error``,
``permission_error``, ``rate_limit_error``, ``server_error``), ``code`` limner's own
``error_type`` and ``param`` the request field at fault, by OpenAI's name for it (``n`` for
limner's ``num_outputs``, ``size`` for ``width``/``height`` …). Validation errors answer 400,
as OpenAI does, where the limner routes answer 422.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from sqlalchemy.exc import DBAPIError

from limner.errors import InvalidInput, LimnerError, StoreUnavailable

log = logging.getLogger("limner.api.openai")
PATH_PREFIXES = ("/v1/images/", "/v1/audio/")

# limner input field -> the OpenAI request field it comes from.
PARAM_NAMES = {
    "num_outputs": "n",
    "width": "size",
    "height": "size",
    "text": "input",
    "mask_image": "mask",
}


def kind(status: int) -> str:
    if status == 401:
        return "authentication_error"
    if status == 403:
        return "permission_error"
    if status == 429:
        return "rate_limit_error"
    if status >= 500:
        return "server_error"
    return "invalid_request_error"


def param_of(exc: LimnerError) -> str | None:
    loc = [str(part) for part in exc.loc]
    if len(loc) >= 2 and loc[0] in ("body", "query", "form"):
        return PARAM_NAMES.get(loc[1], loc[1])
    return None


def error_body(exc: LimnerError) -> dict[str, Any]:
    status = 400 if isinstance(exc, InvalidInput) else exc.status_code
    return {"error": {"message": exc.message, "type": kind(status), "param": param_of(exc), "code": exc.error_type}}


def error_response(exc: LimnerError, headers: dict[str, str] | None = None) -> JSONResponse:
    status = 400 if isinstance(exc, InvalidInput) else exc.status_code
    return JSONResponse(status_code=status, content=error_body(exc), headers=headers)


def is_openai_path(path: str) -> bool:
    return path.startswith(PATH_PREFIXES)


def from_validation(errors: list[Any]) -> InvalidInput:
    """The first of pydantic's errors as an InvalidInput naming the field."""
    first = errors[0] if errors else {}
    loc = tuple(str(p) for p in first.get("loc", ()))
    field = loc[1] if len(loc) > 1 and loc[0] == "body" else (loc[0] if loc else "")
    message = f"{field}: {first.get('msg', 'invalid')}" if field else str(first.get("msg", "invalid request"))
    return InvalidInput(message, loc=("body", field) if field else ())


class OpenAIRoute(APIRoute):
    """Routes whose every error, including request validation, answers in OpenAI's shape."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def handler(request: Request) -> Response:
            try:
                return await handle(request)
            except LimnerError as exc:
                return error_response(exc)
            except RequestValidationError as exc:
                return error_response(from_validation(list(exc.errors())))
            except DBAPIError as exc:
                log.warning("job store error on %s: %s", request.url.path, exc)
                return error_response(StoreUnavailable("the job store is unreachable; try again shortly"))

        return handler
