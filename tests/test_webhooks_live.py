"""Webhooks through the running product: a live API and worker, a real receiver on loopback,
signatures verified with the official ``standardwebhooks`` package."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from limner import progress
from tests.jobs import fetch_image, submit, wait_done
from tests.receiver import Receiver, receiver
from tests.services import WEBHOOK_SECRET

SD = "limner/tiny-sd"
SLOW = "test/slow-sd"


@pytest.fixture
def hook() -> Iterator[Receiver]:
    with receiver() as r:
        yield r


def queue_with(http: httpx.Client, model: str, body: dict[str, Any], **params: str) -> dict[str, Any]:
    response = http.post(f"/v1/queue/{model}", json=body, params=params)
    assert response.status_code == 202, response.text
    handle: dict[str, Any] = response.json()
    return handle


def completed(hook: Receiver, request_id: str) -> list[dict[str, Any]]:
    hook.wait_for(lambda _r: any(m.json["type"] == "request.completed" for m in hook.for_request(request_id)))
    return hook.verified(WEBHOOK_SECRET, request_id)


def test_every_event_arrives_signed_with_urls_that_work(http: httpx.Client, hook: Receiver) -> None:
    handle = queue_with(
        http,
        SLOW,
        {"prompt": "hooked", "seed": 3, "num_inference_steps": 40},
        webhook_url=hook.url,
        webhook_events="started,progress,completed",
    )
    request_id = handle["request_id"]
    wait_done(http, SLOW, request_id)
    messages = completed(hook, request_id)
    types = [m["type"] for m in messages]
    assert types[0] == "request.started" and types[-1] == "request.completed"
    assert types.count("request.completed") == 1 and "request.progress" in types
    for message in messages:
        if message["type"] == "request.progress":
            assert set(progress.KEYS) <= set(message["payload"]) and message["status"] == "IN_PROGRESS"
    final = messages[-1]
    assert final["status"] == "OK" and final["request_id"] == final["gateway_request_id"] == request_id
    image = fetch_image(http, final["payload"]["images"][0]["url"])  # a URL, not a storage reference
    assert image.size == (64, 64)
    # Every message and its attempts are visible through the API.
    listed = http.get(f"/v1/queue/{SLOW}/requests/{request_id}/webhooks").json()
    assert listed["webhook_url"] == hook.url and listed["events"] == "started,progress,completed"
    done = [d for d in listed["deliveries"] if d["event"] == "completed"]
    assert len(done) == 1 and done[0]["id"] == hook.for_request(request_id)[-1].id
    assert done[0]["attempt_log"][0]["status_code"] == 200


def test_fal_webhook_reports_errors_the_fal_way(http: httpx.Client, hook: Receiver) -> None:
    handle = queue_with(http, "test/faults", {"prompt": "raise"}, fal_webhook=hook.url)
    wait_done(http, "test/faults", handle["request_id"])
    [message] = completed(hook, handle["request_id"])
    assert message["status"] == "ERROR" and message["error_type"] == "model_error"
    assert "injected fault" in message["error"]
    assert message["payload"]["detail"][0]["type"] == "model_error"


def test_replay_through_the_api(http: httpx.Client, hook: Receiver) -> None:
    handle = queue_with(http, SD, {"prompt": "again", "seed": 1}, webhook_url=hook.url)
    wait_done(http, SD, handle["request_id"])
    completed(hook, handle["request_id"])
    listed = http.get("/v1/webhooks/deliveries", params={"request_id": handle["request_id"]}).json()
    [delivery] = listed["deliveries"]
    replay = http.post(f"/v1/webhooks/deliveries/{delivery['id']}/replay")
    assert replay.status_code == 202 and replay.json()["status"] == "pending"
    hook.wait_for(lambda _r: len(hook.for_request(handle["request_id"])) == 2)
    first, second = hook.for_request(handle["request_id"])
    assert first.id == second.id == delivery["id"]
    assert http.post("/v1/webhooks/deliveries/msg_nope/replay").status_code == 404
    assert http.get("/v1/webhooks/deliveries", params={"status": "odd"}).status_code == 422


@pytest.mark.parametrize(
    "url",
    [
        "http://10.1.2.3/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://192.168.0.10/hook",
        "http://[::1]:8080/hook",
        "http://[::ffff:127.0.0.1]:8080/hook",
        "ftp://example.com/hook",
    ],
)
def test_webhook_urls_into_private_networks_are_refused(http: httpx.Client, url: str) -> None:
    for field in ("webhook_url", "fal_webhook"):
        response = http.post(f"/v1/queue/{SD}", json={"prompt": "x"}, params={field: url})
        assert response.status_code == 422, response.text
        detail = response.json()["detail"][0]
        assert detail["loc"] == ["query", field] and field in detail["msg"]


def test_bad_options_are_refused_by_name(http: httpx.Client, hook: Receiver) -> None:
    cases = [
        ({"webhook_url": hook.url, "webhook_events": "finished"}, {}, ["query", "webhook_events"]),
        ({"webhook_events": "started"}, {}, ["query", "webhook_events"]),
        ({"start_deadline_s": "-1"}, {}, ["query", "start_deadline_s"]),
        ({}, {"X-Limner-Start-Deadline": "soon"}, ["header", "x-limner-start-deadline"]),
        ({"result_ttl_s": "0"}, {}, ["query", "result_ttl_s"]),
    ]
    for params, headers, loc in cases:
        response = http.post(f"/v1/queue/{SD}", json={"prompt": "x"}, params=params, headers=headers)
        assert response.status_code == 422, (params, response.text)
        assert response.json()["detail"][0]["loc"] == loc


def test_cancel_while_queued_sends_the_completion(http: httpx.Client, hook: Receiver) -> None:
    handle = queue_with(http, "test/unserved", {"prompt": "never"}, webhook_url=hook.url)
    assert http.put(handle["cancel_url"]).status_code == 202
    [message] = completed(hook, handle["request_id"])
    assert message["status"] == "ERROR" and message["state"] == "canceled"


def test_submit_without_options_is_unchanged(http: httpx.Client) -> None:
    handle = submit(http, SD, {"prompt": "plain", "seed": 2})
    wait_done(http, SD, handle["request_id"])
    listed = http.get(f"/v1/queue/{SD}/requests/{handle['request_id']}/webhooks").json()
    assert listed["deliveries"] == [] and listed["webhook_url"] is None


def test_a_cache_hit_sends_its_completed_webhook_too(http: httpx.Client, hook: Receiver) -> None:
    body = {"prompt": "cached and announced", "seed": 4242}
    first = queue_with(http, SD, body, webhook_url=hook.url)
    wait_done(http, SD, first["request_id"])
    completed(hook, first["request_id"])
    second = queue_with(http, SD, body, webhook_url=hook.url)  # answered from the exact cache
    status = wait_done(http, SD, second["request_id"])
    assert status["state"] == "succeeded"
    result = http.get(second["response_url"]).json()
    assert result["cache"]["hit"] == "exact" and result["cache"]["source_request_id"] == first["request_id"]
    [message] = completed(hook, second["request_id"])
    assert message["status"] == "OK" and message["payload"]["cache"]["hit"] == "exact"
