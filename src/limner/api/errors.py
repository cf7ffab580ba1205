"""The one place where errors become HTTP responses."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError

from limner.errors import LimnerError, StoreUnavailable

log = logging.getLogger("limner.api")


def error_response(exc: LimnerError) -> JSONResponse:
    return JSONResponse(
        status_code=exc.status_code,
        content={"detail": exc.detail(), "error_type": exc.error_type},
    )


async def _limner_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, LimnerError)
    return error_response(exc)


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    details = [
        {"loc": list(err.get("loc", ())), "msg": err.get("msg", ""), "type": err.get("type", "")}
        for err in exc.errors()
    ]
    return JSONResponse(status_code=422, content={"detail": details, "error_type": "invalid_input"})


async def _store_error(request: Request, exc: Exception) -> JSONResponse:
    log.warning("job store error on %s %s: %s", request.method, request.url.path, exc)
    return error_response(StoreUnavailable("the job store is unreachable; try again shortly"))


def install(app: FastAPI) -> None:
    app.add_exception_handler(LimnerError, _limner_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(DBAPIError, _store_error)
