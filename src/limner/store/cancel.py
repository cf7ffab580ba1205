"""Canceling jobs, inside the caller's transaction, the same way for every path (a request's
cancel, a workflow that failed or was canceled, a cancelled batch).

Queued jobs are canceled at once and never run. A running job of a model is asked to stop
(``cancel_requested``): its worker stops at the next step and finishes it as canceled. A
workflow's own job is held by no worker, so it is canceled at once, and its steps with it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from sqlalchemy import Connection, select, update

from limner import progress
from limner.store.ends import ended
from limner.store.notify import notify
from limner.store.schema import jobs
from limner.store.states import CANCELED, QUEUED, RUNNING, move
from limner.tasks import WORKFLOW_TASK

# The batch key of a route's own job (limner.routing.spec.ROUTE_KEY_PREFIX; not imported from
# there, which would import the catalog into the store).
ROUTE_KEY_PREFIX = "route:"


def cancel_jobs(conn: Connection, job_ids: Sequence[str], why: str) -> tuple[list[str], list[str]]:
    """Cancel these jobs; returns (canceled now, asked to stop). Finished ones are left alone."""
    if not job_ids:
        return [], []
    rows = conn.execute(
        select(jobs.c.id, jobs.c.status, jobs.c.task, jobs.c.batch_key).where(
            jobs.c.id.in_(list(job_ids)), jobs.c.status.in_((QUEUED, RUNNING))
        )
    ).all()
    now = time.time()
    # A workflow's or a route's own job is held by no worker: canceled at once, its children after.
    parents = {r.id for r in rows if r.task == WORKFLOW_TASK or r.batch_key.startswith(ROUTE_KEY_PREFIX)}
    at_once = [r.id for r in rows if r.status == QUEUED or r.id in parents]
    gone = list(
        conn.execute(
            move(
                CANCELED,
                jobs.c.id.in_(at_once),
                error=why,
                error_type="canceled",
                finished_at=now,
                updated_at=now,
                progress=progress.make(progress.CANCELED),
            ).returning(jobs.c.id, jobs.c.task)
        ).all()
    )
    for job_id, task in gone:
        if job_id in parents:
            stop_children(conn, job_id, f"its {'workflow' if task == WORKFLOW_TASK else 'route'} was canceled")
    ended(conn, [job_id for job_id, _ in gone])
    running = [r.id for r in rows if r.status == RUNNING and r.id not in parents]
    if running:
        conn.execute(
            update(jobs)
            .where(jobs.c.id.in_(running), jobs.c.status == RUNNING)
            .values(cancel_requested=True, updated_at=now)
        )
    notify(conn, [r.id for r in rows])
    return [job_id for job_id, _ in gone], running


def stop_children(conn: Connection, parent_id: str, why: str) -> int:
    """Cancel a workflow job's steps still going; how many were stopped or asked to stop."""
    children = conn.execute(
        select(jobs.c.id).where(jobs.c.parent_id == parent_id, jobs.c.status.in_((QUEUED, RUNNING)))
    ).scalars()
    now_gone, stopping = cancel_jobs(conn, list(children), f"canceled: {why}")
    return len(now_gone) + len(stopping)
