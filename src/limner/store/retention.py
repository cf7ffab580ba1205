"""Result retention: a finished job's result and its media files go after ``result_ttl_s``.

The TTL is fixed on each job when it is submitted (``LIMNER_RESULT_TTL_S`` or the request's
own). Cleanup deletes the job's result files from storage first and then marks the job
expired (dropping the result JSON), so a crash in between only means the next pass deletes
already-missing files again. Input files are content-addressed and may be shared by other
jobs, so only the job's own ``…/results/<job id>/`` files are deleted.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

from sqlalchemy import insert, select, update

from limner.storage import Storage
from limner.storage.base import REF_PREFIX, is_result_of
from limner.store.engine import Engines
from limner.store.schema import job_events, jobs

log = logging.getLogger("limner.retention")


def stored_keys(value: Any) -> Iterator[str]:
    """Every storage key referenced in a result."""
    if isinstance(value, str) and value.startswith(REF_PREFIX):
        yield value[len(REF_PREFIX) :]
    elif isinstance(value, dict):
        for item in value.values():
            yield from stored_keys(item)
    elif isinstance(value, list):
        for item in value:
            yield from stored_keys(item)


def purge_expired(engines: Engines, storage: Storage, *, now: float | None = None, limit: int = 200) -> list[str]:
    """Delete the results past their time; returns the ids of the jobs whose results went."""
    now = time.time() if now is None else now
    due = (
        jobs.c.expired_at.is_(None),
        jobs.c.result_ttl_s.is_not(None),
        jobs.c.finished_at.is_not(None),
        jobs.c.finished_at + jobs.c.result_ttl_s <= now,
    )
    with engines.read.connect() as conn:
        rows = conn.execute(select(jobs.c.id, jobs.c.result).where(*due).limit(limit)).all()
    if not rows:
        return []
    for job_id, result in rows:
        for key in stored_keys(result):
            if is_result_of(key, job_id):
                try:
                    storage.delete(key)
                except Exception as exc:  # storage down: the job stays due, the next pass retries
                    log.warning("could not delete %s of expired job %s: %s", key, job_id, exc)
    ids = [r.id for r in rows]
    with engines.write.begin() as conn:
        gone = list(
            conn.execute(
                update(jobs)
                .where(jobs.c.id.in_(ids), jobs.c.expired_at.is_(None))
                .values(expired_at=now, result=None, updated_at=now)
                .returning(jobs.c.id)
            ).scalars()
        )
        if gone:
            conn.execute(
                insert(job_events),
                [
                    {"job_id": j, "ts": now, "level": "info", "source": "retention", "message": "result expired"}
                    for j in gone
                ],
            )
    return gone
