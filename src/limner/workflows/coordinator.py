"""Advancing workflows: in any process, after any crash, exactly once per change.

A step's end marks its workflow job ``advance_due`` in the transaction that ended the step
(limner.store.ends). A coordinator, running in every API process and every worker, takes due
workflow jobs one at a time, each in one write transaction that holds the workflow job's row
(``FOR UPDATE SKIP LOCKED`` on PostgreSQL; SQLite's write lock), reads its step jobs, asks the
planner what to do, and writes all of it: new step jobs, a failure (cancelling the steps still
going), or the result. Nothing lives in memory between two advances, so a process killed at any
point leaves either the old state or the new one, and the next coordinator carries on.

Step timeouts are checked here too: a step job past its ``deadline_at`` is failed (queued) or
asked to stop (running), and the workflow sees it as timed out.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, select, update

from limner import progress
from limner.catalog.loader import Catalog
from limner.errors import LimnerError
from limner.intake.build import JobOptions, build_job
from limner.progress import Stage
from limner.storage import Storage
from limner.store.ends import ended
from limner.store.engine import Engines
from limner.store.jobs import JobStore
from limner.store.loras import LoraStore
from limner.store.notify import notify
from limner.store.parents import complete_parent, fail_parent, log_event
from limner.store.records import Job
from limner.store.schema import jobs
from limner.store.states import CANCELED, FAILED, QUEUED, RUNNING, SUCCEEDED, move
from limner.tasks import WORKFLOW_TASK
from limner.tenancy import member_of
from limner.workflows.plan import Child, NewRun, Plan, plan
from limner.workflows.spec import WorkflowEntry

log = logging.getLogger("limner.workflows")


class WorkflowCoordinator:
    def __init__(self, engines: Engines, catalog: Catalog, storage: Storage, jobs_store: JobStore, base: str) -> None:
        self.engines = engines
        self.catalog = catalog
        self.storage = storage
        self.jobs = jobs_store
        self.base = base
        self.advanced = 0

    def run_once(self, limit: int = 32) -> int:
        """Expire overdue steps, then advance up to ``limit`` due workflows; how many advanced."""
        self.expire_steps()
        with self.engines.read.connect() as conn:
            due = conn.execute(
                select(jobs.c.id)
                .where(jobs.c.advance_due, jobs.c.status.in_((QUEUED, RUNNING)))  # the partial index's own term
                .where(jobs.c.task == WORKFLOW_TASK)  # route jobs are advance_due too (limner.routing)
                .order_by(jobs.c.rank)
                .limit(limit)
            ).scalars()
            ids = list(due)
        done = 0
        for job_id in ids:
            try:
                done += self.advance(job_id)
            except LimnerError as exc:  # a problem of this workflow only: it fails, the others go on
                log.warning("workflow %s: %s", job_id, exc.message)
        return done

    # -- one workflow ------------------------------------------------------------------------

    def advance(self, job_id: str) -> int:
        with self.engines.write.begin() as conn:
            query = select(jobs).where(jobs.c.id == job_id, jobs.c.advance_due.is_(True), jobs.c.task == WORKFLOW_TASK)
            if self.engines.dialect == "postgresql":
                query = query.with_for_update(skip_locked=True)
            row = conn.execute(query).first()
            if row is None:
                return 0  # another coordinator has it, or it is no longer due
            job = Job.from_row(row)
            conn.execute(update(jobs).where(jobs.c.id == job_id).values(advance_due=False))
            if job.terminal:
                return 0
            workflow = self.catalog.workflow(job.model_id)
            if workflow is None:
                self._fail(conn, job, "model_unavailable", f"workflow {job.model_id} is no longer in the catalog")
                return 1
            children = self._children(conn, job.id)
            decided = plan(workflow, job.input, [_child(c) for c in children])
            if decided.failed is not None:
                step, error_type, message = decided.failed
                self._fail(conn, job, error_type, f"step {step} failed: {message}", children)
                return 1
            if decided.output is not None:
                self._complete(conn, job, workflow, decided, children)
                return 1
            started = self._start(conn, job, workflow, decided.start)
            if started is not None:  # a run could not be built (its input does not fit its model)
                self._fail(conn, job, *started, children)
                return 1
            self._progress(conn, job, workflow, decided)
        self.advanced += 1
        return 1

    def _children(self, conn: Connection, parent_id: str) -> list[Job]:
        rows = conn.execute(select(jobs).where(jobs.c.parent_id == parent_id).order_by(jobs.c.created_at))
        return [Job.from_row(r) for r in rows]

    def _start(self, conn: Connection, job: Job, workflow: WorkflowEntry, runs: list[NewRun]) -> tuple[str, str] | None:
        caller = member_of(job.project, job.api_key_id)
        new = []
        for run in runs:
            entry = self.catalog.get(run.step.model)
            options = JobOptions(
                caller=caller,
                priority=job.priority,
                cache_mode="exact" if run.step.cache and job.cache_mode != "off" else "off",
                result_ttl_s=job.result_ttl_s,
                max_attempts=3,
                parent_id=job.id,
                step_key=run.key,
                step_attempt=run.attempt,
                deadline_s=run.step.timeout_s,
                batch_id=None,
            )
            try:
                new.append(build_job(entry, run.input, options, self.storage, self.base, loras=LoraStore(self.engines)))
            except LimnerError as exc:
                return exc.error_type, f"step {run.key} ({run.step.model}): {exc.message}"
        if new:
            self.jobs.write_new(conn, new)
            for child in new:
                note = f" (attempt {child.step_attempt + 1})" if child.step_attempt else ""
                _log(conn, job.id, "info", f"step {child.step_key} started as request {child.id}{note}")
        if job.status == QUEUED:
            conn.execute(move(RUNNING, jobs.c.id == job.id, started_at=time.time(), updated_at=time.time()))
        return None

    def _progress(self, conn: Connection, job: Job, workflow: WorkflowEntry, decided: Plan) -> None:
        done = sum(1 for state in decided.states.values() if state in ("done", "skipped"))
        body = progress.make(Stage.RUNNING_STEPS, done, len(workflow.steps))
        body["running"] = decided.running
        now = time.time()
        conn.execute(update(jobs).where(jobs.c.id == job.id).values(progress=body, updated_at=now))
        notify(conn, [job.id])

    def _complete(
        self, conn: Connection, job: Job, workflow: WorkflowEntry, decided: Plan, children: list[Job]
    ) -> None:
        now = time.time()
        steps = step_summaries(children)
        compute = sum(float(((c.result or {}).get("usage") or {}).get("compute_s") or 0.0) for c in children)
        cost = sum(float(((c.result or {}).get("usage") or {}).get("cost_usd") or 0.0) for c in children)
        started = job.started_at or job.created_at
        result: dict[str, Any] = {
            **(decided.output or {}),
            "steps": steps,
            "seed": job.input.get("seed"),
            "timings": {"queue_s": round(started - job.created_at, 4), "total_s": round(now - job.created_at, 4)},
            "model": {"id": workflow.id, "revision": workflow.revision},
            "input": job.input,
            # The steps' own jobs carry their compute and cost (and /v1/usage counts them there).
            "usage": {
                "compute_s": 0.0,
                "cost_usd": 0.0,
                "steps_compute_s": round(compute, 4),
                "steps_cost_usd": round(cost, 6),
            },
        }
        if steps and all(s["cached"] for s in steps if s["status"] == SUCCEEDED):
            result["cache"] = {"hit": "exact", "steps": len(steps), "saved_compute_s": 0.0}
        complete_parent(
            conn, job.id, result, "workflow", f"completed: {len(workflow.steps)} steps, {len(children)} step jobs"
        )

    def _fail(self, conn: Connection, job: Job, error_type: str, message: str, children: Sequence[Job] = ()) -> None:
        fail_parent(conn, job.id, error_type, message, "workflow")

    # -- step timeouts -----------------------------------------------------------------------

    def expire_steps(self) -> int:
        now = time.time()
        with self.engines.read.connect() as conn:
            overdue = conn.execute(
                select(jobs.c.id, jobs.c.status).where(
                    jobs.c.status.in_((QUEUED, RUNNING)), jobs.c.deadline_at < now, jobs.c.cancel_requested.is_(False)
                )
            ).all()
        if not overdue:
            return 0
        with self.engines.write.begin() as conn:
            queued = [r.id for r in overdue if r.status == QUEUED]
            failed = (
                conn.execute(
                    move(
                        FAILED,
                        jobs.c.id.in_(queued),
                        jobs.c.status == QUEUED,
                        error="the step did not finish within its timeout_s",
                        error_type="timeout",
                        finished_at=now,
                        updated_at=now,
                    ).returning(jobs.c.id)
                )
                .scalars()
                .all()
            )
            ended(conn, list(failed))
            running = [r.id for r in overdue if r.status == RUNNING]
            if running:
                conn.execute(
                    update(jobs)
                    .where(jobs.c.id.in_(running), jobs.c.status == RUNNING)
                    .values(cancel_requested=True, updated_at=now)
                )
                for job_id in running:
                    _log(conn, job_id, "warning", "past its step's timeout_s: stopping")
            notify(conn, [*failed, *running])
        return len(overdue)


def step_summaries(children: list[Job]) -> list[dict[str, Any]]:
    """``steps`` of a workflow's status and result: the latest attempt of each run, in order."""
    latest: dict[str, Job] = {}
    for child in sorted(children, key=lambda c: c.step_attempt or 0):
        latest[child.step_key or ""] = child
    out = []
    for key, child in sorted(latest.items(), key=lambda kv: kv[1].created_at):
        result = child.result or {}
        summary: dict[str, Any] = {
            "id": key,
            "model_id": child.model_id,
            "status": child.status,
            "request_id": child.id,
            "attempt": (child.step_attempt or 0) + 1,
            "cached": bool((result.get("cache") or {}).get("hit")),
            "compute_s": float((result.get("usage") or {}).get("compute_s") or 0.0),
        }
        if child.error_type:
            summary["error"] = child.error
            summary["error_type"] = child.error_type
        out.append(summary)
    return out


def _child(job: Job) -> Child:
    timed_out = (
        job.deadline_at is not None
        and job.status in (FAILED, CANCELED)
        and (job.error_type == "timeout" or (job.finished_at or 0) >= job.deadline_at)
    )
    return Child(
        id=job.id,
        step_key=job.step_key or "",
        attempt=job.step_attempt or 0,
        status=job.status,
        result=job.result,
        error=job.error,
        error_type=job.error_type,
        timed_out=timed_out,
    )


def _log(conn: Connection, job_id: str, level: str, message: str) -> None:
    log_event(conn, job_id, "workflow", level, message)
