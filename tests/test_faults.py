"""A model that raises, runs out of memory, hangs or kills its process: the job fails with a
clear error type (or retries, per policy), nothing loops forever, and the worker recovers."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.jobs import generate, submit, wait_done
from tests.services import wait_workers
from tests.test_recovery import Stack

FAULTS = "test/faults"


@pytest.fixture(scope="module")
def faulty(catalogs: tuple[Path, Path]) -> Iterator[Stack]:
    stack = Stack(catalogs[0])
    stack.start_api()
    stack.start_worker()  # `limner worker`: a supervisor and one worker process
    wait_workers(stack.base, 1)
    yield stack
    stack.close()


@pytest.fixture
def http(faulty: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=faulty.base, timeout=30) as client:
        yield client


def worker_pids(http: httpx.Client) -> set[int]:
    return {w["pid"] for w in http.get("/v1/workers").json()["workers"]}


def test_a_model_that_raises(http: httpx.Client) -> None:
    final = wait_done(http, FAULTS, submit(http, FAULTS, {"prompt": "raise"})["request_id"])
    assert (final["state"], final["error_type"], final["attempts"]) == ("failed", "model_error", 1)
    assert "injected fault" in final["error"]
    assert generate(http, FAULTS, {"prompt": "fine", "seed": 1})["images"]


def test_out_of_memory_is_retried_then_fails(http: httpx.Client) -> None:
    final = wait_done(http, FAULTS, submit(http, FAULTS, {"prompt": "oom"})["request_id"])
    assert (final["state"], final["error_type"]) == ("failed", "out_of_memory")
    assert final["attempts"] == 2  # the entry's max_attempts
    assert generate(http, FAULTS, {"prompt": "fine", "seed": 2})["images"]


def test_a_hung_model_times_out_and_the_worker_is_replaced(http: httpx.Client) -> None:
    before = worker_pids(http)
    final = wait_done(http, FAULTS, submit(http, FAULTS, {"prompt": "hang"})["request_id"], timeout=120)
    assert (final["state"], final["error_type"]) == ("failed", "timeout")
    assert "timeout" in final["error"]
    # The hung process exited; its supervisor started a fresh one, which serves the next job.
    assert generate(http, FAULTS, {"prompt": "fine", "seed": 3})["images"]
    assert worker_pids(http).isdisjoint(before)


def test_a_poison_job_that_kills_its_worker_stops_after_its_attempts(http: httpx.Client) -> None:
    handle = submit(http, FAULTS, {"prompt": "exit"})
    final = wait_done(http, FAULTS, handle["request_id"], timeout=180)
    assert (final["state"], final["error_type"], final["attempts"]) == ("failed", "worker_lost", 2)
    assert "out of attempts" in final["error"]
    logs = [line["message"] for line in http.get(handle["status_url"], params={"logs": 1}).json()["logs"]]
    assert sum("claimed by" in m for m in logs) == 2
    deadline = time.monotonic() + 60
    while not worker_pids(http) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert generate(http, FAULTS, {"prompt": "fine", "seed": 4})["images"]


def test_cancel_reaches_a_running_job_of_any_family(http: httpx.Client) -> None:
    handle = submit(http, FAULTS, {"prompt": "steps:400"})
    deadline = time.monotonic() + 60
    while http.get(handle["status_url"]).json()["progress"].get("step", 0) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    http.put(handle["cancel_url"])
    final = wait_done(http, FAULTS, handle["request_id"])
    assert final["state"] == "canceled" and final["progress"]["step"] < 400
