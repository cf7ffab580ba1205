"""Group commit: concurrent submissions share one transaction (one fsync); a store error fails
every request that was waiting on that commit, and leaves nothing half-written."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from sqlalchemy import Connection, func, select
from sqlalchemy.exc import OperationalError

from limner.api.submitter import Submitter
from limner.errors import IdempotencyConflict
from limner.store.engine import Engines, make_engines, upgrade
from limner.store.jobs import JobStore
from limner.store.records import NewJob, Submitted
from limner.store.schema import job_events, jobs
from tests.records import new_job


@pytest.fixture
def engines(tmp_path: Path) -> Iterator[Engines]:
    eng = make_engines(f"sqlite:///{tmp_path / 'limner.db'}")
    upgrade(eng)
    yield eng
    eng.dispose()


def count(engines: Engines, table: object) -> int:
    with engines.read.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())  # type: ignore[arg-type]


class SlowFirstCommit(JobStore):
    """The real store, whose first commit waits until the test lets it go: submissions that
    arrive meanwhile must gather into the next commit."""

    def __init__(self, engines: Engines) -> None:
        super().__init__(engines, priority_step_s=30)
        self.release = threading.Event()
        self.entered = threading.Event()
        self.batches: list[int] = []

    def submit_many(self, batch: Sequence[NewJob]) -> list[Submitted | IdempotencyConflict]:
        self.batches.append(len(batch))
        if len(self.batches) == 1:
            self.entered.set()
            self.release.wait(10)
        return super().submit_many(batch)


class FailingAfterInsert(JobStore):
    """The real store, whose transaction fails after the rows were inserted (a disk error at
    commit, say): the transaction must roll every row of the batch back."""

    def write_new(self, conn: Connection, batch: Sequence[NewJob]) -> list[Submitted | IdempotencyConflict]:
        written = super().write_new(conn, batch)
        assert conn.execute(select(func.count()).select_from(jobs)).scalar_one() == len(batch)
        raise OperationalError("INSERT", {}, Exception("disk I/O error"))
        return written  # pragma: no cover


def test_concurrent_submissions_share_commits(engines: Engines) -> None:
    store = SlowFirstCommit(engines)

    async def scenario() -> list[Submitted]:
        submitter = Submitter(store, max_batch=256)
        submitter.start()
        first = asyncio.ensure_future(submitter.submit(new_job()))
        await asyncio.to_thread(store.entered.wait, 10)  # the first commit is in flight
        rest = [asyncio.ensure_future(submitter.submit(new_job())) for _ in range(40)]
        await asyncio.sleep(0.05)
        store.release.set()
        done = await asyncio.gather(first, *rest)
        assert submitter.commits == 2 and submitter.submitted == 41
        await submitter.stop()
        return list(done)

    done = asyncio.run(scenario())
    assert store.batches == [1, 40]
    assert len({s.job_id for s in done}) == 41 and all(s.created for s in done)
    assert count(engines, jobs) == 41 and count(engines, job_events) == 41


def test_a_store_error_fails_every_waiting_request_and_writes_nothing(engines: Engines) -> None:
    store = FailingAfterInsert(engines, priority_step_s=30)

    async def scenario() -> list[BaseException | Submitted]:
        submitter = Submitter(store, max_batch=256)
        submitter.start()
        outcomes = await asyncio.gather(*(submitter.submit(new_job()) for _ in range(25)), return_exceptions=True)
        await submitter.stop()
        return list(outcomes)

    outcomes = asyncio.run(scenario())
    assert len(outcomes) == 25
    assert all(isinstance(o, OperationalError) for o in outcomes), outcomes
    assert count(engines, jobs) == 0 and count(engines, job_events) == 0
    # The submitter survives the failure: the next submission on a healthy store commits.
    healthy = JobStore(engines, priority_step_s=30)

    async def after() -> Submitted:
        submitter = Submitter(healthy, max_batch=256)
        submitter.start()
        try:
            return await submitter.submit(new_job())
        finally:
            await submitter.stop()

    assert asyncio.run(after()).created and count(engines, jobs) == 1
