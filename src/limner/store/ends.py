"""What follows a job's end, in the transaction that ended it (every terminal path calls this).

- its ``completed`` webhook, when it has one (the outbox);
- a nudge to its workflow: a step's end marks the workflow job ``advance_due``, so a
  coordinator advances it (limner.workflows.coordinator);
- a nudge to its batch: the batch row follows its job, and the next rows are admitted.

Both nudges are rows in the store, written in the same transaction as the end: a crash before
the commit loses neither the end nor the nudge, and whichever process runs a coordinator next
picks them up.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from sqlalchemy import Connection, select, update

from limner.store import outbox
from limner.store.schema import batches, jobs


def ended(conn: Connection, job_ids: Iterable[str]) -> None:
    ids = list(job_ids)
    if not ids:
        return
    outbox.on_jobs(conn, ids, outbox.COMPLETED)
    now = time.time()
    ended_jobs = select(jobs.c.parent_id, jobs.c.batch_id).where(jobs.c.id.in_(ids))
    owners = conn.execute(ended_jobs.where((jobs.c.parent_id.is_not(None)) | (jobs.c.batch_id.is_not(None)))).all()
    parents = sorted({row.parent_id for row in owners if row.parent_id})
    if parents:
        conn.execute(update(jobs).where(jobs.c.id.in_(parents)).values(advance_due=True, updated_at=now))
    batch_ids = sorted({row.batch_id for row in owners if row.batch_id})
    if batch_ids:
        conn.execute(update(batches).where(batches.c.id.in_(batch_ids)).values(advance_due=True, updated_at=now))
