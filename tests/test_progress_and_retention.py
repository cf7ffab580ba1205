"""What clients rely on, through the live server: one progress contract (status route, SSE,
WebSocket), start deadlines, result retention with expiry, and the listing's filters."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from limner import progress
from limner.progress import Stage
from tests.conftest import Live
from tests.jobs import result, sse_events, submit, wait_done, wait_state

SD = "limner/tiny-sd"
SLOW = "test/slow-sd"


def ws_url(live: Live, model: str, request_id: str) -> str:
    return f"{live.base.replace('http://', 'ws://')}/v1/queue/{model}/requests/{request_id}/status/ws"


def ws_messages(url: str) -> tuple[list[dict[str, Any]], int | None]:
    """Every message until the server closes, and its close code."""
    out: list[dict[str, Any]] = []
    with connect(url, open_timeout=10) as socket:
        try:
            while True:
                out.append(json.loads(socket.recv(timeout=60)))
        except ConnectionClosed as closed:
            return out, closed.rcvd.code if closed.rcvd else None


def test_the_websocket_streams_the_status_and_closes_after_the_end(http: httpx.Client, live: Live) -> None:
    # Progress writes coalesce within 0.2 s: give denoising long enough to be seen.
    handle = submit(http, SLOW, {"prompt": "ws", "seed": 2, "num_inference_steps": 200})
    messages, code = ws_messages(ws_url(live, SLOW, handle["request_id"]))
    assert code == 1000
    assert messages[-1]["status"] == "COMPLETED" and messages[-1]["state"] == "succeeded"
    assert all(m["status"] != "COMPLETED" for m in messages[:-1])
    for message in messages:
        assert set(progress.KEYS) <= set(message["progress"])
    stages = [m["progress"]["stage"] for m in messages]
    assert Stage.DENOISING in stages
    # The same objects as the status route.
    assert messages[-1] == http.get(handle["status_url"]).json()


def test_the_websocket_shows_the_queue_position_and_a_cancel(http: httpx.Client, live: Live) -> None:
    handle = submit(http, "test/unserved", {"prompt": "wait"})
    url = ws_url(live, "test/unserved", handle["request_id"])
    with connect(url, open_timeout=10) as socket:
        first = json.loads(socket.recv(timeout=30))
        assert first["status"] == "IN_QUEUE" and first["queue_position"] >= 0
        assert first["progress"]["stage"] == progress.QUEUED and first["progress"]["eta_s"] is None
        http.put(handle["cancel_url"])
        last = first
        try:
            while True:
                last = json.loads(socket.recv(timeout=30))
        except ConnectionClosed:
            pass
    assert last["state"] == "canceled"
    with connect(ws_url(live, "test/unserved", "nope"), open_timeout=10) as socket, pytest.raises(ConnectionClosed):
        socket.recv(timeout=10)


def test_sse_and_status_follow_the_contract(http: httpx.Client) -> None:
    # Enough steps that denoising outlasts the progress writes' 0.2 s throttle on a fast machine.
    handle = submit(http, SLOW, {"prompt": "sse", "seed": 3, "num_inference_steps": 200})
    events = sse_events(http, handle["status_url"] + "/stream?logs=1")
    for event in events:
        assert set(progress.KEYS) <= set(event["progress"])
    assert all({"timestamp", "level", "source", "message"} <= set(line) for line in events[-1]["logs"])
    running = [
        e["progress"] for e in events if e["progress"]["stage"] == progress.Stage.DENOISING and e["progress"]["step"]
    ]
    assert running and all(p["total"] == 200 for p in running)
    assert any(p["eta_s"] is not None and p["eta_s"] >= 0 for p in running[1:]) or len(running) == 1


def test_a_job_not_started_in_time_fails_as_start_timeout(http: httpx.Client) -> None:
    response = http.post("/v1/queue/test/unserved", json={"prompt": "late"}, headers={"X-Limner-Start-Deadline": "0.3"})
    handle = response.json()
    final = wait_done(http, "test/unserved", handle["request_id"], timeout=30)
    assert final["state"] == "failed" and final["error_type"] == "start_timeout"
    assert final["start_deadline_at"] > final["created_at"] and final["started_at"] is None
    answer = http.get(handle["response_url"])
    assert answer.status_code == 504 and answer.json()["error_type"] == "start_timeout"


def test_results_expire_and_their_files_go(http: httpx.Client) -> None:
    response = http.post(f"/v1/queue/{SD}", json={"prompt": "brief", "seed": 8}, params={"result_ttl_s": "1"})
    handle = response.json()
    wait_done(http, SD, handle["request_id"])
    body = result(http, SD, handle["request_id"])
    url = body["images"][0]["url"]
    assert http.get(url).status_code == 200
    status = http.get(handle["status_url"]).json()
    assert status["expires_at"] == pytest.approx(status["finished_at"] + 1.0)
    gone = wait_state(http, SD, handle["request_id"], lambda b: b.get("expired") is True, timeout=30)
    assert gone["state"] == "succeeded"
    answer = http.get(handle["response_url"])
    assert answer.status_code == 410 and answer.json()["error_type"] == "result_expired"
    assert "expired" in answer.json()["detail"][0]["msg"]
    deadline = time.monotonic() + 30
    while http.get(url).status_code != 404:  # the cleanup task deletes the file
        assert time.monotonic() < deadline
        time.sleep(0.1)
    logs = http.get(handle["status_url"], params={"logs": 1}).json()["logs"]
    assert any(line["message"] == "result expired" and line["source"] == "retention" for line in logs)


def test_listing_filters(http: httpx.Client) -> None:
    before = time.time()
    high = submit(http, "test/unserved", {"prompt": "hi"}, **{"X-Limner-Priority": "high"})
    low = submit(http, "test/unserved", {"prompt": "lo"}, **{"X-Limner-Priority": "low"})
    try:
        page = http.get("/v1/requests", params={"created_after": before, "model": "test/unserved"}).json()
        assert [r["request_id"] for r in page["requests"]] == [low["request_id"], high["request_id"]]
        only_high = http.get("/v1/requests", params={"created_after": before, "priority": "high"}).json()
        assert [r["request_id"] for r in only_high["requests"]] == [high["request_id"]]
        older = http.get("/v1/requests", params={"created_before": before, "model": "test/unserved"}).json()
        assert high["request_id"] not in {r["request_id"] for r in older["requests"]}
        by_task = http.get("/v1/requests", params={"created_after": before, "task": "text-to-image"}).json()
        assert len(by_task["requests"]) == 2
        assert http.get("/v1/requests", params={"priority": "urgent"}).status_code == 422
        assert http.get("/v1/requests", params={"task": "text-to-smell"}).status_code == 422
    finally:
        http.put(high["cancel_url"])
        http.put(low["cancel_url"])
