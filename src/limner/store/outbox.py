"""Writing webhook messages into the outbox, inside the transaction of the job change.

The functions here take the caller's open connection: a job's claim, progress, completion or
failure and the message that announces it commit together or not at all. So a completion is
never recorded without its webhook (or the other way round), and because completions are
conditional on the worker still holding the lease, a worker whose completion is refused
writes no message either. ``dedupe_key`` ("<job>:completed") makes a second completed message
for one job impossible even if a future code path tried.

Reading, claiming and recording attempts (the dispatcher's side) is ``limner.store.deliveries``.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import Connection, and_, exists, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import RowMapping

from limner.store.schema import jobs, webhook_outbox
from limner.store.states import SUCCEEDED

STARTED: Final = "started"
PROGRESS: Final = "progress"
COMPLETED: Final = "completed"
EVENTS: Final[tuple[str, ...]] = (STARTED, PROGRESS, COMPLETED)
DEFAULT_EVENTS: Final = COMPLETED

PENDING: Final = "pending"
DELIVERING: Final = "delivering"
DELIVERED: Final = "delivered"
FAILED: Final = "failed"
GONE: Final = "gone"
SUPERSEDED: Final = "superseded"
DELIVERY_STATUSES: Final[tuple[str, ...]] = (PENDING, DELIVERING, DELIVERED, FAILED, GONE, SUPERSEDED)

_JOB_COLUMNS = (
    jobs.c.id,
    jobs.c.model_id,
    jobs.c.status,
    jobs.c.attempts,
    jobs.c.progress,
    jobs.c.result,
    jobs.c.error,
    jobs.c.error_type,
    jobs.c.webhook_url,
    jobs.c.webhook_events,
)


def parse_events(value: str | None) -> tuple[str, ...]:
    """``"started,completed"`` -> ("started", "completed"); raises ValueError naming a bad one."""
    if value is None or not value.strip():
        return (DEFAULT_EVENTS,)
    names = [p.strip().lower() for p in value.split(",") if p.strip()]
    unknown = [n for n in names if n not in EVENTS]
    if unknown:
        raise ValueError(f"unknown webhook event {unknown[0]!r}; choose from {', '.join(EVENTS)}")
    return tuple(e for e in EVENTS if e in names)


def new_message_id() -> str:
    # The spec asks for ids that are not user controlled and hold no ".".
    return f"msg_{uuid.uuid4().hex}"


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def payload_for(job: RowMapping, event: str, now: float) -> dict[str, Any]:
    """The fal-compatible body ({request_id, gateway_request_id, status, payload, error?}) with
    Standard Webhooks' ``type`` and ``timestamp``. File references stay ``storage://`` here and
    become URLs when the dispatcher sends the message."""
    body: dict[str, Any] = {
        "type": f"request.{event}",
        "timestamp": iso(now),
        "request_id": job["id"],
        "gateway_request_id": job["id"],
        "model_id": job["model_id"],
    }
    if event == STARTED:
        body.update(status="IN_PROGRESS", payload={"state": "running", "attempt": job["attempts"]})
    elif event == PROGRESS:
        body.update(status="IN_PROGRESS", payload=job["progress"])
    elif job["status"] == SUCCEEDED:
        body.update(status="OK", payload=job["result"])
    else:
        message = job["error"] or job["error_type"] or job["status"]
        body.update(
            status="ERROR",
            error=message,
            error_type=job["error_type"],
            state=job["status"],
            payload={"detail": [{"loc": ["request_id"], "msg": message, "type": job["error_type"]}]},
        )
    return body


def _dedupe_key(job: RowMapping, event: str) -> str | None:
    if event == COMPLETED:
        return f"{job['id']}:completed"
    if event == STARTED:
        return f"{job['id']}:started:{job['attempts']}"
    return None  # progress messages coalesce instead (see on_progress)


def _subscribed(conn: Connection, job_ids: list[str], event: str) -> list[RowMapping]:
    """The jobs among ``job_ids`` that want ``event`` and whose receiver has not said 410."""
    gone = exists().where(and_(webhook_outbox.c.job_id == jobs.c.id, webhook_outbox.c.status == GONE))
    rows = conn.execute(
        select(*_JOB_COLUMNS).where(jobs.c.id.in_(job_ids), jobs.c.webhook_url.is_not(None), ~gone)
    ).mappings()
    return [r for r in rows if event in parse_events(r["webhook_events"])]


def _insert_ignoring_duplicates(conn: Connection, rows: list[dict[str, Any]]) -> None:
    if conn.dialect.name == "postgresql":
        conn.execute(postgresql.insert(webhook_outbox).on_conflict_do_nothing(index_elements=["dedupe_key"]), rows)
    elif conn.dialect.name == "sqlite":
        conn.execute(sqlite.insert(webhook_outbox).on_conflict_do_nothing(index_elements=["dedupe_key"]), rows)
    else:
        conn.execute(insert(webhook_outbox), rows)


def _row(job: RowMapping, event: str, now: float) -> dict[str, Any]:
    return {
        "id": new_message_id(),
        "job_id": job["id"],
        "event": event,
        "url": job["webhook_url"],
        "payload": payload_for(job, event, now),
        "dedupe_key": _dedupe_key(job, event),
        "status": PENDING,
        "attempts": 0,
        "tries": 0,
        "next_attempt_at": now,
        "created_at": now,
        "updated_at": now,
    }


def on_jobs(conn: Connection, job_ids: Iterable[str], event: str) -> int:
    """Queue ``event`` messages for those of ``job_ids`` that subscribed; returns how many.

    Call it inside the transaction that made the change, after the change."""
    ids = list(job_ids)
    if not ids:
        return 0
    now = time.time()
    subscribed = _subscribed(conn, ids, event)
    if not subscribed:
        return 0
    if event == COMPLETED:
        # A progress message still waiting would arrive after the completion: drop it.
        conn.execute(
            update(webhook_outbox)
            .where(
                webhook_outbox.c.job_id.in_([j["id"] for j in subscribed]),
                webhook_outbox.c.event == PROGRESS,
                webhook_outbox.c.status == PENDING,
            )
            .values(status=SUPERSEDED, next_attempt_at=None, updated_at=now)
        )
    _insert_ignoring_duplicates(conn, [_row(j, event, now) for j in subscribed])
    return len(subscribed)


def on_progress(conn: Connection, job_id: str) -> None:
    """Queue a progress message, coalesced: while one for the job waits unsent, it is
    updated in place, so a job has at most one pending progress delivery however fast it
    reports (the receiver gets the newest progress, not a backlog)."""
    subscribed = _subscribed(conn, [job_id], PROGRESS)
    if not subscribed:
        return
    job, now = subscribed[0], time.time()
    updated = conn.execute(
        update(webhook_outbox)
        .where(
            webhook_outbox.c.job_id == job_id,
            webhook_outbox.c.event == PROGRESS,
            webhook_outbox.c.status == PENDING,
        )
        .values(payload=payload_for(job, PROGRESS, now), updated_at=now)
    ).rowcount
    if not updated:
        conn.execute(insert(webhook_outbox), [_row(job, PROGRESS, now)])
