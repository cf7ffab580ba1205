"""The API's side of the job store: submit, look up, list, cancel, read logs."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import Connection, and_, func, insert, or_, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql.elements import ColumnElement

from limner import progress
from limner.errors import IdempotencyConflict
from limner.store.cancel import cancel_jobs
from limner.store.engine import Engines
from limner.store.records import Job, LogLine, NewJob, Submitted
from limner.store.schema import job_events, jobs
from limner.store.states import QUEUED, TERMINAL, check_birth, rank_for

CancelOutcome = Literal["CANCELLATION_REQUESTED", "ALREADY_COMPLETED"]


@dataclass(frozen=True)
class JobFilter:
    """The listing's further filters (all optional, combined with AND)."""

    created_after: float | None = None
    created_before: float | None = None
    priority: str | None = None
    task: str | None = None
    api_key_id: str | None = None
    project: str | None = None  # None: every project (an admin's view)
    parent_id: str | None = None  # a workflow's step jobs
    top_level: bool = False  # no step jobs
    batch_id: str | None = None

    def conditions(self) -> list[ColumnElement[bool]]:
        out: list[ColumnElement[bool]] = []
        if self.created_after is not None:
            out.append(jobs.c.created_at >= self.created_after)
        if self.created_before is not None:
            out.append(jobs.c.created_at < self.created_before)
        if self.priority:
            out.append(jobs.c.priority == self.priority)
        if self.task:
            out.append(jobs.c.task == self.task)
        if self.api_key_id:
            out.append(jobs.c.api_key_id == self.api_key_id)
        if self.project is not None:
            out.append(jobs.c.project == self.project)
        if self.parent_id is not None:
            out.append(jobs.c.parent_id == self.parent_id)
        if self.top_level:
            out.append(jobs.c.parent_id.is_(None))
        if self.batch_id is not None:
            out.append(jobs.c.batch_id == self.batch_id)
        return out


