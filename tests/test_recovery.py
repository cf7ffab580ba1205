"""Nothing accepted is lost: a worker SIGKILLed mid-job, an API restarted with jobs queued.

Each test runs its own API and worker processes on its own store, because it kills them.
"""

from __future__ import annotations

import os
import signal
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.jobs import result, submit, wait_done, wait_state
from tests.services import Proc, child_env, free_port, wait_http, wait_workers

SLOW = "test/slow-sd"


class Stack:
    """An API and any number of workers on one store, all killable."""

    def __init__(self, catalog: Path, store: str | None = None) -> None:
        self.home = Path(tempfile.mkdtemp(prefix="limner-recovery-"))
        self.catalog = catalog
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        extra = {"LIMNER_STORE": store} if store else {}
        self.env = child_env(self.home, {**extra, "LIMNER_LEASE_S": "2", "LIMNER_HEARTBEAT_S": "0.3"})
        self.procs: list[Proc] = []
        self.api: Proc | None = None

    def start_api(self) -> None:
        self.api = self._spawn(
            ["serve", "--workers", "0", "--port", str(self.port), "--catalog", str(self.catalog)], "api"
        )
        wait_http(f"{self.base}/healthz", self.api)

    def start_replica(self) -> str:
        """Another API process on the same store and storage; its base URL."""
        port = free_port()
        replica = self._spawn(["serve", "--workers", "0", "--port", str(port), "--catalog", str(self.catalog)], "api")
        wait_http(f"http://127.0.0.1:{port}/healthz", replica)
        return f"http://127.0.0.1:{port}"

    def start_worker(self) -> Proc:
        proc = self._spawn(["worker", "--catalog", str(self.catalog)], f"worker{len(self.procs)}")
        return proc

    def _spawn(self, args: list[str], name: str) -> Proc:
        proc = Proc(args, self.env, self.home / f"{name}-{len(self.procs)}.log")
        self.procs.append(proc)
        return proc

    def close(self) -> None:
        for proc in self.procs:
            proc.stop(timeout=10)


@pytest.fixture
def stack(catalogs: tuple[Path, Path]) -> Iterator[Stack]:
    s = Stack(catalogs[0])
    yield s
    s.close()


def test_worker_killed_mid_job_loses_nothing(stack: Stack) -> None:
    stack.start_api()
    first = stack.start_worker()
    wait_workers(stack.base, 1)
    with httpx.Client(base_url=stack.base, timeout=30) as http:
        handle = submit(http, SLOW, {"prompt": "survive", "seed": 5, "num_inference_steps": 400})
        running = wait_state(http, SLOW, handle["request_id"], lambda b: b["progress"].get("step", 0) > 5)
        assert running["state"] == "running" and running["attempts"] == 1
        first.kill()  # SIGKILL: no chance to clean up
        stack.start_worker()
        final = wait_done(http, SLOW, handle["request_id"], timeout=180)
        assert final["state"] == "succeeded"
        assert final["attempts"] == 2
        body = result(http, SLOW, handle["request_id"])
        assert len(body["images"]) == 1 and body["seed"] == 5
        logs = http.get(handle["status_url"], params={"logs": 1}).json()["logs"]
        messages = [line["message"] for line in logs]
        assert any("returned to the queue" in m for m in messages)
        assert messages.count("succeeded") == 1  # completed exactly once
        listed = http.get("/v1/requests", params={"model": SLOW}).json()["requests"]
        assert [r["request_id"] for r in listed] == [handle["request_id"]]


def test_api_restart_keeps_queued_jobs(stack: Stack) -> None:
    stack.start_api()
    assert stack.api is not None
    with httpx.Client(base_url=stack.base, timeout=30) as http:
        handles = [submit(http, "limner/tiny-sd", {"prompt": f"job {i}", "seed": i}) for i in range(6)]
        ready = http.get("/readyz")
        assert ready.status_code == 503 and ready.json()["workers"] == 0  # no worker yet
    stack.api.kill()  # SIGKILL the API with six jobs queued
    stack.start_api()
    stack.start_worker()
    with httpx.Client(base_url=stack.base, timeout=30) as http:
        for handle in handles:
            assert wait_done(http, "limner/tiny-sd", handle["request_id"], timeout=180)["state"] == "succeeded"
        seeds = sorted(result(http, "limner/tiny-sd", h["request_id"])["seed"] for h in handles)
        assert seeds == list(range(6))


def test_serve_starts_and_supervises_its_workers(catalogs: tuple[Path, Path]) -> None:
    home = Path(tempfile.mkdtemp(prefix="limner-serve-"))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = Proc(
        ["serve", "--workers", "1", "--port", str(port), "--catalog", str(catalogs[0])],
        child_env(home),
        home / "serve.log",
    )
    try:
        wait_http(f"{base}/healthz", proc)
        wait_workers(base, 1)
        with httpx.Client(base_url=base, timeout=30) as http:
            handle = submit(http, "limner/tiny-flux", {"prompt": "served", "seed": 1})
            assert wait_done(http, "limner/tiny-flux", handle["request_id"])["state"] == "succeeded"
        workers = [
            int(line.split("pid ")[1].rstrip(")")) for line in proc.output().splitlines() if "started worker" in line
        ]
        assert workers
    finally:
        proc.stop()
    assert not proc.alive()
    # Its workers stop with it.
    for pid in workers:
        deadline = time.monotonic() + 30
        while _running(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _running(pid)


def test_a_killed_server_leaves_no_orphan_workers(catalogs: tuple[Path, Path]) -> None:
    home = Path(tempfile.mkdtemp(prefix="limner-serve-kill-"))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = Proc(
        ["serve", "--workers", "1", "--port", str(port), "--catalog", str(catalogs[0])],
        child_env(home),
        home / "serve.log",
    )
    wait_http(f"{base}/healthz", proc)
    wait_workers(base, 1)
    worker_pid = httpx.get(f"{base}/v1/workers").json()["workers"][0]["pid"]
    os.kill(proc.pid, signal.SIGKILL)  # only the server, not its process group
    proc.popen.wait(timeout=30)
    deadline = time.monotonic() + 30
    while _running(worker_pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _running(worker_pid)
    proc.stop()


def _running(pid: int) -> bool:
    status = Path(f"/proc/{pid}/status")
    try:
        return "zombie" not in status.read_text()
    except FileNotFoundError:
        return False
