"""Webhooks survive crashes: a worker SIGKILLed mid-job still yields exactly one completed
message, and an API killed while a delivery waits for its retry delivers it after a restart."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.jobs import wait_done, wait_state
from tests.receiver import Receiver, receiver
from tests.services import WEBHOOK_SECRET, wait_workers
from tests.test_recovery import Stack

SLOW = "test/slow-sd"


@pytest.fixture
def stack(catalogs: tuple[Path, Path]) -> Iterator[Stack]:
    s = Stack(catalogs[0])
    yield s
    s.close()


@pytest.fixture
def hook() -> Iterator[Receiver]:
    with receiver() as r:
        yield r


def test_a_killed_worker_still_yields_one_completed_webhook(stack: Stack, hook: Receiver) -> None:
    stack.start_api()
    first = stack.start_worker()
    wait_workers(stack.base, 1)
    with httpx.Client(base_url=stack.base, timeout=30) as http:
        response = http.post(
            f"/v1/queue/{SLOW}",
            json={"prompt": "crash", "seed": 4, "num_inference_steps": 400},
            params={"webhook_url": hook.url, "webhook_events": "started,completed"},
        )
        request_id = response.json()["request_id"]
        wait_state(http, SLOW, request_id, lambda b: b["progress"].get("step", 0) > 5)
        first.kill()
        stack.start_worker()
        assert wait_done(http, SLOW, request_id, timeout=180)["attempts"] == 2
        hook.wait_for(lambda r: any(m.json["type"] == "request.completed" for m in r))
        time.sleep(1.0)  # room for a duplicate to arrive, if there were one
        messages = hook.verified(WEBHOOK_SECRET, request_id)
        assert [m["type"] for m in messages].count("request.completed") == 1
        assert [m["payload"]["attempt"] for m in messages if m["type"] == "request.started"] == [1, 2]
        assert messages[-1]["status"] == "OK" and messages[-1]["payload"]["seed"] == 4


def test_an_api_restart_mid_retry_still_delivers(stack: Stack, hook: Receiver) -> None:
    stack.env["LIMNER_WEBHOOK_RETRY_SCHEDULE"] = "0,4"  # the retry comes after the restart
    hook.script = [(500, {})]
    stack.start_api()
    assert stack.api is not None
    stack.start_worker()
    wait_workers(stack.base, 1)
    with httpx.Client(base_url=stack.base, timeout=30) as http:
        response = http.post("/v1/queue/test/faults", json={"prompt": "fine"}, params={"webhook_url": hook.url})
        request_id = response.json()["request_id"]
        wait_done(http, "test/faults", request_id)
        hook.wait_for(lambda r: len(r) == 1)
        while not _deliveries(http, request_id)[0]["attempt_log"]:  # the failed attempt is recorded
            time.sleep(0.05)
    stack.api.kill()  # SIGKILL while the delivery waits for its second attempt
    stack.start_api()
    seen = hook.wait_for(lambda r: len(r) == 2)
    assert seen[0].id == seen[1].id
    with httpx.Client(base_url=stack.base, timeout=30) as http:
        [delivery] = _deliveries(http, request_id)
    assert delivery["status"] == "delivered"
    assert [a["outcome"] for a in delivery["attempt_log"]] == ["retry", "delivered"], delivery
    assert delivery["attempt_log"][0]["dispatcher"] != delivery["attempt_log"][1]["dispatcher"]


def _deliveries(http: httpx.Client, request_id: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = http.get("/v1/webhooks/deliveries", params={"request_id": request_id}).json()[
        "deliveries"
    ]
    return found
