"""Errors the client raises: the server's status, message and error type, and the request id
whenever one exists, so a caller that gives up waiting can still find its result."""

from __future__ import annotations

from typing import Any

import httpx


class ApiError(Exception):
    """The server refused a call, or could not be reached (``status_code`` 0)."""

    def __init__(
        self,
        status_code: int,
        message: str,
        error_type: str | None = None,
        detail: Any = None,
        *,
        request_id: str | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(f"{status_code} {error_type or 'error'}: {message}" if status_code else message)
        self.status_code = status_code
        self.message = message
        self.error_type = error_type
        self.detail = detail
        self.request_id = request_id
        self.retry_after_s = retry_after_s


class JobFailed(ApiError):
    """The job finished without a result (failed or canceled); ``request_id`` names it."""


class RequestTimeout(ApiError, TimeoutError):
    """The client stopped waiting. The job goes on: ``request_id`` leads to its status and result
    (``client.result(model, request_id)`` once it is done)."""

    def __init__(self, message: str, *, request_id: str | None, timeout_s: float | None) -> None:
        super().__init__(0, message, "client_timeout", request_id=request_id)
        self.timeout_s = timeout_s


def error_from(response: httpx.Response) -> ApiError:
    """The ApiError a response with status >= 400 stands for."""
    retry_after = parse_retry_after(response.headers.get("retry-after"))
    try:
        body = response.json()
    except ValueError:
        return ApiError(response.status_code, response.text[:500], retry_after_s=retry_after)
    detail = body.get("detail") if isinstance(body, dict) else body
    if isinstance(body, dict) and isinstance(body.get("error"), dict):  # the OpenAI-compatible routes
        detail = body["error"]
        message = str(detail.get("message"))
        error_type = detail.get("code") or detail.get("type")
    elif isinstance(detail, list) and detail and isinstance(detail[0], dict):
        message = "; ".join(str(d.get("msg")) for d in detail)
        error_type = body.get("error_type") if isinstance(body, dict) else None
    else:
        message = str(detail)
        error_type = body.get("error_type") if isinstance(body, dict) else None
    return ApiError(
        response.status_code,
        message,
        error_type,
        detail,
        request_id=response.headers.get("x-limner-request-id"),
        retry_after_s=retry_after,
    )


def raise_for_status(response: httpx.Response) -> None:
    if response.status_code >= 400:
        raise error_from(response)


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After in seconds: delta-seconds or an HTTP date (RFC 9110 §10.2.3)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    import time

    return max(0.0, when.timestamp() - time.time())
