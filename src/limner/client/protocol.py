"""What the sync and async clients share: routes, headers, the retry rule and its delays.

Written out rather than taken from a retry library: the rule depends on limner's own answers
(a 503 that records a job's failure is final, one from a store outage is not) and must wrap
httpx calls and Server-Sent Event streams alike, sync and async, with the same numbers.
"""

from __future__ import annotations

import json
import os
import random
import ssl
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlparse

import httpx

from limner.client.errors import ApiError

DEFAULT_URL = "http://127.0.0.1:7860"
RETRY_STATUSES = frozenset({429, 503})
# 503s that record how a job ended: asking again gives the same answer.
FINAL_503 = frozenset({"model_unavailable"})


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter, at least as long as the server's Retry-After asks.

    ``attempts`` counts every try (1 = no retries). Connection errors, 429 and 503 are
    retried; submissions carry an Idempotency-Key, so a retried submit never queues twice."""

    attempts: int = 5
    base_s: float = 0.25
    max_s: float = 20.0
    max_retry_after_s: float = 120.0  # a longer Retry-After is waited this long

    def delay(self, attempt: int, retry_after_s: float | None = None) -> float:
        """Seconds to wait before try ``attempt + 1`` (``attempt`` counts from 1)."""
        ceiling = min(self.max_s, self.base_s * 2 ** (attempt - 1))
        wait = random.uniform(0, ceiling)
        if retry_after_s is not None:
            wait = max(wait, min(retry_after_s, self.max_retry_after_s))
        return wait


NO_RETRIES = RetryPolicy(attempts=1)


def retryable(error: ApiError) -> bool:
    if error.status_code == 0:
        return error.error_type == "connection_error"
    if error.status_code == 503:
        return error.error_type not in FINAL_503
    return error.status_code in RETRY_STATUSES


def connection_error(base_url: str, exc: Exception) -> ApiError:
    return ApiError(0, f"cannot reach limner at {base_url}: {exc.__class__.__name__}: {exc}", "connection_error")


def tls_verify(verify: ssl.SSLContext | str | bool) -> ssl.SSLContext | bool:
    """httpx's ``verify``: a CA bundle's path becomes an SSL context (a server with its own certificate)."""
    if isinstance(verify, str):
        return ssl.create_default_context(cafile=verify)
    return verify


def auth_headers(api_key: str | None) -> dict[str, str]:
    key = api_key if api_key is not None else os.environ.get("LIMNER_API_KEY")
    return {"Authorization": f"Key {key}"} if key else {}


def same_origin(url: str, base_url: str) -> bool:
    """Whether an absolute URL is on the limner server (then it gets the API key header;
    a presigned S3 URL must not: S3 refuses a request that carries two signatures)."""
    a, b = urlparse(url), urlparse(base_url)
    if not a.scheme:
        return True
    return (a.scheme, a.netloc) == (b.scheme, b.netloc)


def submit_request(
    arguments: dict[str, Any],
    *,
    priority: str | None = None,
    idempotency_key: str | None = None,
    webhook_url: str | None = None,
    webhook_events: list[str] | str | None = None,
    start_deadline_s: float | None = None,
    result_ttl_s: float | None = None,
) -> tuple[dict[str, str], dict[str, str]]:
    """(headers, query parameters) of a submission. An Idempotency-Key is always sent (made
    here when the caller gave none): it is what makes retrying a submission safe."""
    headers = {"Idempotency-Key": idempotency_key or f"sdk-{uuid.uuid4()}"}
    if priority:
        headers["X-Limner-Priority"] = priority
    params: dict[str, str] = {}
    if webhook_url:
        params["webhook_url"] = webhook_url
    if webhook_events:
        params["webhook_events"] = webhook_events if isinstance(webhook_events, str) else ",".join(webhook_events)
    if start_deadline_s is not None:
        params["start_deadline_s"] = str(start_deadline_s)
    if result_ttl_s is not None:
        params["result_ttl_s"] = str(result_ttl_s)
    return headers, params


BATCH_DONE = frozenset({"completed", "cancelled", "failed"})


def batch_request(
    model: str,
    rows: list[dict[str, Any]] | None,
    input_file: str | None,
    *,
    template: dict[str, str] | None = None,
    max_concurrency: int | None = None,
    priority: str = "low",
    metadata: dict[str, str] | None = None,
    result_ttl_s: float | None = None,
) -> dict[str, Any]:
    """The body of POST /v1/batches. ``rows`` are inputs, or ``{custom_id, input}`` objects."""
    body: dict[str, Any] = {"model": model, "priority": priority}
    if rows is not None:
        body["rows"] = [r if "input" in r else {"input": r} for r in rows]
    if input_file is not None:
        body["input_file"] = input_file
    extra = {"template": template, "max_concurrency": max_concurrency, "metadata": metadata}
    body.update({k: v for k, v in {**extra, "result_ttl_s": result_ttl_s}.items() if v is not None})
    return body


def jsonl(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def request_path(model: str, request_id: str, suffix: str = "") -> str:
    return f"/v1/queue/{model}/requests/{request_id}{suffix}"


def sse_timeout(timeout: httpx.Timeout) -> httpx.Timeout:
    """A stream waits for events for as long as the job runs (the server pings every 15 s)."""
    return httpx.Timeout(timeout.connect or 30.0, read=60.0, write=timeout.write, pool=timeout.pool)


FileInput = str | Path | bytes | IO[bytes]


def read_upload(file: FileInput, filename: str | None) -> tuple[str, bytes]:
    """(name, bytes) of something to upload: a path, bytes or an open binary file."""
    if isinstance(file, str | Path):
        path = Path(file)
        return filename or path.name, path.read_bytes()
    if isinstance(file, bytes):
        return filename or "upload", file
    return filename or Path(getattr(file, "name", "upload")).name, file.read()
