"""How jobs look on the wire: the fal queue protocol's status and result bodies."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from limner import progress
from limner.errors import ERROR_TYPES, LimnerError, ResultExpired
from limner.storage import Storage
from limner.storage.base import REF_PREFIX
from limner.store.records import Job, LogLine
from limner.store.states import FAILED, QUEUED, queue_status


def request_base(base: str, job: Job) -> str:
    return f"{base}/v1/queue/{job.model_id}/requests/{job.id}"


def queue_urls(base: str, job_id: str, model_id: str) -> dict[str, str]:
    root = f"{base}/v1/queue/{model_id}/requests/{job_id}"
    return {
        "request_id": job_id,
        "status_url": f"{root}/status",
        "response_url": root,
        "cancel_url": f"{root}/cancel",
    }


def render_refs(value: Any, storage: Storage, base: str) -> Any:
    """Replace storage references (inputs and outputs) with URLs a client can fetch."""
    if isinstance(value, str) and value.startswith(REF_PREFIX):
        return storage.url(value[len(REF_PREFIX) :], base)
    if isinstance(value, dict):
        return {k: render_refs(v, storage, base) for k, v in value.items()}
    if isinstance(value, list):
        return [render_refs(v, storage, base) for v in value]
    return value


def status_body(job: Job, base: str, *, position: int, logs: list[LogLine] | None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "status": queue_status(job.status),
        "state": job.status,
        "request_id": job.id,
        "model_id": job.model_id,
        "progress": progress.normalize(job.progress, job.status),
        # fal's clients expect logs on IN_PROGRESS and COMPLETED bodies: always send the list.
        "logs": [line.as_dict() for line in logs] if logs is not None else [],
        "attempts": job.attempts,
        "created_at": job.created_at,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
        **{k: v for k, v in queue_urls(base, job.id, job.model_id).items() if k != "request_id"},
    }
    if job.status == QUEUED:
        body["queue_position"] = position
    if job.error_type:
        body["error"] = job.error
        body["error_type"] = job.error_type
    if job.result and "timings" in job.result:
        body["metrics"] = {"inference_time": job.result["timings"].get("inference_s")}
    if job.start_deadline_at is not None:
        body["start_deadline_at"] = job.start_deadline_at
    if job.result_ttl_s:
        body["expires_at"] = job.expires_at
        body["expired"] = job.expired(time.time())
    return body


def failure(job: Job) -> LimnerError:
    """The error a finished-but-failed job answers its result route with."""
    cls = ERROR_TYPES.get(job.error_type or "", LimnerError)
    status = "failed" if job.status == FAILED else job.status
    return cls(f"request {job.id} {status}: {job.error or job.error_type}", loc=("request_id",))


def expired(job: Job) -> ResultExpired:
    """The answer of the result route after the result's retention time."""
    when = datetime.fromtimestamp(job.expires_at or job.expired_at or 0, UTC).isoformat(timespec="seconds")
    return ResultExpired(
        f"the result of request {job.id} expired at {when} (kept {job.result_ttl_s:g} s after the job ended, "
        "result_ttl_s); its files were deleted",
        loc=("request_id",),
    )


def summary(job: Job, base: str) -> dict[str, Any]:
    """One line of GET /v1/requests."""
    return {
        "request_id": job.id,
        "model_id": job.model_id,
        "task": job.task,
        "status": queue_status(job.status),
        "state": job.status,
        "priority": job.priority,
        "attempts": job.attempts,
        "created_at": job.created_at,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
        "error_type": job.error_type,
        "api_key_id": job.api_key_id,
        "project": job.project,
        "parent_id": job.parent_id,
        "step": job.step_key,
        "batch_id": job.batch_id,
        "status_url": f"{request_base(base, job)}/status",
        "response_url": request_base(base, job),
    }
