"""Group commit for submissions.

Every 202 must mean "on disk". One fsync per submission would cap SQLite at a few hundred
submissions a second, so concurrent submissions share a transaction: while one commit is in
flight, new ones gather, and the next commit writes all of them. Under light load a batch is
one submission and nothing waits; under heavy load one fsync serves dozens of requests.
(No library does this for SQLAlchemy; it is a small queue and one writer task.)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

from limner.errors import IdempotencyConflict
from limner.store.jobs import JobStore
from limner.store.records import NewJob, Submitted

log = logging.getLogger("limner.api.submitter")


@dataclass
class _Pending:
    job: NewJob
    future: asyncio.Future[Submitted | IdempotencyConflict]


class Submitter:
    def __init__(self, store: JobStore, *, max_batch: int) -> None:
        self.store = store
        self.max_batch = max_batch
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self.commits = 0
        self.submitted = 0

    def start(self) -> None:
        self._task = asyncio.create_task(self._writer(), name="limner-submitter")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def submit(self, job: NewJob) -> Submitted:
        """Returns once the job is committed; raises IdempotencyConflict or the store's error."""
        future: asyncio.Future[Submitted | IdempotencyConflict] = asyncio.get_running_loop().create_future()
        await self._queue.put(_Pending(job, future))
        outcome = await future
        if isinstance(outcome, IdempotencyConflict):
            raise outcome
        return outcome

    async def _writer(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self.max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                outcomes = await asyncio.to_thread(self.store.submit_many, [p.job for p in batch])
            except Exception as exc:  # the store is down: every caller gets the error
                log.warning("submission of %d job(s) failed: %s", len(batch), exc)
                for pending in batch:
                    if not pending.future.done():
                        pending.future.set_exception(exc)
                continue
            self.commits += 1
            self.submitted += len(batch)
            for pending, outcome in zip(batch, outcomes, strict=True):
                if not pending.future.done():
                    pending.future.set_result(outcome)
