"""The whole product on PostgreSQL: an API and two workers sharing one real server."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import httpx

from tests.jobs import generate, result, submit, wait_done, wait_state
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
