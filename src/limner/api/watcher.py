"""Wake waiting clients when their jobs change.

SSE streams and ``POST /v1/run`` wait on jobs that workers (other processes, maybe other
machines) update in the store. On PostgreSQL a listener thread hears each change at once
(LISTEN/NOTIFY, see ``limner.store.notify``), whichever API replica the client is on. In
every case one task also reads the ``updated_at`` of all watched jobs each tick and wakes the
ones that moved: the only mechanism on SQLite, a safety net on PostgreSQL (a notification
sent while the listener was reconnecting is not lost, only late).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections import defaultdict

from sqlalchemy import select

from limner.store.engine import Engines
from limner.store.notify import CHANNEL
from limner.store.schema import jobs

log = logging.getLogger("limner.api.watcher")


class Watcher:
    def __init__(self, engines: Engines, interval_s: float) -> None:
        self.engines = engines
        self.interval_s = interval_s
        self._waiters: dict[str, list[tuple[float, asyncio.Event]]] = defaultdict(list)
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closing = threading.Event()
        self._listener: threading.Thread | None = None
        self.notifications = 0

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.create_task(self._run(), name="limner-watcher")
        if self.engines.dialect == "postgresql":
            self._listener = threading.Thread(target=self._listen, name="limner-listen", daemon=True)
            self._listener.start()

    async def stop(self) -> None:
        self._closing.set()
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def wait_change(self, job_id: str, since: float, timeout: float) -> bool:  # noqa: ASYNC109
        """Wait until the job's ``updated_at`` differs from ``since`` (the value the caller last
        saw); False on timeout. Any difference, not only a later one: writers take their stamp
        before SQLite's write lock, so two writes may commit out of stamp order."""
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
                    if stamp != since:
                        event.set()

    def _wake(self, job_id: str) -> None:
        self.notifications += 1
        for _since, event in list(self._waiters.get(job_id, ())):
            event.set()

    def _listen(self) -> None:
        """LISTEN on a connection of its own; reconnect (with backoff) when it drops."""
        import psycopg

        dsn = self.engines.write.url.set(drivername="postgresql").render_as_string(hide_password=False)
        backoff = 0.5
        while not self._closing.is_set():
            try:
                with psycopg.connect(dsn, autocommit=True, connect_timeout=5) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    backoff = 0.5
                    while not self._closing.is_set():
                        for note in conn.notifies(timeout=1.0):
                            if self._loop is not None:
                                self._loop.call_soon_threadsafe(self._wake, note.payload)
            except psycopg.Error as exc:
                log.warning("LISTEN connection lost (%s); reconnecting in %.1f s", exc, backoff)
                self._closing.wait(backoff)
                backoff = min(backoff * 2, 10.0)

    def _read(self, ids: list[str]) -> dict[str, float]:
        with self.engines.read.connect() as conn:
            rows = conn.execute(select(jobs.c.id, jobs.c.updated_at).where(jobs.c.id.in_(ids)))
            return {r.id: r.updated_at for r in rows}
