"""The job store against real SQLite and PostgreSQL: submit, claim, lease, reap, cancel."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace

import pytest

from limner.errors import IdempotencyConflict
from limner.store.engine import Engines, current_revision, head_revision, make_engines, upgrade
from limner.store.jobs import JobStore
from limner.store.queue import WorkQueue
from limner.store.records import NewJob, Submitted
from limner.store.workers import WorkerRegistry


@pytest.fixture
def engines(store_url: str) -> Iterator[Engines]:
    eng = make_engines(store_url)
    upgrade(eng)
    yield eng
    eng.dispose()


def new_job(
    model: str = "m/a",
    priority: str = "normal",
    key: str | None = None,
    body: str = "b",
    batch: str = "k",
    max_attempts: int = 3,
) -> NewJob:
    return NewJob(
        id=str(uuid.uuid4()),
        model_id=model,
        task="text-to-image",
        priority=priority,
        input={"prompt": body},
        batch_key=batch,
        body_hash=body,
        idempotency_key=key,
        max_attempts=max_attempts,
    )


def submit(store: JobStore, job: NewJob) -> str:
    [outcome] = store.submit_many([job])
    assert isinstance(outcome, Submitted)
    return outcome.job_id


def test_migrations_are_idempotent(engines: Engines) -> None:
    upgrade(engines)
    assert current_revision(engines) == head_revision()


def test_submit_and_read_back(engines: Engines) -> None:
    store = JobStore(engines, priority_step_s=30)
    job_id = submit(store, new_job())
    job = store.get(job_id)
    assert job is not None
    assert (job.status, job.model_id, job.input, job.attempts) == ("queued", "m/a", {"prompt": "b"}, 0)
    assert [line.message for line in store.logs(job_id)] == ["queued with priority normal"]
    assert store.get("nope") is None


def test_idempotency_key(engines: Engines) -> None:
    store = JobStore(engines, priority_step_s=30)
    first = submit(store, new_job(key="k1", body="same"))
    again = store.submit_many([new_job(key="k1", body="same")])
    assert again == [Submitted(job_id=first, created=False)]
    [conflict] = store.submit_many([new_job(key="k1", body="other")])
    assert isinstance(conflict, IdempotencyConflict)
    assert conflict.status_code == 409
    # Within one group commit too: the second of two equal keys resolves to the first.
    a, b = store.submit_many([new_job(key="k2"), new_job(key="k2")])
    assert isinstance(a, Submitted) and isinstance(b, Submitted)
    assert b.job_id == a.job_id and a.created and not b.created


def test_priorities_and_aging(engines: Engines) -> None:
    queue = WorkQueue(engines, lease_s=30)
    store = JobStore(engines, priority_step_s=30)
    low = submit(store, new_job(priority="low", batch="low"))
    normal = submit(store, new_job(priority="normal", batch="normal"))
    high = submit(store, new_job(priority="high", batch="high"))
    order = []
    for _ in range(3):
        pick = queue.next_batch_key([], 0, ["m/a"])
        assert pick is not None
        [job] = queue.claim("w", *pick, limit=1)
        order.append(job.id)
    assert order == [high, normal, low]

    # With a small head start, a low job that waited long enough overtakes a new high one.
    aging = JobStore(engines, priority_step_s=0.05)
    old_low = submit(aging, new_job(priority="low", batch="x"))
    time.sleep(0.2)
    submit(aging, new_job(priority="high", batch="y"))
    pick = queue.next_batch_key([], 0, ["m/a"])
    assert pick is not None
    [first] = queue.claim("w", *pick, limit=1)
    assert first.id == old_low


def test_model_affinity(engines: Engines) -> None:
    store = JobStore(engines, priority_step_s=30)
    queue = WorkQueue(engines, lease_s=30)
    submit(store, new_job(model="m/cold"))
    submit(store, new_job(model="m/warm"))
    everything = ["m/cold", "m/warm"]
    assert queue.next_batch_key([], 10, everything) == ("m/cold", "k")
    assert queue.next_batch_key(["m/warm"], 10, everything) == ("m/warm", "k")
    # Outside the affinity window the older job wins; unservable models are never picked.
    assert queue.next_batch_key(["m/warm"], 0, everything) == ("m/cold", "k")
    assert queue.next_batch_key([], 10, ["m/other"]) is None


def test_claim_groups_by_batch_key(engines: Engines) -> None:
    store = JobStore(engines, priority_step_s=30)
    queue = WorkQueue(engines, lease_s=30)
    ids = [submit(store, new_job(batch="a")) for _ in range(5)]
    submit(store, new_job(batch="b"))
    claimed = queue.claim("w1", "m/a", "a", limit=3)
    assert [j.id for j in claimed] == ids[:3]
    assert all(j.status == "running" and j.lease_owner == "w1" and j.attempts == 1 for j in claimed)
    assert [j.id for j in queue.claim("w2", "m/a", "a", limit=10)] == ids[3:]
    assert queue.claim("w3", "m/a", "a", limit=10) == []


def test_concurrent_claims_never_share_a_job(engines: Engines) -> None:
    store = JobStore(engines, priority_step_s=30)
    queue = WorkQueue(engines, lease_s=30)
    jobs = [new_job() for _ in range(60)]
    store.submit_many(jobs)
    claimed: list[str] = []
    lock = threading.Lock()

    def claimer(name: str) -> None:
        while True:
            got = queue.claim(name, "m/a", "k", limit=2)
            if not got:
                return
            with lock:
                claimed.extend(j.id for j in got)

    threads = [threading.Thread(target=claimer, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(claimed) == sorted(j.id for j in jobs)


def test_lease_expiry_requeues_and_fences_the_old_worker(engines: Engines) -> None:
    store = JobStore(engines, priority_step_s=30)
    queue = WorkQueue(engines, lease_s=0.2)
    job_id = submit(store, new_job())
    [_job] = queue.claim("dead", "m/a", "k", limit=1)
    time.sleep(0.3)
    assert queue.reap() == [job_id]
    job2 = store.get(job_id)
    assert job2 is not None and job2.status == "queued" and job2.lease_owner is None
    [again] = queue.claim("alive", "m/a", "k", limit=1)
    assert again.attempts == 2
    # The presumed-dead worker wakes up: none of its writes land.
    assert not queue.progress("dead", job_id, {"stage": "x"}).held
    assert not queue.complete("dead", job_id, {"images": []})
    assert queue.renew("dead", [job_id]) == {job_id}
    assert queue.complete("alive", job_id, {"images": ["ok"]})
    done = store.get(job_id)
    assert done is not None and done.status == "succeeded" and done.result == {"images": ["ok"]}
    assert any("returned to the queue" in line.message for line in store.logs(job_id))


def test_out_of_attempts_fails_as_worker_lost(engines: Engines) -> None:
    store = JobStore(engines, priority_step_s=30)
    queue = WorkQueue(engines, lease_s=0.1)
    job_id = submit(store, new_job(max_attempts=1))
    queue.claim("dead", "m/a", "k", limit=1)
    time.sleep(0.2)
    queue.reap()
    job = store.get(job_id)
    assert job is not None and job.status == "failed" and job.error_type == "worker_lost"


def test_cancel(engines: Engines) -> None:
    store = JobStore(engines, priority_step_s=30)
    queue = WorkQueue(engines, lease_s=30)
    queued = submit(store, new_job(batch="q"))
    assert store.cancel(queued) == "CANCELLATION_REQUESTED"
    job = store.get(queued)
    assert job is not None and job.status == "canceled"
    assert queue.claim("w", "m/a", "q", limit=5) == []  # a canceled job never runs

    running = submit(store, new_job(batch="r"))
    queue.claim("w", "m/a", "r", limit=1)
    assert not queue.progress("w", running, {"stage": "denoising"}).cancel_requested
    assert store.cancel(running) == "CANCELLATION_REQUESTED"
    assert queue.progress("w", running, {"stage": "denoising"}).cancel_requested
    assert queue.finish_canceled("w", running)
    assert store.cancel(running) == "ALREADY_COMPLETED"
    assert store.cancel(str(uuid.uuid4())) is None


def test_fail_with_and_without_retry(engines: Engines) -> None:
    store = JobStore(engines, priority_step_s=30)
    queue = WorkQueue(engines, lease_s=30)
    job_id = submit(store, new_job(max_attempts=2))
    queue.claim("w", "m/a", "k", limit=1)
    assert queue.fail("w", job_id, "out_of_memory", "oom", retry=True) == "queued"
    queue.claim("w", "m/a", "k", limit=1)
    assert queue.fail("w", job_id, "out_of_memory", "oom", retry=True) == "failed"  # attempts used up
    job = store.get(job_id)
    assert job is not None and (job.status, job.error_type, job.error) == ("failed", "out_of_memory", "oom")
    assert queue.fail("w", job_id, "x", "y", retry=False) is None  # no longer ours


def test_list_pages_with_a_cursor(engines: Engines) -> None:
    store = JobStore(engines, priority_step_s=30)
    ids = [submit(store, new_job(model="m/a" if i % 2 else "m/b")) for i in range(7)]
    seen: list[str] = []
    cursor = None
    while True:
        page = store.list_jobs(limit=3, before=cursor)
        if not page:
            break
        seen += [j.id for j in page]
        cursor = (page[-1].created_at, page[-1].id)
    assert sorted(seen) == sorted(ids) and len(seen) == 7
    assert {j.model_id for j in store.list_jobs(model_id="m/b")} == {"m/b"}
    assert store.list_jobs(statuses=("failed",)) == []


def test_workers_register_and_age_out(engines: Engines) -> None:
    registry = WorkerRegistry(engines)
    registry.register(worker_id="w1", hostname="h", pid=1, device="cpu", memory_budget_mb=100)
    registry.heartbeat("w1", models=["m/a"], current_jobs=["j"])
    [info] = registry.active(5)
    assert (info.id, info.models, info.current_jobs) == ("w1", ["m/a"], ["j"])
    registry.stopped("w1")
    assert registry.active(5) == []


def test_group_commit_of_many(engines: Engines) -> None:
    store = JobStore(engines, priority_step_s=30)
    batch = [new_job() for _ in range(200)]
    outcomes = store.submit_many(batch)
    assert all(isinstance(o, Submitted) and o.created for o in outcomes)
    assert store.count_by_status() == {"queued": 200}
    # A race on an Idempotency-Key between replicas falls back to one item at a time.
    first = submit(store, new_job(key="race"))
    mixed = store.submit_many([new_job(), replace(new_job(key="race"), id=str(uuid.uuid4()))])
    assert isinstance(mixed[1], Submitted) and mixed[1].job_id == first
