"""Client retries against a real HTTP server on loopback that answers 503/429 (or drops the
connection) before the real answer: backoff, Retry-After, one Idempotency-Key per submission."""

from __future__ import annotations

import asyncio

import pytest

from limner.client import ApiError, AsyncClient, Client, RetryPolicy
from limner.client.errors import parse_retry_after
from tests.flaky import DROP, Reply, Script, flaky_server

FAST = RetryPolicy(attempts=5, base_s=0.01, max_s=0.05)
SUBMITTED = Reply(
    202,
    {"request_id": "req-1", "status_url": "s", "response_url": "r", "cancel_url": "c"},
    {"X-Limner-Request-Id": "req-1"},
)
RESULT = Reply(200, {"images": [{"url": "http://x/1.png", "content_type": "image/png", "width": 8, "height": 8}]})


def busy(status: int, retry_after: str | None = None, error_type: str = "store_unavailable") -> Reply:
    headers = {"Retry-After": retry_after} if retry_after else {}
    body = {"detail": [{"loc": [], "msg": "busy", "type": error_type}], "error_type": error_type}
    return Reply(status, body, headers)


def test_submit_retries_503_and_429_with_one_idempotency_key() -> None:
    script = Script({"POST /v1/queue/a/b": [busy(503, retry_after="1"), busy(429), DROP, SUBMITTED]})
    with flaky_server(script) as base, Client(base, retry=FAST) as client:
        handle = client.submit("a/b", {"prompt": "x"})
    assert handle.request_id == "req-1"
    attempts = [s for s in script.seen if s.method == "POST"]
    assert len(attempts) == 4
    keys = {s.headers["Idempotency-Key"] for s in attempts}
    assert len(keys) == 1 and keys.pop().startswith("sdk-")  # a retried submit never queues twice
    # Retry-After: 1 was honoured although the policy's own backoff is a few milliseconds.
    assert attempts[1].at - attempts[0].at >= 1.0


def test_retries_stop_after_the_policy_and_on_final_answers() -> None:
    script = Script(
        {
            "GET /v1/queue/a/b/requests/r1": [busy(503)],
            "GET /v1/queue/a/b/requests/r2": [busy(503, error_type="model_unavailable")],
            "GET /v1/queue/a/b/requests/r3": [busy(503), RESULT],
            "GET /v1/queue/a/b/requests/r4": [Reply(422, {"detail": [{"loc": ["body", "x"], "msg": "bad"}]})],
        }
    )
    with flaky_server(script) as base, Client(base, retry=RetryPolicy(attempts=3, base_s=0.01)) as client:
        with pytest.raises(ApiError) as down:
            client.result("a/b", "r1")
        assert down.value.status_code == 503 and down.value.error_type == "store_unavailable"
        with pytest.raises(ApiError) as failed:
            client.result("a/b", "r2")  # how the job ended: asking again changes nothing
        assert failed.value.error_type == "model_unavailable" and failed.value.request_id == "r2"
        assert client.result("a/b", "r3").raw["images"][0]["width"] == 8
        with pytest.raises(ApiError) as bad:
            client.result("a/b", "r4")
        assert bad.value.status_code == 422
    counts = {f"r{i}": sum(s.path.endswith(f"/r{i}") for s in script.seen) for i in range(1, 5)}
    assert counts == {"r1": 3, "r2": 1, "r3": 2, "r4": 1}


def test_connection_refused_is_retried_then_reported() -> None:
    with flaky_server(Script({})) as base:
        pass  # the port is closed again
    with Client(base, retry=RetryPolicy(attempts=2, base_s=0.01)) as client, pytest.raises(ApiError) as caught:
        client.models()
    assert caught.value.status_code == 0 and caught.value.error_type == "connection_error"


def test_async_client_retries_the_same_way() -> None:
    script = Script(
        {
            "POST /v1/queue/a/b": [DROP, busy(429, retry_after="0"), SUBMITTED],
            "GET /v1/queue/a/b/requests/req-1": [busy(503), RESULT],
        }
    )

    async def scenario(base: str) -> None:
        async with AsyncClient(base, retry=FAST) as client:
            handle = await client.submit("a/b", {"prompt": "x"})
            assert handle.request_id == "req-1"
            result = await handle.result()
            assert result.raw["images"][0]["content_type"] == "image/png"

    with flaky_server(script) as base:
        asyncio.run(scenario(base))
    posts = [s for s in script.seen if s.method == "POST"]
    assert len(posts) == 3 and len({s.headers["Idempotency-Key"] for s in posts}) == 1


def test_backoff_grows_with_jitter_and_honours_retry_after() -> None:
    policy = RetryPolicy(attempts=6, base_s=0.5, max_s=4.0)
    for attempt, ceiling in ((1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (5, 4.0)):
        delays = [policy.delay(attempt) for _ in range(200)]
        assert all(0 <= d <= ceiling for d in delays)
        assert len(set(delays)) > 100  # jittered, not a fixed schedule
    assert all(policy.delay(1, retry_after_s=3.0) >= 3.0 for _ in range(50))
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past
    assert parse_retry_after("soon") is None
