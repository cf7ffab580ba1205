"""The whole product on PostgreSQL: API replicas and workers sharing one real server."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import httpx

from tests.jobs import generate, result, sse_events, submit, wait_done, wait_state
from tests.services import Postgres, wait_workers
from tests.test_recovery import Stack


def test_api_and_workers_on_postgres(postgres: Postgres, catalogs: tuple[Path, Path]) -> None:
    postgres.reset()
    stack = Stack(catalogs[0], store=postgres.url)
    try:
        stack.start_api()
        stack.start_worker()
        stack.start_worker()
        wait_workers(stack.base, 2)
        with httpx.Client(base_url=stack.base, timeout=30) as http:
            images = [generate(http, "limner/tiny-sd", {"prompt": f"pg {i}", "seed": i}) for i in range(3)]
            assert [r["seed"] for r in images] == [0, 1, 2]
            # Kill whichever worker holds the slow job: the other one finishes it.
            slow = submit(http, "test/slow-sd", {"prompt": "pg slow", "seed": 1, "num_inference_steps": 400})
            wait_state(http, "test/slow-sd", slow["request_id"], lambda b: b["progress"].get("step", 0) > 3)
            holder = None
            while holder is None:  # the next heartbeat (0.3 s) announces the job
                workers = http.get("/v1/workers").json()["workers"]
                assert len(workers) == 2 and all(w["device"] == "cpu" for w in workers)
                holder = next((w for w in workers if slow["request_id"] in w["current_jobs"]), None)
            assert "test/slow-sd" in holder["models"]
            os.kill(holder["pid"], signal.SIGKILL)  # the worker process itself, not its supervisor
            final = wait_done(http, "test/slow-sd", slow["request_id"], timeout=180)
            assert final["state"] == "succeeded" and final["attempts"] == 2
            assert result(http, "test/slow-sd", slow["request_id"])["images"]
            # Its supervisor replaced it: two workers again, one of them new.
            wait_workers(stack.base, 2)
            pids = {w["pid"] for w in http.get("/v1/workers").json()["workers"]}
            assert holder["pid"] not in pids
    finally:
        stack.close()


def test_a_stream_on_one_replica_follows_a_job_submitted_to_another(
    postgres: Postgres, catalogs: tuple[Path, Path]
) -> None:
    """Replica A never sees the submission nor the worker: progress reaches it through the store
    (PostgreSQL LISTEN/NOTIFY), as it would behind a load balancer."""
    postgres.reset()
    stack = Stack(catalogs[0], store=postgres.url)
    try:
        stack.start_api()  # replica A
        base_b = stack.start_replica()
        stack.start_worker()
        wait_workers(stack.base, 1)
        with httpx.Client(base_url=base_b, timeout=30) as on_b, httpx.Client(base_url=stack.base, timeout=30) as on_a:
            body = {"prompt": "across replicas", "seed": 3, "num_inference_steps": 200}
            handle = submit(on_b, "test/slow-sd", body)
            assert handle["status_url"].startswith(base_b)
            url = f"/v1/queue/test/slow-sd/requests/{handle['request_id']}/status/stream"
            events = sse_events(on_a, url)
            steps = [
                e["progress"]["step"]
                for e in events
                if e["status"] == "IN_PROGRESS" and e["progress"]["stage"] == "denoising"
            ]
            assert len(steps) >= 2 and steps == sorted(steps) and steps[-1] > steps[0]
            assert events[-1]["status"] == "COMPLETED" and not events[-1].get("error")
            assert result(on_a, "test/slow-sd", handle["request_id"])["seed"] == 3
    finally:
        stack.close()
