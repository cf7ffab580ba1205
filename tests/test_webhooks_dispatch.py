"""The webhook outbox and dispatcher against real stores (SQLite and PostgreSQL) and a real
HTTP receiver on loopback: signatures, retries, Retry-After, 410, the SSRF guard at delivery,
replay, leases between dispatchers, coalesced progress, and exactly one completion."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from ipaddress import ip_address
from typing import Any

import pytest
from sqlalchemy import select
from standardwebhooks import Webhook

from limner.net.guard import IPAddress, parse_allow_list
from limner.store import outbox
from limner.store.deliveries import Deliveries, Delivery
from limner.store.engine import Engines, make_engines, upgrade
from limner.store.jobs import JobStore
from limner.store.queue import WorkQueue
from limner.store.records import NewJob, Submitted
from limner.store.schema import webhook_outbox
from limner.webhooks.sender import RetryPolicy, SenderConfig, WebhookSender, parse_retry_after
from limner.webhooks.signing import Signer, check_secret, generate_secret
from tests.receiver import Receiver, receiver

SECRET = generate_secret()
FAST = (0.0, 0.2, 0.4)


@pytest.fixture
def engines(store_url: str) -> Iterator[Engines]:
    eng = make_engines(store_url)
    upgrade(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def hook() -> Iterator[Receiver]:
    with receiver() as r:
        yield r


def config(**overrides: Any) -> SenderConfig:
    values: dict[str, Any] = {
        "signer": Signer((SECRET,)),
        "allow": parse_allow_list(["127.0.0.1"]),
        "policy": RetryPolicy(FAST, jitter=0.0),
        "timeout_s": 5.0,
        "poll_s": 0.02,
        "concurrency": 4,
    }
    values.update(overrides)
    return SenderConfig(**values)


@pytest.fixture
def dispatcher(engines: Engines) -> Iterator[WebhookSender]:
    d = WebhookSender(Deliveries(engines), config(), lambda payload: payload)
    d.start()
    yield d
    d.stop()


def submit(engines: Engines, url: str, events: str = "completed", deadline: float | None = None) -> str:
    job = NewJob(
        id=str(uuid.uuid4()),
        model_id="m/a",
        task="text-to-image",
        priority="normal",
        input={"prompt": "p"},
        batch_key="k",
        body_hash=uuid.uuid4().hex,
        idempotency_key=None,
        max_attempts=3,
        webhook_url=url,
        webhook_events=events,
        start_deadline_s=deadline,
    )
    [done] = JobStore(engines, priority_step_s=30).submit_many([job])
    assert isinstance(done, Submitted)
    return done.job_id


def run_job(engines: Engines, url: str, events: str = "completed", *, worker: str = "w1") -> str:
    job_id = submit(engines, url, events)
    queue = WorkQueue(engines, lease_s=30)
    [claimed] = queue.claim(worker, "m/a", "k", 1)
    assert claimed.id == job_id
    assert queue.complete(worker, job_id, {"images": [{"url": "storage://results/x.png"}], "seed": 1})
    return job_id


def messages(engines: Engines, job_id: str) -> list[Delivery]:
    return sorted(Deliveries(engines).find(job_id=job_id), key=lambda d: d.created_at)


def wait_status(engines: Engines, delivery_id: str, status: str, timeout: float = 30) -> Delivery:
    deliveries = Deliveries(engines)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = deliveries.get(delivery_id)
        if found is not None and found.status == status:
            return found
        time.sleep(0.02)
    raise TimeoutError(f"{delivery_id} never became {status}: {deliveries.get(delivery_id)}")


def test_secrets_are_checked() -> None:
    assert check_secret(SECRET) == SECRET
    for bad in ("secret", "whsec_!!!", "whsec_" + "QUJD"):
        with pytest.raises(ValueError, match="webhook secret"):
            check_secret(bad)


def test_rotation_signs_with_every_secret() -> None:
    old, new = generate_secret(), generate_secret()
    body = '{"a":1}'
    headers = Signer((new, old)).headers("msg_1", int(time.time()), body)
    assert len(headers["webhook-signature"].split(" ")) == 2
    for secret in (old, new):
        assert Webhook(secret).verify(body, headers) == {"a": 1}
    with pytest.raises(Exception, match="signature"):
        Webhook(generate_secret()).verify(body, headers)


def test_completed_message_is_signed_and_verifies(engines: Engines, hook: Receiver, dispatcher: WebhookSender) -> None:
    job_id = run_job(engines, hook.url)
    [seen] = hook.wait_for(lambda r: len(r) == 1)
    body = Webhook(SECRET).verify(seen.body, seen.headers)
    assert body["type"] == "request.completed" and body["status"] == "OK"
    assert body["request_id"] == body["gateway_request_id"] == job_id
    assert body["payload"]["seed"] == 1 and body["timestamp"].endswith("Z")
    [message] = messages(engines, job_id)
    assert seen.id == message.id
    delivered = wait_status(engines, message.id, "delivered")
    assert delivered.attempts == 1 and delivered.last_status_code == 200


def test_retries_on_the_schedule_until_the_receiver_recovers(
    engines: Engines, hook: Receiver, dispatcher: WebhookSender
) -> None:
    hook.script = [(500, {}), (502, {})]
    job_id = run_job(engines, hook.url)
    [message] = messages(engines, job_id)
    wait_status(engines, message.id, "delivered")
    attempts = Deliveries(engines).attempts(message.id)
    assert [a.outcome for a in attempts] == ["retry", "retry", "delivered"]
    assert [a.status_code for a in attempts] == [500, 502, 200]
    for attempt, delay in zip(attempts[:2], FAST[1:], strict=True):
        assert attempt.retry_at == pytest.approx(attempt.started_at + delay)
    assert attempts[1].started_at >= attempts[0].retry_at  # type: ignore[operator]
    assert len({r.id for r in hook.received}) == 1  # the same webhook-id on every retry


def test_retry_after_is_honoured(engines: Engines, hook: Receiver, dispatcher: WebhookSender) -> None:
    hook.script = [(503, {"Retry-After": "1"})]
    job_id = run_job(engines, hook.url)
    [message] = messages(engines, job_id)
    wait_status(engines, message.id, "delivered")
    first, second = Deliveries(engines).attempts(message.id)
    assert first.retry_at is not None and first.retry_at >= first.started_at + 1.0
    assert second.started_at >= first.retry_at
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", time.time()) == 0.0
    assert parse_retry_after("nonsense", 0) is None


def test_gives_up_after_the_schedule(engines: Engines, hook: Receiver, dispatcher: WebhookSender) -> None:
    hook.script = [(500, {})] * 10
    job_id = run_job(engines, hook.url)
    [message] = messages(engines, job_id)
    failed = wait_status(engines, message.id, "failed")
    assert failed.attempts == len(FAST) and failed.last_status_code == 500
    assert [a.outcome for a in Deliveries(engines).attempts(message.id)] == ["retry", "retry", "failed"]


def test_410_stops_every_message_of_the_job(engines: Engines, hook: Receiver, dispatcher: WebhookSender) -> None:
    hook.script = [(410, {})]
    job_id = submit(engines, hook.url, "started,completed")
    queue = WorkQueue(engines, lease_s=30)
    queue.claim("w1", "m/a", "k", 1)
    [started] = messages(engines, job_id)
    wait_status(engines, started.id, "gone")
    assert queue.complete("w1", job_id, {"seed": 1})
    assert messages(engines, job_id) == [Deliveries(engines).get(started.id)]  # nothing more is queued
    assert len(hook.received) == 1


def test_the_guard_refuses_at_delivery(engines: Engines, hook: Receiver) -> None:
    # Accepted earlier, but the name now resolves to a private address: no connection is made.
    def resolver(host: str, port: int) -> list[IPAddress]:
        return [ip_address("10.0.0.7")]

    job_id = run_job(engines, "http://hooks.example.com/x")
    d = WebhookSender(Deliveries(engines), config(resolver=resolver, allow=parse_allow_list([])), lambda p: p)
    [claimed] = Deliveries(engines).claim(d.id, 5, 30)
    attempt = d.deliver(claimed)
    assert attempt.status_code is None and attempt.outcome == "retry"
    assert attempt.error is not None and "10.0.0.7, a private address" in attempt.error
    assert "LIMNER_WEBHOOK_ALLOW_HOSTS" in attempt.error
    assert messages(engines, job_id)[0].status == "pending"


def test_replay_sends_the_same_message_again(engines: Engines, hook: Receiver, dispatcher: WebhookSender) -> None:
    job_id = run_job(engines, hook.url)
    [message] = messages(engines, job_id)
    wait_status(engines, message.id, "delivered")
    replayed = Deliveries(engines).replay(message.id)
    assert replayed is not None and replayed.status == "pending"
    seen = hook.wait_for(lambda r: len(r) == 2)
    assert seen[0].id == seen[1].id == message.id
    assert wait_status(engines, message.id, "delivered").attempts == 2
    assert Deliveries(engines).replay("msg_nope") is None


def test_two_dispatchers_never_send_a_message_twice(engines: Engines, hook: Receiver) -> None:
    jobs = [run_job(engines, hook.url) for _ in range(20)]
    pair = [WebhookSender(Deliveries(engines), config(), lambda p: p) for _ in range(2)]
    for d in pair:
        d.start()
    try:
        seen = hook.wait_for(lambda r: len(r) >= 20)
        time.sleep(0.3)  # room for a duplicate to show up, if there were one
    finally:
        for d in pair:
            d.stop()
    assert len(hook.received) == 20
    assert sorted(r.json["request_id"] for r in seen) == sorted(jobs)


def test_a_dead_dispatchers_message_is_sent_by_another(engines: Engines, hook: Receiver) -> None:
    job_id = run_job(engines, hook.url)
    [claimed] = Deliveries(engines).claim("dead-dispatcher", 5, lease_s=0.3)  # claimed, never sent
    assert claimed.job_id == job_id
    d = WebhookSender(Deliveries(engines), config(), lambda p: p)
    d.start()
    try:
        hook.wait_for(lambda r: len(r) == 1)
    finally:
        d.stop()
    assert wait_status(engines, claimed.id, "delivered").attempts == 1


def test_progress_messages_coalesce(engines: Engines, hook: Receiver) -> None:
    job_id = submit(engines, hook.url, "progress,completed")
    queue = WorkQueue(engines, lease_s=30)
    queue.claim("w1", "m/a", "k", 1)
    for step in range(1, 6):
        queue.progress("w1", job_id, {"stage": "denoising", "step": step, "total": 5, "percent": step * 20.0})
    [pending] = messages(engines, job_id)
    assert pending.event == "progress" and pending.payload["payload"]["step"] == 5
    assert queue.complete("w1", job_id, {"seed": 2})
    statuses = {m.event: m.status for m in messages(engines, job_id)}
    assert statuses == {"progress": "superseded", "completed": "pending"}


def test_a_refused_completion_writes_no_message(engines: Engines, hook: Receiver) -> None:
    job_id = submit(engines, hook.url, "started,completed")
    quick = WorkQueue(engines, lease_s=0.05)
    quick.claim("lost-worker", "m/a", "k", 1)
    time.sleep(0.1)
    assert quick.reap() == [job_id]  # presumed dead: back in the queue
    queue = WorkQueue(engines, lease_s=30)
    queue.claim("second-worker", "m/a", "k", 1)
    assert not queue.complete("lost-worker", job_id, {"seed": 1})  # refused: no message
    assert queue.complete("second-worker", job_id, {"seed": 2})
    with engines.write.begin() as conn:  # even a stray second attempt to announce it is a no-op
        outbox.on_jobs(conn, [job_id], outbox.COMPLETED)
    events = [m.event for m in messages(engines, job_id)]
    assert events.count("completed") == 1 and events.count("started") == 2
    with engines.read.connect() as conn:
        [payload] = conn.execute(
            select(webhook_outbox.c.payload).where(
                webhook_outbox.c.job_id == job_id, webhook_outbox.c.event == "completed"
            )
        ).scalars()
    assert payload["payload"] == {"seed": 2}


def test_start_deadline_fails_the_job_and_announces_it(engines: Engines, hook: Receiver) -> None:
    job_id = submit(engines, hook.url, deadline=0.05)
    time.sleep(0.1)
    queue = WorkQueue(engines, lease_s=30)
    assert queue.claim("w1", "m/a", "k", 1) == []  # past its deadline: never started
    job = JobStore(engines, priority_step_s=30).get(job_id)
    assert job is not None and job.status == "failed" and job.error_type == "start_timeout"
    [message] = messages(engines, job_id)
    assert message.payload["status"] == "ERROR" and message.payload["error_type"] == "start_timeout"


def test_events_filter(engines: Engines, hook: Receiver) -> None:
    assert outbox.parse_events(None) == ("completed",)
    assert outbox.parse_events("completed, started") == ("started", "completed")
    with pytest.raises(ValueError, match="unknown webhook event 'finished'"):
        outbox.parse_events("finished")
    job_id = run_job(engines, hook.url)  # default: completed only
    assert [m.event for m in messages(engines, job_id)] == ["completed"]
