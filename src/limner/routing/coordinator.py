"""Running route jobs: in any process, after any crash, one decision per change.

A route job is a parent job whose attempts are child jobs of its targets, tried one at a
time. It is advanced like a workflow (limner.workflows.coordinator): an attempt's end marks
the route job ``advance_due`` in the transaction that ended the attempt (limner.store.ends),
and a coordinator in any API process or worker takes it, in one write transaction holding the
route job's row, and decides:

- the last attempt succeeded: the route job completes with its result plus ``routing``
  (``served_by``, ``attempts``, ``coerced``, ``skipped``) and the target's failure count resets;
- it failed with an error the route retries on (``retry_on``): the failure counts toward the
  target's cooldown (limner.routing.health), and the next target is chosen;
- it failed otherwise (bad input, a model error): the route job fails with that error; no
  fallback;
- nothing is left to try: the route job fails, saying what was tried and skipped.

Attempts are jobs and notes (skips, coercions) are rows, so nothing lives in memory between
two advances.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from sqlalchemy import Connection, insert, select, update
from sqlalchemy.exc import DBAPIError

from limner import progress
from limner.catalog.loader import Catalog
from limner.errors import LimnerError
from limner.intake.build import JobOptions, build_job
from limner.progress import Stage
from limner.routing.choose import choose
from limner.routing.health import TargetHealth
from limner.routing.signals import read_signals
from limner.routing.spec import ROUTE_KEY_PREFIX, RouteEntry
from limner.routing.submit import budget_of
from limner.storage import Storage
from limner.store.engine import Engines
from limner.store.jobs import JobStore
from limner.store.notify import notify
from limner.store.parents import complete_parent, fail_parent, log_event
from limner.store.records import Job
from limner.store.schema import jobs, route_notes
from limner.store.states import CANCELED, FAILED, QUEUED, RUNNING, SUCCEEDED, move
from limner.tenancy import member_of

log = logging.getLogger("limner.routing")


def is_route_job(batch_key: str) -> bool:
    return batch_key.startswith(ROUTE_KEY_PREFIX)


class RouteCoordinator:
    def __init__(self, engines: Engines, catalog: Catalog, storage: Storage, jobs_store: JobStore, base: str) -> None:
        self.engines = engines
        self.catalog = catalog
        self.storage = storage
        self.jobs = jobs_store
        self.base = base
        self.health = TargetHealth(engines)

    def run_once(self, limit: int = 32) -> int:
        if not self.catalog.routes():
            return 0
        with self.engines.read.connect() as conn:
            ids = list(
                conn.execute(
                    select(jobs.c.id)
                    .where(
                        jobs.c.advance_due,
                        jobs.c.status.in_((QUEUED, RUNNING)),
                        jobs.c.batch_key.startswith(ROUTE_KEY_PREFIX),
                    )
                    .order_by(jobs.c.rank)
                    .limit(limit)
                ).scalars()
            )
        done = 0
        for job_id in ids:
            try:
                done += self.advance(job_id)
            except LimnerError as exc:
                log.warning("route job %s: %s", job_id, exc.message)
        return done

    def advance_soon(self, job_id: str) -> None:
        """Advance a route job just submitted; a failure here is left to the sweep."""
        try:
            self.advance(job_id)
        except (LimnerError, DBAPIError) as exc:
            log.warning("route job %s: the sweep will start it (%s)", job_id, exc)

    def advance(self, job_id: str) -> int:
        with self.engines.write.begin() as conn:
            query = select(jobs).where(
                jobs.c.id == job_id, jobs.c.advance_due.is_(True), jobs.c.batch_key.startswith(ROUTE_KEY_PREFIX)
            )
            if self.engines.dialect == "postgresql":
                query = query.with_for_update(skip_locked=True)
            row = conn.execute(query).first()
            if row is None:
                return 0
            job = Job.from_row(row)
            conn.execute(update(jobs).where(jobs.c.id == job_id).values(advance_due=False))
            if job.terminal:
                return 0
            route = self.catalog.route(job.model_id)
            if route is None:
                self._fail(conn, job, "model_unavailable", f"route {job.model_id} is no longer in the catalog")
                return 1
            children = [
                Job.from_row(r)
                for r in conn.execute(select(jobs).where(jobs.c.parent_id == job.id).order_by(jobs.c.created_at))
            ]
            if any(not c.terminal for c in children):
                return 0  # an attempt is still going; its end brings us back
            last = children[-1] if children else None
            if last is not None and last.status == SUCCEEDED:
                self.health.succeeded(conn, last.model_id)
                self._complete(conn, job, route, children, last)
                return 1
            if last is not None and last.status == CANCELED:
                self._fail(conn, job, "canceled", f"attempt {last.id} on {last.model_id} was canceled")
                return 1
            if last is not None and last.status == FAILED:
                error_type = last.error_type or "internal_error"
                if error_type not in route.retry_on:
                    said = last.error or error_type
                    self._fail(
                        conn, job, error_type, said if said.startswith(last.model_id) else f"{last.model_id}: {said}"
                    )
                    return 1
                self.health.failed(conn, last.model_id, error_type, route.cooldown.failures, route.cooldown.seconds)
            self._next(conn, job, route, children)
        return 1

    # -- the next attempt ------------------------------------------------------------------------

    def _next(self, conn: Connection, job: Job, route: RouteEntry, children: list[Job]) -> None:
        entries = {t.model: self.catalog.get(t.model) for t in route.targets}
        signals = read_signals(conn, list(entries.values()), self.health)
        now = time.time()
        tried = {c.model_id for c in children}
        decision = choose(route, entries, job.input, job.priority, tried, signals, budget_of(job.batch_key, route), now)
        noted = {(n["kind"], n["target"]) for n in _notes(conn, job.id)}
        for skip in decision.skipped:
            if skip["target"] not in tried and ("skipped", skip["target"]) not in noted:
                _note(conn, job.id, "skipped", skip["target"], {"why": skip["why"]})
        if decision.entry is None:
            last = children[-1] if children else None
            error_type = (last.error_type if last else None) or "model_unavailable"
            tried_text = ", ".join(f"{c.model_id} ({c.error_type})" for c in children) or "none"
            skipped = "; ".join(f"{s['target']}: {s['why']}" for s in decision.skipped if s["target"] not in tried)
            message = (
                f"no target of route {route.id} could serve it (tried: {tried_text}; skipped: {skipped or 'none'})"
            )
            self._fail(conn, job, error_type, message)
            return
        entry = decision.entry
        for change in decision.coerced:
            _note(conn, job.id, "coerced", entry.id, change)
        options = JobOptions(
            caller=member_of(job.project, job.api_key_id),
            priority=job.priority,
            result_ttl_s=job.result_ttl_s,
            max_attempts=1,  # the route decides what comes after a failure
            parent_id=job.id,
            step_key=entry.id,
            step_attempt=len(children),
        )
        try:
            child = build_job(entry, decision.body, options, self.storage, self.base)
        except LimnerError as exc:
            self._fail(conn, job, exc.error_type, f"{entry.id}: {exc.message}")
            return
        self.jobs.write_new(conn, [child])
        note = f" after {len(children)} attempt(s)" if children else ""
        if decision.over_budget_s is not None:
            first = f"{decision.over_budget_s:.2f} s"
            note += f"; every target is over the latency budget, this one is expected first ({first})"
        _log(conn, job.id, "info", f"attempt {len(children) + 1} on {entry.id}{note} (request {child.id})")
        now = time.time()
        if job.status == QUEUED:
            conn.execute(move(RUNNING, jobs.c.id == job.id, started_at=now, updated_at=now))
        body = progress.make(Stage.STARTING, 0, 0)
        body["target"] = entry.id
        conn.execute(update(jobs).where(jobs.c.id == job.id).values(progress=body, updated_at=now))
        notify(conn, [job.id])

    # -- ends --------------------------------------------------------------------------------------

    def _complete(self, conn: Connection, job: Job, route: RouteEntry, children: list[Job], last: Job) -> None:
        now = time.time()
        result: dict[str, Any] = dict(last.result or {})
        served = result.get("usage") or {}
        result["usage"] = {  # the attempt's own job carries its cost (and /v1/usage counts it there)
            "compute_s": 0.0,
            "cost_usd": 0.0,
            "attempts_compute_s": float(served.get("compute_s") or 0.0),
            "attempts_cost_usd": float(served.get("cost_usd") or 0.0),
        }
        result["routing"] = routing_record(conn, route, job, children)
        started = job.started_at or job.created_at
        timings = dict(result.get("timings") or {})
        timings.update({"queue_s": round(started - job.created_at, 4), "total_s": round(now - job.created_at, 4)})
        result["timings"] = timings
        complete_parent(conn, job.id, result, "route", f"served by {last.model_id} after {len(children)} attempt(s)")

    def _fail(self, conn: Connection, job: Job, error_type: str, message: str) -> None:
        fail_parent(conn, job.id, error_type, message, "route")


def routing_record(conn: Connection, route: RouteEntry, job: Job, children: list[Job]) -> dict[str, Any]:
    """``routing`` of a route job's result: who served it, each attempt, each change, each skip."""
    notes = _notes(conn, job.id)
    attempts = []
    for child in children:
        latency = (child.finished_at or 0.0) - (child.started_at or child.created_at) if child.finished_at else None
        attempts.append(
            {
                "target": child.model_id,
                "request_id": child.id,
                "status": child.status,
                "error_type": child.error_type,
                "latency_s": None if latency is None else round(latency, 4),
            }
        )
    served = children[-1].model_id if children and children[-1].status == SUCCEEDED else None
    return {
        "route": route.id,
        "strategy": route.strategy,
        "served_by": served,
        "attempts": attempts,
        "coerced": [n["detail"] for n in notes if n["kind"] == "coerced"],
        "skipped": [{"target": n["target"], "why": n["detail"].get("why")} for n in notes if n["kind"] == "skipped"],
    }


def _notes(conn: Connection, job_id: str) -> list[dict[str, Any]]:
    rows = conn.execute(
        select(route_notes.c.kind, route_notes.c.target, route_notes.c.detail)
        .where(route_notes.c.job_id == job_id)
        .order_by(route_notes.c.id)
    )
    return [{"kind": r.kind, "target": r.target, "detail": r.detail} for r in rows]


def _note(conn: Connection, job_id: str, kind: str, target: str | None, detail: dict[str, Any]) -> None:
    conn.execute(insert(route_notes).values(job_id=job_id, ts=time.time(), kind=kind, target=target, detail=detail))


def _log(conn: Connection, job_id: str, level: str, message: str) -> None:
    log_event(conn, job_id, "route", level, message)
