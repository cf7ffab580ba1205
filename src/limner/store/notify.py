"""Job-change notifications across processes and machines (PostgreSQL LISTEN/NOTIFY).

Every write that changes a job also sends ``NOTIFY limner_jobs, '<job id>'`` in the same
transaction, so an API replica streaming a job's status hears about it the moment a worker
on another machine commits, without polling. SQLite has no such thing; there the API's
watcher polls (everything runs on one machine anyway).
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Connection, text

CHANNEL = "limner_jobs"


def notify(conn: Connection, job_ids: Iterable[str]) -> None:
    if conn.dialect.name != "postgresql":
        return
    for job_id in job_ids:
        conn.execute(text("SELECT pg_notify(:channel, :id)"), {"channel": CHANNEL, "id": job_id})
