"""Errors the client raises: the server's status, message and error type."""

from __future__ import annotations

from typing import Any

import httpx


class ApiError(Exception):
    def __init__(self, status_code: int, message: str, error_type: str | None = None, detail: Any = None) -> None:
        super().__init__(f"{status_code} {error_type or 'error'}: {message}" if status_code else message)
        self.status_code = status_code
        self.message = message
        self.error_type = error_type
        self.detail = detail


def raise_for_status(response: httpx.Response) -> None:
    if response.status_code < 400:
        return
    try:
        body = response.json()
    except ValueError:
        raise ApiError(response.status_code, response.text[:500]) from None
    detail = body.get("detail") if isinstance(body, dict) else body
    if isinstance(detail, list) and detail and isinstance(detail[0], dict):
        message = "; ".join(str(d.get("msg")) for d in detail)
    else:
        message = str(detail)
    error_type = body.get("error_type") if isinstance(body, dict) else None
    raise ApiError(response.status_code, message, error_type, detail)
