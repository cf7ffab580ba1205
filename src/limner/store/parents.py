"""Ending a parent job: a workflow's or a route's job, whose work is done by child jobs.

Both coordinators end their jobs the same way, in the transaction that decided it: the status
moved (only from a state that allows it, so two coordinators racing end it once), the job's
log line, the children stopped on failure, and what follows every end (``ended``: webhook,
workflow and batch nudges; ``notify``: the watchers). ``source`` names the coordinator in the
job's log (``workflow``, ``route``).
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import Connection, insert

from limner import progress
from limner.progress import Stage
from limner.store.cancel import stop_children
from limner.store.ends import ended
from limner.store.notify import notify
from limner.store.schema import job_events, jobs
from limner.store.states import FAILED, SUCCEEDED, move


def log_event(conn: Connection, job_id: str, source: str, level: str, message: str) -> None:
    conn.execute(insert(job_events).values(job_id=job_id, ts=time.time(), level=level, source=source, message=message))


def complete_parent(conn: Connection, job_id: str, result: dict[str, Any], source: str, message: str) -> bool:
    """The parent succeeded with ``result``; False when it had ended already."""
    now = time.time()
    moved = conn.execute(
        move(
            SUCCEEDED,
            jobs.c.id == job_id,
            result=result,
            finished_at=now,
            updated_at=now,
            progress=progress.make(Stage.COMPLETED, 1, 1),
        )
    ).rowcount
    if moved:
        log_event(conn, job_id, source, "info", message)
        ended(conn, [job_id])
        notify(conn, [job_id])
    return bool(moved)


def fail_parent(conn: Connection, job_id: str, error_type: str, message: str, source: str) -> bool:
    """The parent failed; its unfinished children are stopped. False when it had ended already."""
    now = time.time()
    moved = conn.execute(
        move(FAILED, jobs.c.id == job_id, error=message, error_type=error_type, finished_at=now, updated_at=now)
    ).rowcount
    if moved:
        log_event(conn, job_id, source, "error", f"{error_type}: {message}")
        stop_children(conn, job_id, f"its {source} failed")
        ended(conn, [job_id])
        notify(conn, [job_id])
    return bool(moved)