class JobStore:
    def __init__(self, engines: Engines, *, priority_step_s: float) -> None:
        self.engines = engines
        self.priority_step_s = priority_step_s

    # -- writing ---------------------------------------------------------------------------

    def submit_many(self, batch: Sequence[NewJob]) -> list[Submitted | IdempotencyConflict]:
        """Write a group of submissions in one transaction (one fsync for all of them).

        Each item is either written, or resolved to the earlier job with the same
        Idempotency-Key (same body), or refused (same key, different body). If another API
        replica races us on a key, the group falls back to one transaction per item.
        """
        try:
            with self.engines.write.begin() as conn:
                return self.write_new(conn, batch)
        except IntegrityError:
            if len(batch) == 1:
                with self.engines.write.begin() as conn:
                    return self.write_new(conn, batch)
            out: list[Submitted | IdempotencyConflict] = []
            for item in batch:
                out.extend(self.submit_many([item]))
            return out

    def write_new(self, conn: Connection, batch: Sequence[NewJob]) -> list[Submitted | IdempotencyConflict]:
        """Insert new jobs (and their first log lines) inside the caller's transaction; a
        repeated Idempotency-Key resolves to the earlier job."""
        keys = [j.idempotency_key for j in batch if j.idempotency_key]
        known: dict[str, tuple[str, str]] = {}
        if keys:
            rows = conn.execute(
                select(jobs.c.idempotency_key, jobs.c.id, jobs.c.body_hash).where(jobs.c.idempotency_key.in_(keys))
            )
            known = {r.idempotency_key: (r.id, r.body_hash) for r in rows}
        now = time.time()
        out: list[Submitted | IdempotencyConflict] = []
        rows_to_insert: list[dict[str, Any]] = []
        for item in batch:
            key = item.idempotency_key
            if key and key in known:
                job_id, body_hash = known[key]
                if body_hash == item.body_hash:
                    out.append(Submitted(job_id=job_id, created=False))
                else:
                    out.append(
                        IdempotencyConflict(
                            f"Idempotency-Key {key!r} was already used for request {job_id} with a different body",
                            loc=("header", "idempotency-key"),
                        )
                    )
                continue
            if key:
                known[key] = (item.id, item.body_hash)
            rows_to_insert.append(self.row_for(item, now))
            out.append(Submitted(job_id=item.id, created=True))
        if rows_to_insert:
            conn.execute(insert(jobs), rows_to_insert)
            conn.execute(
                insert(job_events),
                [
                    {
                        "job_id": r["id"],
                        "ts": now,
                        "level": "info",
                        "source": "api",
                        "message": f"queued with priority {r['priority']}",
                    }
                    for r in rows_to_insert
                ],
            )
        return out

    def row_for(self, item: NewJob, now: float) -> dict[str, Any]:
        return {
            "id": item.id,
            "model_id": item.model_id,
            "task": item.task,
            "status": check_birth(QUEUED),
            "priority": item.priority,
            "rank": rank_for(now, item.priority, self.priority_step_s),
            "input": item.input,
            "batch_key": item.batch_key,
            "idempotency_key": item.idempotency_key,
            "body_hash": item.body_hash,
            "attempts": 0,
            "max_attempts": item.max_attempts,
            "cancel_requested": False,
            "progress": progress.make(progress.QUEUED),
            "created_at": now,
            "updated_at": now,
            "webhook_url": item.webhook_url,
            "webhook_events": item.webhook_events,
            "start_deadline_at": now + item.start_deadline_s if item.start_deadline_s else None,
            "result_ttl_s": item.result_ttl_s or None,
            "api_key_id": item.api_key_id,
            "cache_mode": item.cache_mode,
            "project": item.project,
            "parent_id": item.parent_id,
            "step_key": item.step_key,
            "step_attempt": item.step_attempt,
            "deadline_at": now + item.deadline_s if item.deadline_s else None,
            "batch_id": item.batch_id,
            "advance_due": item.advance_due,
        }

    def cancel(self, job_id: str) -> CancelOutcome | None:
        """Cancel a job: a queued one never runs; a running one stops at its next step. A
        workflow job (no worker holds it) is canceled at once, and so are its steps."""
        with self.engines.write.begin() as conn:
            status = conn.execute(select(jobs.c.status).where(jobs.c.id == job_id)).scalar()
            if status is None:
                return None
            why = "canceled before it started" if status == QUEUED else "canceled"
            gone, stopping = cancel_jobs(conn, [job_id], why)
            if gone:
                self._log(conn, job_id, "info", "api", "canceled while queued" if status == QUEUED else "canceled")
            elif stopping:
                self._log(conn, job_id, "info", "api", "cancellation requested")
        return "CANCELLATION_REQUESTED" if gone or stopping else "ALREADY_COMPLETED"

    def log(self, job_id: str, level: str, source: str, message: str) -> None:
        with self.engines.write.begin() as conn:
            self._log(conn, job_id, level, source, message)

    @staticmethod
    def _log(conn: Connection, job_id: str, level: str, source: str, message: str) -> None:
        conn.execute(
            insert(job_events).values(job_id=job_id, ts=time.time(), level=level, source=source, message=message)
        )

    # -- reading ---------------------------------------------------------------------------

    def get(self, job_id: str) -> Job | None:
        with self.engines.read.connect() as conn:
            row = conn.execute(select(jobs).where(jobs.c.id == job_id)).first()
        return Job.from_row(row) if row else None

    def children(self, parent_id: str) -> list[Job]:
        """A workflow job's step jobs, oldest first."""
        with self.engines.read.connect() as conn:
            rows = conn.execute(select(jobs).where(jobs.c.parent_id == parent_id).order_by(jobs.c.created_at))
            return [Job.from_row(r) for r in rows]

    def queue_position(self, job: Job) -> int:
        """How many queued jobs will be claimed before this one (0 = next)."""
        if job.status != QUEUED:
            return 0
        with self.engines.read.connect() as conn:
            count = conn.execute(
                select(func.count()).select_from(jobs).where(jobs.c.status == QUEUED, jobs.c.rank < job.rank)
            ).scalar_one()
        return int(count)

    def logs(self, job_id: str, after_id: int = 0) -> list[LogLine]:
        with self.engines.read.connect() as conn:
            rows = conn.execute(
                select(job_events)
                .where(job_events.c.job_id == job_id, job_events.c.id > after_id)
                .order_by(job_events.c.id)
            )
            return [LogLine(id=r.id, ts=r.ts, level=r.level, source=r.source, message=r.message) for r in rows]

    def list_jobs(
        self,
        *,
        statuses: tuple[str, ...] | None = None,
        model_id: str | None = None,
        limit: int = 50,
        before: tuple[float, str] | None = None,
        filters: JobFilter | None = None,
    ) -> list[Job]:
        """Newest first. ``before`` is the (created_at, id) of the last job of the previous page."""
        conditions: list[ColumnElement[bool]] = []
        if statuses:
            conditions.append(jobs.c.status.in_(statuses))
        if model_id:
            conditions.append(jobs.c.model_id == model_id)
        if filters is not None:
            conditions.extend(filters.conditions())
        if before is not None:
            stamp, job_id = before
            conditions.append(or_(jobs.c.created_at < stamp, and_(jobs.c.created_at == stamp, jobs.c.id < job_id)))
        query = select(jobs).order_by(jobs.c.created_at.desc(), jobs.c.id.desc()).limit(limit)
        if conditions:
            query = query.where(and_(*conditions))
        with self.engines.read.connect() as conn:
            return [Job.from_row(r) for r in conn.execute(query)]

    def count_by_status(self) -> dict[str, int]:
        with self.engines.read.connect() as conn:
            rows = conn.execute(select(jobs.c.status, func.count()).group_by(jobs.c.status))
            return {r[0]: int(r[1]) for r in rows}

    def ping(self) -> None:
        with self.engines.read.connect() as conn:
            conn.execute(text("SELECT 1"))

    @staticmethod
    def is_terminal(status: str) -> bool:
        return status in TERMINAL
