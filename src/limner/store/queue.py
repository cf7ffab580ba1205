"""The workers' side of the job store: claim, lease, progress, complete, fail, reap.

Every write that finishes a job is conditional on the caller still holding the job's lease,
so a worker that lost its lease (it was presumed dead and the job ran elsewhere) cannot
overwrite the result: results are written once per job id.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, insert, select, update

from limner.store import outbox
from limner.store.deadlines import expire_unstarted
from limner.store.ends import ended
from limner.store.engine import Engines
from limner.store.notify import notify
from limner.store.records import Job
from limner.store.schema import job_events, jobs
from limner.store.states import CANCELED, FAILED, QUEUED, RUNNING, SUCCEEDED, move


@dataclass(frozen=True)
class Lease:
    """Whether the caller still holds a job, and whether someone asked to cancel it."""

    held: bool
    cancel_requested: bool


class WorkQueue:
    def __init__(self, engines: Engines, *, lease_s: float) -> None:
        self.engines = engines
        self.lease_s = lease_s

    # -- claiming --------------------------------------------------------------------------

    def next_batch_key(
        self, held_models: Sequence[str], affinity_s: float, servable: Sequence[str]
    ) -> tuple[str, str] | None:
        """The (model, batch key) to claim next among the ``servable`` models: the best-ranked
        queued job, unless a job for a model this worker already holds is within ``affinity_s``
        seconds of rank of it (model affinity; aging still wins past that window)."""
        with self.engines.read.connect() as conn:
            best = conn.execute(
                select(jobs.c.model_id, jobs.c.batch_key, jobs.c.rank)
                .where(jobs.c.status == QUEUED, jobs.c.model_id.in_(list(servable)))
                .order_by(jobs.c.rank)
                .limit(1)
            ).first()
            if best is None:
                return None
            if held_models and best.model_id not in held_models:
                warm = conn.execute(
                    select(jobs.c.model_id, jobs.c.batch_key, jobs.c.rank)
                    .where(jobs.c.status == QUEUED, jobs.c.model_id.in_(list(held_models)))
                    .order_by(jobs.c.rank)
                    .limit(1)
                ).first()
                if warm is not None and warm.rank <= best.rank + affinity_s:
                    return warm.model_id, warm.batch_key
        return best.model_id, best.batch_key

    def claim(self, worker_id: str, model_id: str, batch_key: str, limit: int) -> list[Job]:
        """Atomically move up to ``limit`` queued jobs of one batch key to running, leased to us."""
        now = time.time()
        picked = (
            select(jobs.c.id)
            .where(jobs.c.status == QUEUED, jobs.c.model_id == model_id, jobs.c.batch_key == batch_key)
            .order_by(jobs.c.rank)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        if self.engines.dialect == "postgresql":
            # PostgreSQL may run an IN (… LIMIT n FOR UPDATE) subquery more than once and so
            # take more than n rows; a materialized CTE is evaluated exactly once.
            chosen = picked.cte("picked").prefix_with("MATERIALIZED")
            target = jobs.c.id.in_(select(chosen.c.id))
        else:
            # SQLite: the UPDATE holds the write lock, so the subquery cannot race.
            target = jobs.c.id.in_(picked.scalar_subquery())
        stmt = move(
            RUNNING,
            target,
            lease_owner=worker_id,
            lease_expires_at=now + self.lease_s,
            attempts=jobs.c.attempts + 1,
            started_at=now,
            updated_at=now,
            cancel_requested=False,
            progress={"stage": "starting", "step": 0, "total": 0, "percent": 0.0},
        ).returning(*jobs.c)
        with self.engines.write.begin() as conn:
            expire_unstarted(conn, now)  # a job past its start deadline is never started
            claimed = [Job.from_row(r) for r in conn.execute(stmt)]
            for job in claimed:
                _log(conn, job.id, "info", "worker", f"claimed by {worker_id} (attempt {job.attempts})", now)
            outbox.on_jobs(conn, [j.id for j in claimed], outbox.STARTED)
            notify(conn, [j.id for j in claimed])
        claimed.sort(key=lambda j: j.rank)
        return claimed

    def hand_over(self, from_owner: str, to_owner: str, job_ids: Iterable[str]) -> list[Job]:
        """Move the leases of running jobs from one owner to another (a Ray dispatcher claims,
        the replica that runs the job takes it over). Returns the jobs that moved; a job whose
        lease ``from_owner`` lost meanwhile (it expired, ran elsewhere, was finished) stays put."""
        ids = list(job_ids)
        if not ids:
            return []
        now = time.time()
        stmt = (
            update(jobs)
            .where(jobs.c.id.in_(ids), jobs.c.lease_owner == from_owner, jobs.c.status == RUNNING)
            .values(lease_owner=to_owner, lease_expires_at=now + self.lease_s, updated_at=now)
            .returning(*jobs.c)
        )
        with self.engines.write.begin() as conn:
            moved = [Job.from_row(r) for r in conn.execute(stmt)]
            for job in moved:
                _log(conn, job.id, "info", "worker", f"running on {to_owner}", now)
            notify(conn, [j.id for j in moved])
        moved.sort(key=lambda j: j.rank)
        return moved

    # -- while running ---------------------------------------------------------------------

    def renew(self, worker_id: str, job_ids: Iterable[str]) -> set[str]:
        """Extend the leases we hold; return the ids we no longer hold."""
        ids = list(job_ids)
        if not ids:
            return set()
        now = time.time()
        with self.engines.write.begin() as conn:
            rows = conn.execute(
                update(jobs)
                .where(jobs.c.id.in_(ids), jobs.c.lease_owner == worker_id, jobs.c.status == RUNNING)
                .values(lease_expires_at=now + self.lease_s, updated_at=now)
                .returning(jobs.c.id)
            )
            held = {r.id for r in rows}
        return set(ids) - held

    def progress(self, worker_id: str, job_id: str, progress: dict[str, Any]) -> Lease:
        """Record progress (which also renews the lease) and read the cancel flag."""
        return self.progress_many(worker_id, [job_id], progress)[job_id]

    def progress_many(
        self,
        worker_id: str,
        job_ids: Sequence[str],
        progress: dict[str, Any],
        *,
        own: dict[str, dict[str, Any]] | None = None,
    ) -> dict[str, Lease]:
        """Record one batch's progress for all its jobs in one transaction (one fsync), renewing
        their leases; returns, per job, whether we still hold it and whether it was canceled.
        ``own``: jobs whose progress differs from the batch's (their own step preview), written
        in the same transaction."""
        now = time.time()
        own = {j: p for j, p in (own or {}).items() if j in job_ids}
        shared = [j for j in job_ids if j not in own]
        groups = [(shared, progress)] if shared else []
        groups += [([job_id], mine) for job_id, mine in own.items()]
        with self.engines.write.begin() as conn:
            rows = [
                row
                for ids, values in groups
                for row in conn.execute(
                    update(jobs)
                    .where(jobs.c.id.in_(list(ids)), jobs.c.lease_owner == worker_id, jobs.c.status == RUNNING)
                    .values(progress=values, lease_expires_at=now + self.lease_s, updated_at=now)
                    .returning(jobs.c.id, jobs.c.cancel_requested)
                ).all()
            ]
            for row in rows:
                outbox.on_progress(conn, row.id)
            notify(conn, [row.id for row in rows])
        held = {row.id: bool(row.cancel_requested) for row in rows}
        return {job_id: Lease(held=job_id in held, cancel_requested=held.get(job_id, False)) for job_id in job_ids}

    def log(self, job_id: str, level: str, source: str, message: str) -> None:
        with self.engines.write.begin() as conn:
            _log(conn, job_id, level, source, message, time.time())

    # -- finishing -------------------------------------------------------------------------

    def complete(
        self, worker_id: str, job_id: str, result: dict[str, Any], *, also: Callable[[Connection], None] | None = None
    ) -> bool:
        """Succeed the job if we still hold it. ``also`` runs in the same transaction, only
        when the job was ours to complete (e.g. the cache recording the hit that answered it)."""
        now = time.time()
        return self._finish(
            worker_id,
            job_id,
            "succeeded",
            SUCCEEDED,
            also=also,
            values={
                "result": result,
                "finished_at": now,
                "updated_at": now,
                "lease_expires_at": None,
                "progress": {"stage": "completed", "step": 1, "total": 1, "percent": 100.0},
            },
        )

    def finish_canceled(self, worker_id: str, job_id: str, message: str = "canceled while running") -> bool:
        now = time.time()
        return self._finish(
            worker_id,
            job_id,
            message,
            CANCELED,
            {
                "error": message,
                "error_type": "canceled",
                "finished_at": now,
                "updated_at": now,
                "lease_expires_at": None,
            },
        )

    def fail(self, worker_id: str, job_id: str, error_type: str, message: str, *, retry: bool) -> str | None:
        """Fail a job, or put it back in the queue when ``retry`` and it has attempts left.

        Returns the job's new status, or None if we no longer held it.
        """
        now = time.time()
        with self.engines.write.begin() as conn:
            row = conn.execute(
                select(jobs.c.attempts, jobs.c.max_attempts).where(
                    jobs.c.id == job_id, jobs.c.lease_owner == worker_id, jobs.c.status == RUNNING
                )
            ).first()
            if row is None:
                return None
            requeue = retry and row.attempts < row.max_attempts
            values: dict[str, Any] = {"lease_owner": None, "lease_expires_at": None, "updated_at": now}
            if requeue:
                values.update(progress={"stage": "queued", "step": 0, "total": 0, "percent": 0.0})
            else:
                values.update(error=message, error_type=error_type, finished_at=now)
            conn.execute(move(QUEUED if requeue else FAILED, jobs.c.id == job_id, **values))
            note = "will retry" if requeue else "failed"
            _log(conn, job_id, "error", "worker", f"{error_type}: {message} ({note})", now)
            if not requeue:
                ended(conn, [job_id])
            notify(conn, [job_id])
        return QUEUED if requeue else FAILED

    def _finish(
        self,
        worker_id: str,
        job_id: str,
        note: str,
        status: str,
        values: dict[str, Any],
        also: Callable[[Connection], None] | None = None,
    ) -> bool:
        with self.engines.write.begin() as conn:
            done = conn.execute(
                move(status, jobs.c.id == job_id, jobs.c.lease_owner == worker_id, jobs.c.status == RUNNING, **values)
            ).rowcount
            if done:
                if also is not None:
                    also(conn)
                _log(conn, job_id, "info", "worker", note, time.time())
                ended(conn, [job_id])
                notify(conn, [job_id])
        return bool(done)

    # -- recovery --------------------------------------------------------------------------

    def reap(self) -> list[str]:
        """Return jobs whose lease expired to the queue (or fail them when out of attempts).

        Runs in every worker and in the API; concurrent reapers are harmless because each
        update is conditional on the lease still being expired.
        """
        now = time.time()
        touched: list[str] = []
        expired = (jobs.c.status == RUNNING) & (jobs.c.lease_expires_at < now)
        with self.engines.write.begin() as conn:
            canceled = (
                conn.execute(
                    move(
                        CANCELED,
                        expired,
                        jobs.c.cancel_requested.is_(True),
                        error="canceled; its worker stopped",
                        error_type="canceled",
                        finished_at=now,
                        updated_at=now,
                        lease_owner=None,
                        lease_expires_at=None,
                    ).returning(jobs.c.id)
                )
                .scalars()
                .all()
            )
            lost = (
                conn.execute(
                    move(
                        FAILED,
                        expired,
                        jobs.c.attempts >= jobs.c.max_attempts,
                        error_type="worker_lost",
                        finished_at=now,
                        updated_at=now,
                        error="the worker running this job stopped responding, and the job is out of attempts",
                        lease_owner=None,
                        lease_expires_at=None,
                    ).returning(jobs.c.id)
                )
                .scalars()
                .all()
            )
            requeued = (
                conn.execute(
                    move(
                        QUEUED,
                        expired,
                        lease_owner=None,
                        lease_expires_at=None,
                        updated_at=now,
                        progress={"stage": "queued", "step": 0, "total": 0, "percent": 0.0},
                    ).returning(jobs.c.id)
                )
                .scalars()
                .all()
            )
            for job_id in canceled:
                _log(conn, job_id, "warning", "reaper", "worker lost; job was being canceled", now)
            for job_id in lost:
                _log(conn, job_id, "error", "reaper", "worker lost; out of attempts", now)
            for job_id in requeued:
                _log(conn, job_id, "warning", "reaper", "worker lost; job returned to the queue", now)
            touched = [*canceled, *lost, *requeued]
            ended(conn, [*canceled, *lost])
            notify(conn, touched)
        return touched


def _log(conn: Connection, job_id: str, level: str, source: str, message: str, ts: float) -> None:
    conn.execute(insert(job_events).values(job_id=job_id, ts=ts, level=level, source=source, message=message))
