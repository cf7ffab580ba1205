"""Wake waiting clients when their jobs change, with one store query per tick for all of them.

SSE streams and ``POST /v1/run`` wait on jobs that workers (other processes, maybe other
machines) update in the store. Rather than every waiter polling, one task reads the
``updated_at`` of all watched jobs each tick and wakes the ones that moved.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict

from sqlalchemy import select

from limner.store.engine import Engines
from limner.store.schema import jobs

log = logging.getLogger("limner.api.watcher")


class Watcher:
    def __init__(self, engines: Engines, interval_s: float) -> None:
        self.engines = engines
        self.interval_s = interval_s
        self._waiters: dict[str, list[tuple[float, asyncio.Event]]] = defaultdict(list)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="limner-watcher")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def wait_change(self, job_id: str, since: float, timeout: float) -> bool:  # noqa: ASYNC109
        """Wait until the job's ``updated_at`` passes ``since``; False on timeout."""
        event = asyncio.Event()
        entry = (since, event)
        self._waiters[job_id].append(entry)
        try:
            await asyncio.wait_for(event.wait(), timeout)
            return True
        except TimeoutError:
            return False
        finally:
            waiters = self._waiters.get(job_id)
            if waiters is not None:
                if entry in waiters:
                    waiters.remove(entry)
                if not waiters:
                    self._waiters.pop(job_id, None)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            if not self._waiters:
                continue
            ids = list(self._waiters)
            try:
                updated = await asyncio.to_thread(self._read, ids)
            except Exception as exc:
                log.warning("watcher could not read the store: %s", exc)
                continue
            for job_id, stamp in updated.items():
                for since, event in list(self._waiters.get(job_id, ())):
                    if stamp > since:
                        event.set()

    def _read(self, ids: list[str]) -> dict[str, float]:
        with self.engines.read.connect() as conn:
            rows = conn.execute(select(jobs.c.id, jobs.c.updated_at).where(jobs.c.id.in_(ids)))
            return {r.id: r.updated_at for r in rows}
