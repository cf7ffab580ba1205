"""The state machine in the store: every status write goes through states.move, so a finished
job never moves again, whichever path tries."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import select

from limner.store.engine import Engines, make_engines, upgrade
from limner.store.jobs import JobStore
from limner.store.queue import WorkQueue
from limner.store.schema import jobs
from limner.store.states import (
    CANCELED,
    FAILED,
    QUEUED,
    RUNNING,
    STATUSES,
    SUCCEEDED,
    TERMINAL,
    can_move,
    check_birth,
    move,
)
from tests.records import new_job


@pytest.fixture
def engines(store_url: str) -> Iterator[Engines]:
    eng = make_engines(store_url)
    upgrade(eng)
    yield eng
    eng.dispose()


def status_of(engines: Engines, job_id: str) -> str:
    with engines.read.connect() as conn:
        return str(conn.execute(select(jobs.c.status).where(jobs.c.id == job_id)).scalar_one())


def force(engines: Engines, job_id: str, status: str) -> None:
    """Put a job in a state through the guarded path from its current one."""
    with engines.write.begin() as conn:
        assert conn.execute(move(status, jobs.c.id == job_id)).rowcount == 1


@pytest.mark.parametrize("old", STATUSES)
@pytest.mark.parametrize("new", STATUSES)
def test_move_applies_exactly_the_allowed_transitions(engines: Engines, old: str, new: str) -> None:
    store = JobStore(engines, priority_step_s=30)
    job = new_job()
    store.submit_many([job])
    path = {QUEUED: [], RUNNING: [RUNNING], SUCCEEDED: [RUNNING, SUCCEEDED], FAILED: [FAILED], CANCELED: [CANCELED]}
    for step in path[old]:
        force(engines, job.id, step)
    assert status_of(engines, job.id) == old
    if not [o for o in STATUSES if can_move(o, new)]:
        with pytest.raises(ValueError, match="no job may move"):
            move(new, jobs.c.id == job.id)
        return
    with engines.write.begin() as conn:
        moved = conn.execute(move(new, jobs.c.id == job.id)).rowcount
    assert moved == (1 if can_move(old, new) else 0)
    assert status_of(engines, job.id) == (new if can_move(old, new) else old)


def test_finished_jobs_stay_finished_through_every_store_path(engines: Engines) -> None:
    store, queue = JobStore(engines, priority_step_s=30), WorkQueue(engines, lease_s=0.01)
    done, failed = new_job(), new_job()
    store.submit_many([done, failed])
    claimed = {j.id for j in queue.claim("w", "m/a", "k", 10)}
    assert claimed == {done.id, failed.id}
    assert queue.complete("w", done.id, {"images": []})
    assert queue.fail("w", failed.id, "model_error", "boom", retry=False) == FAILED
    # Every writer that could touch them now: the owner again, a cancel, the reaper, a claim.
    assert not queue.complete("w", done.id, {"images": ["again"]})
    assert not queue.finish_canceled("w", done.id)
    assert queue.fail("w", done.id, "model_error", "late", retry=True) is None
    assert store.cancel(done.id) == "ALREADY_COMPLETED"
    assert store.cancel(failed.id) == "ALREADY_COMPLETED"
    queue.reap()
    assert queue.claim("w2", "m/a", "k", 10) == []
    assert status_of(engines, done.id) == SUCCEEDED and status_of(engines, failed.id) == FAILED
    assert store.get(done.id).result == {"images": []}  # type: ignore[union-attr]


def test_jobs_are_born_queued_or_from_the_cache() -> None:
    assert check_birth(QUEUED) == QUEUED and check_birth(SUCCEEDED) == SUCCEEDED
    for status in (RUNNING, FAILED, CANCELED):
        with pytest.raises(ValueError, match="starts queued"):
            check_birth(status)
    assert {SUCCEEDED, FAILED, CANCELED} == TERMINAL
