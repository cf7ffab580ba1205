"""Usage records: one row per finished job, derived from the jobs table, and what reads them
(GET /v1/usage, quotas, estimates, /metrics).

Rows are derived rather than written by whoever finishes a job (a worker, the reaper, a
cancel, a cache hit): one writer that reads terminal jobs catches every path, needs no
change to them, and catches up after a restart. The API runs it every few seconds and
before answering usage or metrics. On PostgreSQL it holds an advisory lock so that rows are
committed in ``seq`` order, which /metrics relies on to fold in new rows exactly once.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from sqlalchemy import Connection, and_, case, func, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.sql.elements import ColumnElement

from limner.store.engine import Engines
from limner.store.schema import job_usage, jobs
from limner.store.states import SUCCEEDED

# Re-examine jobs finished this long before the newest recorded one: worker clocks differ.
CLOCK_MARGIN_S = 300.0
GROUPS = {
    "model": job_usage.c.model_id,
    "key": job_usage.c.api_key_id,
    "day": job_usage.c.day,
    "project": job_usage.c.project,
}
# A job's device price when it recorded none (failed before a result): model id -> USD/hour.
PriceOf = Callable[[str], float]


def utc_day(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d")


def usage_row(job: Any, price_of: PriceOf) -> dict[str, Any]:
    result = job["result"] if isinstance(job["result"], dict) else {}
    usage = result.get("usage") or {}
    cache = result.get("cache") or {}
    spec = job["input"] or {}
    started, finished, created = job["started_at"], job["finished_at"], job["created_at"]
    run_s = finished - started if started is not None else None
    if usage:
        compute, cost = float(usage.get("compute_s") or 0.0), float(usage.get("cost_usd") or 0.0)
    else:  # a failed or canceled run still held the device while it ran
        compute = max(run_s or 0.0, 0.0) if job["status"] != SUCCEEDED else 0.0
        cost = compute * price_of(job["model_id"]) / 3600
    width, height = spec.get("width"), spec.get("height")
    return {
        "job_id": job["id"],
        "model_id": job["model_id"],
        "task": job["task"],
        "api_key_id": job.get("api_key_id"),
        "status": job["status"],
        "error_type": job["error_type"],
        "priority": job["priority"],
        "day": utc_day(finished),
        "created_at": created,
        "finished_at": finished,
        "queue_s": started - created if started is not None else None,
        "run_s": run_s,
        "total_s": finished - created,
        "outputs": int(usage.get("outputs") or 0),
        "compute_s": compute,
        "cost_usd": cost,
        "cache_hit": cache.get("hit"),
        "saved_s": float(usage.get("saved_compute_s") or 0.0),
        "saved_usd": float(usage.get("saved_usd") or 0.0),
        "pixels": width * height if isinstance(width, int) and isinstance(height, int) else None,
        "steps": spec.get("num_inference_steps") if isinstance(spec.get("num_inference_steps"), int) else None,
        "device": usage.get("device"),
        "project": job.get("project") or "default",
    }


class UsageStore:
    def __init__(self, engines: Engines, price_of: PriceOf) -> None:
        self.engines = engines
        self.price_of = price_of

    # -- recording -------------------------------------------------------------------------

    def record_new(self, limit: int = 2000) -> int:
        """Write usage rows for finished jobs that have none yet; returns how many."""
        written = 0
        while True:
            if not self._pending():
                return written
            with self.engines.write.begin() as conn:
                if self.engines.dialect == "postgresql":
                    conn.execute(text("SELECT pg_advisory_xact_lock(786002)"))
                rows = conn.execute(self._missing(conn).limit(limit)).all()
                if rows:
                    self._insert(conn, [usage_row(r._mapping, self.price_of) for r in rows])
            written += len(rows)
            if len(rows) < limit:
                return written

    def _pending(self) -> bool:
        """Whether any finished job lacks a usage row (read-only: no write lock when idle)."""
        with self.engines.read.connect() as conn:
            return conn.execute(self._missing(conn).limit(1)).first() is not None

    @staticmethod
    def _missing(conn: Connection) -> Any:
        newest = conn.execute(select(func.max(job_usage.c.finished_at))).scalar()
        since = (newest or 0.0) - CLOCK_MARGIN_S
        return (
            select(jobs)
            .outerjoin(job_usage, job_usage.c.job_id == jobs.c.id)
            .where(jobs.c.finished_at.is_not(None), jobs.c.finished_at >= since, job_usage.c.job_id.is_(None))
            .order_by(jobs.c.finished_at)
        )

    def _insert(self, conn: Connection, rows: list[dict[str, Any]]) -> None:
        maker = pg_insert if self.engines.dialect == "postgresql" else sqlite_insert
        conn.execute(maker(job_usage).on_conflict_do_nothing(index_elements=["job_id"]), rows)

    # -- reading ---------------------------------------------------------------------------

    def aggregate(
        self,
        group_by: Sequence[str],
        *,
        since: float | None = None,
        until: float | None = None,
        model_id: str | None = None,
        api_key_id: str | None = None,
        project: str | None = None,
    ) -> list[dict[str, Any]]:
        """Totals per group; ``project`` limits them to one project's jobs (a member's view)."""
        columns = [GROUPS[g] for g in group_by]
        conditions: list[ColumnElement[bool]] = []
        if since is not None:
            conditions.append(job_usage.c.finished_at >= since)
        if until is not None:
            conditions.append(job_usage.c.finished_at < until)
        if model_id:
            conditions.append(job_usage.c.model_id == model_id)
        if api_key_id:
            conditions.append(job_usage.c.api_key_id == api_key_id)
        if project is not None:
            conditions.append(job_usage.c.project == project)
        counted = {
            status: func.sum(case((job_usage.c.status == status, 1), else_=0))
            for status in ("succeeded", "failed", "canceled")
        }
        query = select(
            *columns,
            func.count().label("jobs"),
            *(v.label(k) for k, v in counted.items()),
            func.coalesce(func.sum(job_usage.c.outputs), 0).label("outputs"),
            func.coalesce(func.sum(job_usage.c.compute_s), 0.0).label("compute_s"),
            func.coalesce(func.sum(job_usage.c.cost_usd), 0.0).label("cost_usd"),
            func.sum(case((job_usage.c.cache_hit.is_not(None), 1), else_=0)).label("cache_hits"),
            func.coalesce(func.sum(job_usage.c.saved_s), 0.0).label("saved_compute_s"),
            func.coalesce(func.sum(job_usage.c.saved_usd), 0.0).label("saved_usd"),
        )
        if conditions:
            query = query.where(and_(*conditions))
        if columns:
            query = query.group_by(*columns).order_by(*columns)
        names = {"model": "model_id", "key": "api_key_id", "day": "day", "project": "project"}
        with self.engines.read.connect() as conn:
            out = []
            for row in conn.execute(query):
                m = row._mapping
                item: dict[str, Any] = {names[g]: m[GROUPS[g].name] for g in group_by}
                for name in ("jobs", "succeeded", "failed", "canceled", "outputs", "cache_hits"):
                    item[name] = int(m[name] or 0)
                for name in ("compute_s", "saved_compute_s"):
                    item[name] = round(float(m[name] or 0.0), 4)
                for name in ("cost_usd", "saved_usd"):
                    item[name] = round(float(m[name] or 0.0), 6)
                out.append(item)
            return out

    def compute_on(self, api_key_id: str | None, day: str) -> float:
        key = job_usage.c.api_key_id.is_(None) if api_key_id is None else job_usage.c.api_key_id == api_key_id
        with self.engines.read.connect() as conn:
            value = conn.execute(
                select(func.coalesce(func.sum(job_usage.c.compute_s), 0.0)).where(key, job_usage.c.day == day)
            ).scalar()
        return float(value or 0.0)

    def recent_runs(self, model_id: str, limit: int = 200, project: str | None = None) -> list[dict[str, Any]]:
        """Recent successful runs of a model that ran on a device (no cache hits); with
        ``project``, that project's runs only."""
        only = [job_usage.c.project == project] if project is not None else []
        with self.engines.read.connect() as conn:
            rows = conn.execute(
                select(
                    job_usage.c.pixels,
                    job_usage.c.steps,
                    job_usage.c.outputs,
                    job_usage.c.compute_s,
                    job_usage.c.cost_usd,
                )
                .where(
                    job_usage.c.model_id == model_id,
                    job_usage.c.status == SUCCEEDED,
                    job_usage.c.cache_hit.is_(None),
                    job_usage.c.outputs > 0,
                    *only,
                )
                .order_by(job_usage.c.seq.desc())
                .limit(limit)
            )
            return [dict(r._mapping) for r in rows]

    def rows_after(self, seq: int, batch: int = 5000) -> Iterator[list[dict[str, Any]]]:
        """Usage rows with ``seq`` over the given one, in order, in batches (for /metrics)."""
        while True:
            with self.engines.read.connect() as conn:
                rows = [
                    dict(r._mapping)
                    for r in conn.execute(
                        select(job_usage).where(job_usage.c.seq > seq).order_by(job_usage.c.seq).limit(batch)
                    )
                ]
            if not rows:
                return
            yield rows
            seq = rows[-1]["seq"]
            if len(rows) < batch:
                return


def jobs_in_window(engines: Engines, api_key_id: str | None, window_s: float) -> tuple[int, float | None]:
    """(jobs this key submitted in the last ``window_s`` seconds, the oldest one's time)."""
    since = time.time() - window_s
    key = jobs.c.api_key_id.is_(None) if api_key_id is None else jobs.c.api_key_id == api_key_id
    with engines.read.connect() as conn:
        row = conn.execute(
            select(func.count(), func.min(jobs.c.created_at)).where(key, jobs.c.created_at > since)
        ).first()
    return (int(row[0]), row[1]) if row else (0, None)


def record_rows(engines: Engines, rows: list[dict[str, Any]]) -> None:
    """Usage rows made by whoever ran the work without a job row (the real-time lane's
    sessions: one row per session flush, not per frame), under the same lock as
    ``UsageStore.record_new`` so rows still commit in ``seq`` order on PostgreSQL."""
    if not rows:
        return
    maker = pg_insert if engines.dialect == "postgresql" else sqlite_insert
    with engines.write.begin() as conn:
        if engines.dialect == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(786002)"))
        conn.execute(maker(job_usage).on_conflict_do_nothing(index_elements=["job_id"]), rows)
