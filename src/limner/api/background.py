"""The API process's background loops, each a small named service with ``start``/``stop``.

- :class:`Reaper`: returns the jobs of dead workers to the queue (workers reap each other too;
  the API does it so jobs come back even when no other worker runs).
- :class:`Housekeeper`: fails jobs past their start deadline, deletes expired results.
- :class:`UsageRecorder`: writes a usage row for every finished job, refreshes which models
  have cache entries, and now and then sweeps cache entries whose media went.
- :class:`Coordinators`: advances workflows whose steps changed, and batches (workers run the
  same coordinators: whichever process is alive carries them on).

Several API replicas may run all of them: every step is idempotent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from limner.api.context import ApiContext
from limner.store.deadlines import expire_due
from limner.store.retention import purge_expired

log = logging.getLogger("limner.api.background")


class Periodic:
    """Run ``step`` in a thread every ``interval_s`` seconds until stopped; a failing step is
    logged and tried again at the next tick (the store may be away for a while)."""

    name = "periodic"

    def __init__(self, interval_s: float, step: Callable[[], None]) -> None:
        self.interval_s = interval_s
        self.step = step
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name=f"limner-{self.name}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await asyncio.to_thread(self.step)
            except Exception as exc:
                log.warning("%s could not reach the store: %s", self.name, exc)


class Reaper(Periodic):
    name = "reaper"

    def __init__(self, ctx: ApiContext) -> None:
        super().__init__(max(ctx.settings.lease_s / 2, 0.5), self._step)
        self.ctx = ctx

    def _step(self) -> None:
        self.ctx.queue.reap()


class Housekeeper(Periodic):
    name = "housekeeping"
    DEADLINE_CHECK_S = 0.5

    def __init__(self, ctx: ApiContext) -> None:
        super().__init__(self.DEADLINE_CHECK_S, self._step)
        self.ctx = ctx
        self._last_cleanup = 0.0

    def _step(self) -> None:
        expire_due(self.ctx.engines)
        if time.monotonic() - self._last_cleanup >= self.ctx.settings.cleanup_interval_s:
            self._last_cleanup = time.monotonic()
            gone = purge_expired(self.ctx.engines, self.ctx.storage.inner)
            if gone:
                log.info("deleted the expired results of %d job(s)", len(gone))


class UsageRecorder(Periodic):
    name = "usage"
    SWEEP_S = 300.0

    def __init__(self, ctx: ApiContext, interval_s: float = 2.0) -> None:
        super().__init__(interval_s, self._step)
        self.ctx = ctx
        self._last_sweep = time.monotonic()

    def _step(self) -> None:
        self.ctx.usage.record_new()
        self.ctx.submit_cache.refresh()
        if time.monotonic() - self._last_sweep > self.SWEEP_S:
            self.ctx.cache.purge_expired()
            self._last_sweep = time.monotonic()


class Coordinators(Periodic):
    """Looks every ``coordinate_poll_s`` while there is work, backing off to 8 times that while
    there is none (an idle server does not query its store 60 times a second). Workers advance
    a workflow as soon as they end one of its steps, so the back-off only delays the safety net."""

    name = "coordinators"
    IDLE_FACTOR = 8

    def __init__(self, ctx: ApiContext) -> None:
        super().__init__(ctx.settings.coordinate_poll_s, self._step)
        self.ctx = ctx
        self.idle = 0

    def _step(self) -> None:
        worked = False
        ctx = self.ctx
        # All there is, then a tick.
        while ctx.workflows.run_once() + ctx.batch_runner.run_once() + ctx.routes.run_once():
            worked = True
        self.idle = 0 if worked else min(self.idle + 1, self.IDLE_FACTOR)

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s * max(self.idle, 1))
            try:
                await asyncio.to_thread(self.step)
            except Exception as exc:
                log.warning("%s could not reach the store: %s", self.name, exc)
