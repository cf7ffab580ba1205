"""The watcher wakes a waiting client on any change of its job, even one whose stamp is earlier:
writers stamp a change before they get SQLite's write lock, so a completion stamped before a
lease renewal can commit after it (found by benchmarks/peers: /v1/run answers 15 s late)."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

from sqlalchemy import update

from limner.api.watcher import Watcher
from limner.store.engine import make_engines, upgrade
from limner.store.jobs import JobStore
from limner.store.records import NewJob
from limner.store.schema import jobs


def test_a_change_stamped_earlier_still_wakes_the_waiter(tmp_path: Path) -> None:
    engines = make_engines(f"sqlite:///{tmp_path / 'limner.db'}")
    upgrade(engines)
    job = NewJob(str(uuid.uuid4()), "m/a", "text-to-image", "normal", {}, "k", "h", None, 1)
    JobStore(engines, priority_step_s=30).submit_many([job])
    with engines.write.begin() as conn:
        conn.execute(update(jobs).where(jobs.c.id == job.id).values(updated_at=1000.0))

    async def scenario() -> bool:
        watcher = Watcher(engines, interval_s=0.02)
        watcher.start()
        try:
            waiting = asyncio.ensure_future(watcher.wait_change(job.id, 1000.0, timeout=5.0))
            await asyncio.sleep(0.1)
            with engines.write.begin() as conn:  # the completion, stamped before the renewal it follows
                conn.execute(update(jobs).where(jobs.c.id == job.id).values(updated_at=999.5, status="succeeded"))
            return await waiting  # False only if the five seconds ran out
        finally:
            await watcher.stop()

    assert asyncio.run(scenario())
    engines.dispose()
