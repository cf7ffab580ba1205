"""Running batches: load their rows, admit rows into the queue as capacity frees up, follow the
rows' jobs, finish.

Any number of coordinators (every API process and worker runs one) share the work: each takes
a due batch with a short lease (``batches.lease_owner``), so one batch has one coordinator at a
time and a dead one's batch is taken over when its lease ends. Every step is a transaction:

- *loading* (``validating``): the input file is read again from storage and the rows after
  ``loaded`` are inserted, a chunk per transaction (no giant transaction, no file held in a
  process); ids were checked unique at submit;
- *admitting* (``in_progress``): rows are built into jobs exactly as a request to the model's
  queue route would be (limner.intake), at the batch's priority (low by default, so
  interactive jobs overtake them). A row and its job are written together, so a row is admitted
  once; a row whose input does not fit the model fails alone, with its error;
- *following*: a row's job ending marks the batch due (limner.store.ends); its row takes the
  job's outcome, and a slot is free for the next row.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import time
from typing import Any

from sqlalchemy import Connection, func, insert, select, update

from limner.batches.rows import read_rows
from limner.catalog.loader import Catalog
from limner.errors import LimnerError
from limner.intake.build import JobOptions, build_job
from limner.net.fetch import FetchPolicy
from limner.storage import Storage
from limner.store.batches import (
    ADMITTED,
    CANCELLED,
    CANCELLING,
    COMPLETED,
    FAILED,
    IN_PROGRESS,
    PENDING,
    VALIDATING,
    Batch,
)
from limner.store.cancel import cancel_jobs
from limner.store.engine import Engines
from limner.store.jobs import JobStore
from limner.store.loras import LoraStore
from limner.store.notify import notify
from limner.store.records import NewJob
from limner.store.schema import batch_rows, batches, jobs
from limner.store.states import QUEUED, RUNNING, TERMINAL
from limner.tenancy import member_of
from limner.workflows.spec import WorkflowEntry
from limner.workflows.submit import workflow_job

log = logging.getLogger("limner.batches")
LOAD_CHUNK = 500
LEASE_S = 30.0
MAX_ROWS = 100_000


class BatchCoordinator:
    def __init__(
        self,
        engines: Engines,
        catalog: Catalog,
        storage: Storage,
        jobs_store: JobStore,
        base: str,
        policy: FetchPolicy | None,
        *,
        max_job_attempts: int = 3,
    ) -> None:
        self.engines = engines
        self.catalog = catalog
        self.storage = storage
        self.jobs = jobs_store
        self.base = base
        self.policy = policy
        self.max_job_attempts = max_job_attempts
        self.owner = f"batches-{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"

    def run_once(self, limit: int = 8) -> int:
        now = time.time()
        with self.engines.read.connect() as conn:
            due = list(
                conn.execute(
                    select(batches.c.id)
                    .where(
                        batches.c.advance_due.is_(True),
                        batches.c.status.in_((VALIDATING, IN_PROGRESS, CANCELLING)),
                        (batches.c.lease_expires_at.is_(None)) | (batches.c.lease_expires_at < now),
                    )
                    .order_by(batches.c.created_at)
                    .limit(limit)
                ).scalars()
            )
        return sum(self.advance(batch_id) for batch_id in due)

    def advance(self, batch_id: str) -> int:
        if not self._lease(batch_id):
            return 0
        try:
            batch = self._get(batch_id)
            if batch is None:
                return 0
            if batch.status == VALIDATING and not batch.cancel_requested:
                try:
                    self._load(batch)
                except LimnerError as exc:  # checked at submit; only a changed or lost file gets here
                    fail_batch(self.engines, batch.id, f"cannot read the input file: {exc.message}")
            else:
                self._follow(batch)
            return 1
        finally:
            self._release(batch_id)

    # -- leases ------------------------------------------------------------------------------

    def _lease(self, batch_id: str) -> bool:
        now = time.time()
        with self.engines.write.begin() as conn:
            taken = conn.execute(
                update(batches)
                .where(
                    batches.c.id == batch_id,
                    (batches.c.lease_expires_at.is_(None)) | (batches.c.lease_expires_at < now),
                )
                .values(lease_owner=self.owner, lease_expires_at=now + LEASE_S, advance_due=False)
            ).rowcount
        return bool(taken)

    def _release(self, batch_id: str) -> None:
        with self.engines.write.begin() as conn:
            conn.execute(
                update(batches)
                .where(batches.c.id == batch_id, batches.c.lease_owner == self.owner)
                .values(lease_owner=None, lease_expires_at=None)
            )

    def _get(self, batch_id: str) -> Batch | None:
        with self.engines.read.connect() as conn:
            row = conn.execute(select(batches).where(batches.c.id == batch_id)).first()
        return Batch.from_row(row) if row else None

    # -- loading -----------------------------------------------------------------------------

    def _load(self, batch: Batch) -> None:
        """Insert the next chunk of rows; the batch stays due until all are in."""
        data = self.storage.get(batch.input_key)
        chunk: list[dict[str, Any]] = []
        rows = read_rows(data, batch.input_format, batch.template, MAX_ROWS)  # type: ignore[arg-type]
        for row in rows:
            if row.index < batch.loaded:
                continue
            chunk.append({"batch_id": batch.id, "idx": row.index, "custom_id": row.custom_id, "input": row.input})
            if len(chunk) >= LOAD_CHUNK:
                break
        now = time.time()
        with self.engines.write.begin() as conn:
            if chunk:
                conn.execute(insert(batch_rows), [{**r, "status": PENDING} for r in chunk])
            loaded = batch.loaded + len(chunk)
            values: dict[str, Any] = {"loaded": loaded, "updated_at": now, "advance_due": True}
            if loaded >= batch.total:
                values.update(status=IN_PROGRESS, started_at=now)
                log.info("batch %s: %d rows loaded; admitting", batch.id, loaded)
            conn.execute(
                update(batches).where(batches.c.id == batch.id, batches.c.loaded == batch.loaded).values(**values)
            )

    # -- admitting and following -------------------------------------------------------------

    def _follow(self, batch: Batch) -> None:
        self._sync_rows(batch)
        if batch.cancel_requested:
            self._cancel_rows(batch)
        else:
            self._admit(batch)
        self._maybe_finish(batch)

    def _sync_rows(self, batch: Batch) -> None:
        """Admitted rows take the outcome of their finished jobs."""
        with self.engines.read.connect() as conn:
            done = conn.execute(
                select(batch_rows.c.idx, jobs.c.status, jobs.c.error, jobs.c.error_type, jobs.c.finished_at)
                .select_from(batch_rows.join(jobs, jobs.c.id == batch_rows.c.job_id))
                .where(batch_rows.c.batch_id == batch.id, batch_rows.c.status == ADMITTED, jobs.c.status.in_(TERMINAL))
            ).all()
        if not done:
            return
        with self.engines.write.begin() as conn:
            for row in done:
                conn.execute(
                    update(batch_rows)
                    .where(
                        batch_rows.c.batch_id == batch.id, batch_rows.c.idx == row.idx, batch_rows.c.status == ADMITTED
                    )
                    .values(status=row.status, error=row.error, error_type=row.error_type, finished_at=row.finished_at)
                )

    def _admit(self, batch: Batch) -> None:
        target = self.catalog.callable(batch.model_id)
        while True:
            with self.engines.read.connect() as conn:
                in_flight = conn.execute(
                    select(func.count()).where(batch_rows.c.batch_id == batch.id, batch_rows.c.status == ADMITTED)
                ).scalar_one()
                free = batch.max_concurrency - int(in_flight)
                if free <= 0:
                    return
                pending = conn.execute(
                    select(batch_rows.c.idx, batch_rows.c.custom_id, batch_rows.c.input)
                    .where(batch_rows.c.batch_id == batch.id, batch_rows.c.status == PENDING)
                    .order_by(batch_rows.c.idx)
                    .limit(free)
                ).all()
            if not pending:
                return
            built: list[tuple[int, NewJob | LimnerError]] = [
                (r.idx, self._build(batch, target, r.input)) for r in pending
            ]
            with self.engines.write.begin() as conn:
                self._write_admitted(conn, batch, built)

    def _build(self, batch: Batch, target: Any, body: dict[str, Any]) -> NewJob | LimnerError:
        options = JobOptions(
            caller=member_of(batch.project, batch.api_key_id),
            priority=batch.priority,
            result_ttl_s=batch.result_ttl_s,
            max_attempts=self.max_job_attempts,
            batch_id=batch.id,
        )
        try:
            if isinstance(target, WorkflowEntry):
                return workflow_job(target, body, options, self.catalog, self.storage, self.base, self.policy)
            return build_job(target, body, options, self.storage, self.base, self.policy, LoraStore(self.engines))
        except LimnerError as exc:
            return exc

    def _write_admitted(self, conn: Connection, batch: Batch, built: list[tuple[int, NewJob | LimnerError]]) -> None:
        now = time.time()
        new_jobs: list[NewJob] = []
        for idx, outcome in built:
            row = (batch_rows.c.batch_id == batch.id) & (batch_rows.c.idx == idx) & (batch_rows.c.status == PENDING)
            if isinstance(outcome, LimnerError):  # a bad row is that row's error, never the batch's
                conn.execute(
                    update(batch_rows)
                    .where(row)
                    .values(status="failed", error=outcome.message, error_type=outcome.error_type, finished_at=now)
                )
                continue
            if conn.execute(update(batch_rows).where(row).values(status=ADMITTED, job_id=outcome.id)).rowcount:
                new_jobs.append(outcome)
        if new_jobs:
            self.jobs.write_new(conn, new_jobs)
            notify(conn, [j.id for j in new_jobs])

    def _cancel_rows(self, batch: Batch) -> None:
        now = time.time()
        with self.engines.write.begin() as conn:
            conn.execute(
                update(batch_rows)
                .where(batch_rows.c.batch_id == batch.id, batch_rows.c.status == PENDING)
                .values(status="canceled", error="the batch was cancelled", error_type="canceled", finished_at=now)
            )
            going = conn.execute(
                select(jobs.c.id)
                .select_from(batch_rows.join(jobs, jobs.c.id == batch_rows.c.job_id))
                .where(batch_rows.c.batch_id == batch.id, jobs.c.status.in_((QUEUED, RUNNING)))
            ).scalars()
            cancel_jobs(conn, list(going), "the batch was cancelled")

    def _maybe_finish(self, batch: Batch) -> None:
        with self.engines.read.connect() as conn:
            open_rows = conn.execute(
                select(func.count()).where(
                    batch_rows.c.batch_id == batch.id, batch_rows.c.status.in_((PENDING, ADMITTED))
                )
            ).scalar_one()
        if open_rows:
            return
        now = time.time()
        status = CANCELLED if batch.cancel_requested else COMPLETED
        with self.engines.write.begin() as conn:
            finished = conn.execute(
                update(batches)
                .where(batches.c.id == batch.id, batches.c.status.in_((IN_PROGRESS, CANCELLING, VALIDATING)))
                .values(status=status, finished_at=now, updated_at=now)
            ).rowcount
        if finished:
            log.info("batch %s %s", batch.id, status)


def fail_batch(engines: Engines, batch_id: str, message: str) -> None:
    """A batch whose input cannot be read at all (checked at submit, so only if it changed)."""
    now = time.time()
    with engines.write.begin() as conn:
        conn.execute(
            update(batches)
            .where(batches.c.id == batch_id)
            .values(status=FAILED, error=message, finished_at=now, updated_at=now)
        )
