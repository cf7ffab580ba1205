"""The one error hierarchy. Every error knows its HTTP status and its ``error_type``.

The API maps these to responses in one place (``limner.api.errors``); workers store
``error_type`` and the message on failed jobs, so a client sees the same names either way.
"""

from __future__ import annotations

from typing import Any


class LimnerError(Exception):
    """Base of all errors limner raises on purpose."""

    status_code = 500
    error_type = "internal_error"
    retryable = False
    # Seconds a client should wait before trying again (Retry-After), when the error knows.
    retry_after_s: int | None = None

    def __init__(
        self, message: str, *, loc: tuple[str | int, ...] = (), details: list[dict[str, Any]] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.loc = loc
        self.details = details

    def detail(self) -> list[dict[str, Any]]:
        """The FastAPI-style ``detail`` list: where, what, which kind."""
        if self.details:
            return self.details
        return [{"loc": list(self.loc), "msg": self.message, "type": self.error_type}]


class InvalidInput(LimnerError):
    """The request is malformed or names a field with a bad value."""

    status_code = 422
    error_type = "invalid_input"


class LimitExceeded(InvalidInput):
    """A value is over (or under) a limit of the model or the server."""

    error_type = "limit_exceeded"


class PayloadTooLarge(LimnerError):
    status_code = 413
    error_type = "payload_too_large"


class NotFound(LimnerError):
    status_code = 404
    error_type = "not_found"


class MethodNotAllowed(LimnerError):
    status_code = 405
    error_type = "method_not_allowed"


class UnknownModel(NotFound):
    error_type = "unknown_model"


class RequestNotFound(NotFound):
    error_type = "request_not_found"


class IdempotencyConflict(LimnerError):
    """The same Idempotency-Key was used with a different body."""

    status_code = 409
    error_type = "idempotency_conflict"


class NotReady(LimnerError):
    """The result was asked for before the job finished."""

    status_code = 400
    error_type = "not_ready"


class CatalogError(LimnerError):
    """A catalog file is wrong; raised at start-up, never per request."""

    error_type = "catalog_error"


class ModelUnavailable(LimnerError):
    """The model's weights cannot be loaded here (no hub access, missing path, no device)."""

    status_code = 503
    error_type = "model_unavailable"


class ModelError(LimnerError):
    """The model raised while running. Not retried: the same input would raise again."""

    status_code = 500
    error_type = "model_error"


class OutOfMemory(LimnerError):
    """Retried (within the job's attempts): the worker frees its models first, and another
    worker may have room."""

    status_code = 507
    error_type = "out_of_memory"
    retryable = True


class Canceled(LimnerError):
    status_code = 409
    error_type = "canceled"


class JobTimeout(LimnerError):
    status_code = 504
    error_type = "timeout"


class StartTimeout(LimnerError):
    """The job was not started within its start deadline (``start_deadline_s``)."""

    status_code = 504
    error_type = "start_timeout"


class ResultExpired(LimnerError):
    """The job's result passed its retention time; its files were deleted."""

    status_code = 410
    error_type = "result_expired"


class Unauthorized(LimnerError):
    """No API key, or one this server does not know."""

    status_code = 401
    error_type = "unauthorized"


class Forbidden(LimnerError):
    """A known API key that was revoked."""

    status_code = 403
    error_type = "forbidden"


class Conflict(LimnerError):
    status_code = 409
    error_type = "conflict"


class WorkerLost(LimnerError):
    """The job's worker stopped renewing its lease more times than the job may be retried."""

    status_code = 500
    error_type = "worker_lost"


class QuotaExceeded(LimnerError):
    """A key went over one of its quotas; ``retry_after_s`` says when it may try again."""

    status_code = 429
    error_type = "quota_exceeded"

    def __init__(self, message: str, *, retry_after_s: int, loc: tuple[str | int, ...] = ()) -> None:
        super().__init__(message, loc=loc)
        self.retry_after_s = retry_after_s


class StoreUnavailable(LimnerError):
    status_code = 503
    error_type = "store_unavailable"


class StorageUnavailable(LimnerError):
    """The media storage (an S3 bucket) could not be reached or refused a call. Retried: the
    store is more likely back on the next attempt than the model is wrong."""

    status_code = 503
    error_type = "storage_unavailable"
    retryable = True


class ProviderOverloaded(LimnerError):
    """A hosted provider said 429 (or is at its concurrency): try later, or elsewhere."""

    status_code = 503
    error_type = "overloaded"


class ProviderError(LimnerError):
    """A hosted provider failed on its side (5xx, a broken answer, the connection went)."""

    status_code = 502
    error_type = "server_error"


# error_type -> class, so a stored failure maps back to its HTTP status.
ERROR_TYPES: dict[str, type[LimnerError]] = {
    cls.error_type: cls
    for cls in (
        LimnerError,
        InvalidInput,
        LimitExceeded,
        PayloadTooLarge,
        NotFound,
        MethodNotAllowed,
        UnknownModel,
        RequestNotFound,
        IdempotencyConflict,
        NotReady,
        CatalogError,
        ModelUnavailable,
        ModelError,
        OutOfMemory,
        Canceled,
        JobTimeout,
        StartTimeout,
        ResultExpired,
        Unauthorized,
        Forbidden,
        Conflict,
        WorkerLost,
        QuotaExceeded,
        StoreUnavailable,
        StorageUnavailable,
        ProviderOverloaded,
        ProviderError,
    )
}


def status_for(error_type: str | None) -> int:
    return ERROR_TYPES.get(error_type or "", LimnerError).status_code
