"""A workflow job's step jobs: stopping the ones still going (the workflow was canceled or failed)."""

from __future__ import annotations

import time

from sqlalchemy import Connection, select, update

from limner.store.ends import ended
from limner.store.notify import notify
from limner.store.schema import jobs
from limner.store.states import CANCELED, QUEUED, RUNNING, move


def stop_children(conn: Connection, parent_id: str, why: str) -> int:
    """Cancel the step jobs still going: queued ones at once, running ones at their next step.
    Returns how many were stopped or asked to stop."""
    now = time.time()
    rows = conn.execute(
        select(jobs.c.id, jobs.c.status).where(jobs.c.parent_id == parent_id, jobs.c.status.in_((QUEUED, RUNNING)))
    ).all()
    queued = [r.id for r in rows if r.status == QUEUED]
    running = [r.id for r in rows if r.status == RUNNING]
    if queued:
        gone = (
            conn.execute(
                move(
                    CANCELED,
                    jobs.c.id.in_(queued),
                    jobs.c.status == QUEUED,
                    error=f"canceled: {why}",
                    error_type="canceled",
                    finished_at=now,
                    updated_at=now,
                ).returning(jobs.c.id)
            )
            .scalars()
            .all()
        )
        ended(conn, list(gone))
    if running:
        conn.execute(update(jobs).where(jobs.c.id.in_(running)).values(cancel_requested=True, updated_at=now))
    notify(conn, [*queued, *running])
    return len(rows)
