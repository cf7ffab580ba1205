"""Start deadlines: a job not started within ``start_deadline_s`` fails as ``start_timeout``.

Enforced in two places that share this function: at claim time (inside the claim's
transaction, so a worker never starts a job past its deadline) and by the API's housekeeping
loop (so a job nobody claims still fails on time, and its client and webhook hear of it).
"""

from __future__ import annotations

import time

from sqlalchemy import Connection, insert, select

from limner import progress
from limner.store.ends import ended
from limner.store.engine import Engines
from limner.store.notify import notify
from limner.store.schema import job_events, jobs
from limner.store.states import FAILED, QUEUED, move

ERROR_TYPE = "start_timeout"


def expire_unstarted(conn: Connection, now: float | None = None) -> list[str]:
    """Fail the queued jobs whose start deadline passed; returns their ids."""
    now = time.time() if now is None else now
    expired = list(
        conn.execute(
            move(
                FAILED,
                jobs.c.status == QUEUED,
                jobs.c.start_deadline_at < now,
                error_type=ERROR_TYPE,
                error="the job was not started before its start deadline (start_deadline_s)",
                finished_at=now,
                updated_at=now,
                progress=progress.make(progress.QUEUED),
            ).returning(jobs.c.id)
        ).scalars()
    )
    if expired:
        conn.execute(
            insert(job_events),
            [
                {"job_id": j, "ts": now, "level": "error", "source": "api", "message": "start deadline passed"}
                for j in expired
            ],
        )
        ended(conn, expired)
        notify(conn, expired)
    return expired


def expire_due(engines: Engines) -> list[str]:
    """Housekeeping's entry: a cheap read first, a write transaction only when there is work."""
    now = time.time()
    with engines.read.connect() as conn:
        due = conn.execute(
            select(jobs.c.id).where(jobs.c.status == QUEUED, jobs.c.start_deadline_at < now).limit(1)
        ).first()
    if due is None:
        return []
    with engines.write.begin() as conn:
        return expire_unstarted(conn, now)
