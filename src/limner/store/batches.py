"""Batches and their rows in the store: create, read, count, list, cancel, and the rows'
output. The coordinator that loads and admits rows is limner.batches.coordinator."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import Connection, Row, and_, case, func, insert, or_, select, update
from sqlalchemy.sql.elements import ColumnElement

from limner.errors import IdempotencyConflict
from limner.store.engine import Engines
from limner.store.schema import batch_rows, batches, jobs
from limner.store.states import QUEUED, RUNNING

VALIDATING: Final = "validating"
IN_PROGRESS: Final = "in_progress"
CANCELLING: Final = "cancelling"
COMPLETED: Final = "completed"
CANCELLED: Final = "cancelled"
FAILED: Final = "failed"
FINISHED: Final = frozenset({COMPLETED, CANCELLED, FAILED})
# Rows: pending (not admitted yet) → admitted (its job exists) → succeeded | failed | canceled.
PENDING: Final = "pending"
ADMITTED: Final = "admitted"
ROW_DONE: Final = frozenset({"succeeded", "failed", "canceled"})


@dataclass(frozen=True)
class NewBatch:
    project: str
    api_key_id: str | None
    model_id: str
    priority: str
    max_concurrency: int
    input_key: str
    input_format: str
    template: dict[str, Any] | None
    metadata: dict[str, Any] | None
    total: int
    result_ttl_s: float | None = None
    retry_of: str | None = None
    idempotency_key: str | None = None
    body_hash: str | None = None


@dataclass(frozen=True)
class Batch:
    id: str
    project: str
    api_key_id: str | None
    model_id: str
    status: str
    priority: str
    max_concurrency: int
    input_key: str
    input_format: str
    template: dict[str, Any] | None
    metadata: dict[str, Any] | None
    total: int
    loaded: int
    cancel_requested: bool
    retry_of: str | None
    result_ttl_s: float | None
    error: str | None
    created_at: float
    updated_at: float
    started_at: float | None
    finished_at: float | None

    @classmethod
    def from_row(cls, row: Row[Any]) -> Batch:
        m = row._mapping
        return cls(**{name: m[name] for name in cls.__dataclass_fields__})

    @property
    def finished(self) -> bool:
        return self.status in FINISHED


class BatchStore:
    def __init__(self, engines: Engines) -> None:
        self.engines = engines

    def create(self, new: NewBatch) -> Batch:
        """Write the batch; with an Idempotency-Key already used in its project, the earlier
        batch (same body) or an IdempotencyConflict (another body)."""
        now = time.time()
        with self.engines.write.begin() as conn:
            earlier = self._earlier(conn, new)
            batch_id = earlier or f"batch_{secrets.token_hex(10)}"
            if earlier is None:
                conn.execute(
                    insert(batches).values(
                        id=batch_id,
                        **new.__dict__,
                        status=VALIDATING,
                        loaded=0,
                        cancel_requested=False,
                        advance_due=True,  # a coordinator loads its rows
                        created_at=now,
                        updated_at=now,
                    )
                )
        batch = self.get(batch_id)
        assert batch is not None
        return batch

    @staticmethod
    def _earlier(conn: Connection, new: NewBatch) -> str | None:
        if new.idempotency_key is None:
            return None
        known = conn.execute(
            select(batches.c.id, batches.c.body_hash).where(
                batches.c.project == new.project, batches.c.idempotency_key == new.idempotency_key
            )
        ).first()
        if known is None:
            return None
        if known.body_hash != new.body_hash:
            raise IdempotencyConflict(
                f"Idempotency-Key {new.idempotency_key!r} was already used for batch {known.id} with a different body",
                loc=("header", "idempotency-key"),
            )
        return str(known.id)

    def get(self, batch_id: str) -> Batch | None:
        with self.engines.read.connect() as conn:
            row = conn.execute(select(batches).where(batches.c.id == batch_id)).first()
        return Batch.from_row(row) if row else None

    def page(self, project: str | None, limit: int, before: tuple[float, str] | None = None) -> list[Batch]:
        conditions: list[ColumnElement[bool]] = []
        if project is not None:
            conditions.append(batches.c.project == project)
        if before is not None:
            stamp, batch_id = before
            conditions.append(
                or_(batches.c.created_at < stamp, and_(batches.c.created_at == stamp, batches.c.id < batch_id))
            )
        query = select(batches).order_by(batches.c.created_at.desc(), batches.c.id.desc()).limit(limit)
        if conditions:
            query = query.where(and_(*conditions))
        with self.engines.read.connect() as conn:
            return [Batch.from_row(r) for r in conn.execute(query)]

    def counts(self, batch: Batch) -> dict[str, int]:
        """Rows by state: queued (pending, or its job waiting), running, succeeded, failed, canceled."""
        job_status = (
            select(batch_rows.c.status.label("row"), jobs.c.status.label("job"))
            .select_from(batch_rows.outerjoin(jobs, jobs.c.id == batch_rows.c.job_id))
            .where(batch_rows.c.batch_id == batch.id)
            .subquery()
        )
        state = case(
            (job_status.c.row == PENDING, "queued"),
            (and_(job_status.c.row == ADMITTED, job_status.c.job == RUNNING), "running"),
            (job_status.c.row == ADMITTED, "queued"),
            else_=job_status.c.row,
        )
        with self.engines.read.connect() as conn:
            rows = conn.execute(select(state.label("state"), func.count()).group_by(state)).all()
        counts = {"total": batch.total, "queued": 0, "running": 0, "succeeded": 0, "failed": 0, "canceled": 0}
        for name, count in rows:
            counts[str(name)] = counts.get(str(name), 0) + int(count)
        counts["queued"] += max(batch.total - batch.loaded, 0)  # rows still being loaded
        return counts

    def request_cancel(self, batch_id: str) -> Batch | None:
        now = time.time()
        with self.engines.write.begin() as conn:
            conn.execute(
                update(batches)
                .where(batches.c.id == batch_id, batches.c.status.in_((VALIDATING, IN_PROGRESS)))
                .values(cancel_requested=True, status=CANCELLING, advance_due=True, updated_at=now)
            )
        return self.get(batch_id)

    def finished_rows(self, batch_id: str, *, errors_only: bool = False, page: int = 500) -> Iterator[dict[str, Any]]:
        """Finished rows in file order, with their jobs' results, a page at a time (the output
        is read while the batch runs, and never held whole)."""
        after = -1
        done = ("failed", "canceled") if errors_only else tuple(ROW_DONE)
        while True:
            with self.engines.read.connect() as conn:
                rows = conn.execute(
                    select(batch_rows, jobs.c.result, jobs.c.error.label("job_error"))
                    .select_from(batch_rows.outerjoin(jobs, jobs.c.id == batch_rows.c.job_id))
                    .where(batch_rows.c.batch_id == batch_id, batch_rows.c.idx > after, batch_rows.c.status.in_(done))
                    .order_by(batch_rows.c.idx)
                    .limit(page)
                ).all()
            for row in rows:
                yield dict(row._mapping)
            if len(rows) < page:
                return
            after = rows[-1].idx

    def in_flight_jobs(self, batch_id: str) -> list[tuple[str, str]]:
        """(job id, status) of the batch's admitted rows whose jobs are still going."""
        with self.engines.read.connect() as conn:
            rows = conn.execute(
                select(jobs.c.id, jobs.c.status)
                .select_from(batch_rows.join(jobs, jobs.c.id == batch_rows.c.job_id))
                .where(batch_rows.c.batch_id == batch_id, jobs.c.status.in_((QUEUED, RUNNING)))
            ).all()
        return [(r.id, r.status) for r in rows]
