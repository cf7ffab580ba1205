"""Outages under load: the API SIGKILLed while clients submit, PostgreSQL restarted while jobs
run. Every submission that got a 202 is still there afterwards and completes."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.jobs import wait_done
from tests.services import Postgres, wait_workers
from tests.test_recovery import Stack

MODEL = "test/faults"


class Submitters:
    """Client threads that submit steadily (about 20 a second each) and remember every 202."""

    def __init__(self, base: str, threads: int = 3) -> None:
        self.base = base
        self.accepted: list[str] = []
        self.refused = 0
        self.errors = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, args=(i,)) for i in range(threads)]

    def _run(self, index: int) -> None:
        with httpx.Client(base_url=self.base, timeout=10) as http:
            n = 0
            while not self._stop.is_set():
                n += 1
                try:
                    response = http.post(f"/v1/queue/{MODEL}", json={"prompt": "steps:2", "seed": index * 100000 + n})
                except httpx.TransportError:
                    with self._lock:
                        self.errors += 1  # no answer: the client cannot assume anything
                    time.sleep(0.05)
                    continue
                with self._lock:
                    if response.status_code == 202:
                        self.accepted.append(response.json()["request_id"])
                    else:
                        self.refused += 1
                time.sleep(0.05)

    def __enter__(self) -> Submitters:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()


def all_complete(base: str, ids: list[str]) -> None:
    with httpx.Client(base_url=base, timeout=30) as http:
        for request_id in ids:
            final = wait_done(http, MODEL, request_id, timeout=300)
            assert final["state"] == "succeeded", final


@pytest.fixture
def sqlite_stack(catalogs: tuple[Path, Path]) -> Iterator[Stack]:
    stack = Stack(catalogs[0])
    yield stack
    stack.close()


def test_api_killed_while_clients_submit(sqlite_stack: Stack) -> None:
    stack = sqlite_stack
    stack.start_api()
    stack.start_worker()
    wait_workers(stack.base, 1)
    assert stack.api is not None
    with Submitters(stack.base) as load:
        time.sleep(2)
        stack.api.kill()  # SIGKILL, mid-stream of submissions
        killed_with = len(load.accepted)
        time.sleep(0.5)
        stack.start_api()
        time.sleep(2)
    assert killed_with > 0 and len(load.accepted) > killed_with
    all_complete(stack.base, load.accepted)


def test_postgres_restarted_under_load(postgres: Postgres, catalogs: tuple[Path, Path]) -> None:
    postgres.reset()
    stack = Stack(catalogs[0], store=postgres.url)
    try:
        stack.start_api()
        stack.start_worker()
        wait_workers(stack.base, 1)
        with Submitters(stack.base) as load:
            time.sleep(2)
            postgres.stop("immediate")  # a crash, not a clean shutdown
            time.sleep(1.5)
            postgres.start()
            time.sleep(3)
        assert load.accepted and load.refused > 0  # 503s while it was down; never a false 202
        all_complete(stack.base, load.accepted)
        with httpx.Client(base_url=stack.base, timeout=30) as http:
            assert http.get("/readyz").status_code == 200
            assert http.post(f"/v1/run/{MODEL}", json={"prompt": "after", "seed": 1}).status_code == 200
    finally:
        stack.close()
