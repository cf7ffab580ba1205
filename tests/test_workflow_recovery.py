"""Kill every process in the middle of a workflow or a batch: it still ends exactly once.

The state machine lives in the store: a workflow's steps are jobs, and a batch's rows are rows.
Each test runs its own API and worker on its own store, and SIGKILLs both mid-run."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.jobs import wait_done, wait_state
from tests.receiver import receiver
from tests.services import wait_workers
from tests.test_recovery import Stack


@pytest.fixture
def stack(catalogs: tuple[Path, Path]) -> Iterator[Stack]:
    s = Stack(catalogs[0])
    yield s
    s.close()


def restart_everything(stack: Stack, worker: Any) -> None:
    assert stack.api is not None
    worker.kill()
    stack.api.kill()
    stack.start_api()
    stack.start_worker()
    wait_workers(stack.base, 1)


def test_a_workflow_survives_its_api_and_worker_killed_mid_step(stack: Stack) -> None:
    stack.start_api()
    worker = stack.start_worker()
    wait_workers(stack.base, 1)
    with receiver() as hook, httpx.Client(base_url=stack.base, timeout=30) as http:
        answer = http.post("/v1/queue/test/three-steps", params={"webhook_url": hook.url}, json={})
        assert answer.status_code == 202, answer.text
        workflow = answer.json()["request_id"]
        running = wait_state(
            http,
            "test/three-steps",
            workflow,
            lambda b: any(s["id"] == "long" and s["status"] == "running" for s in b.get("steps", [])),
        )
        long_job = next(s["request_id"] for s in running["steps"] if s["id"] == "long")
        wait_state(http, "test/slow-sd", long_job, lambda b: b["progress"].get("step", 0) > 3)
        restart_everything(stack, worker)
        done = wait_done(http, "test/three-steps", workflow, timeout=240)
        assert done["state"] == "succeeded", done
        jobs = http.get("/v1/requests", params={"parent": workflow}).json()["requests"]
        assert sorted(r["step"] for r in jobs) == ["first", "last", "long"]  # one job per step, none again
        attempts = {r["step"]: r["attempts"] for r in jobs}
        assert attempts["first"] == 1 and attempts["long"] == 2 and attempts["last"] == 1
        hook.wait_for(lambda seen: any(r.json.get("request_id") == workflow for r in seen))
        time.sleep(1.0)  # a second completion message would have been sent by now
        completed = [r.json for r in hook.for_request(workflow) if r.json["type"] == "request.completed"]
        assert len(completed) == 1 and completed[0]["status"] == "OK", completed


def test_a_batch_survives_its_api_and_worker_killed_mid_run(stack: Stack) -> None:
    stack.start_api()
    worker = stack.start_worker()
    wait_workers(stack.base, 1)
    rows = [{"custom_id": f"sku-{i}", "input": {"prompt": "steps:8", "seed": i}} for i in range(24)]
    with httpx.Client(base_url=stack.base, timeout=30) as http:
        batch = http.post("/v1/batches", json={"model": "test/faults", "rows": rows, "max_concurrency": 3}).json()
        deadline = time.monotonic() + 120
        while http.get(f"/v1/batches/{batch['id']}").json()["request_counts"]["succeeded"] < 4:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        restart_everything(stack, worker)
        deadline = time.monotonic() + 240
        while (state := http.get(f"/v1/batches/{batch['id']}").json())["status"] != "completed":
            assert time.monotonic() < deadline, state
            time.sleep(0.2)
        assert state["request_counts"]["succeeded"] == 24
        out = [line for line in http.get(state["output_url"]).text.splitlines() if line]
        assert len(out) == 24  # one output line per row
        jobs = http.get("/v1/requests", params={"batch": batch["id"], "limit": 100}).json()["requests"]
        assert len(jobs) == 24 and len({r["request_id"] for r in jobs}) == 24  # every row admitted once
        assert all(r["state"] == "succeeded" for r in jobs)
        # The run that was cut short ran again on the new worker; the rest ran once.
        assert sum(r["attempts"] for r in jobs) <= 24 + 3
