"""SIGKILL a worker mid-job, again and again: every accepted job completes exactly once.

Each trial submits a job with a webhook, waits until a worker is running it, SIGKILLs that
worker process (its supervisor replaces it), and checks what a client sees: the job succeeded,
ran twice, has one result and logged one completion; and, once the outbox is drained, that its
webhook receiver got exactly one signed `completed` message. Runs against
`limner serve --workers 2`.

    .venv/bin/python benchmarks/chaos.py --trials 100 [--store postgresql://…]

tests/test_chaos.py runs a few trials of the same code in CI.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import os
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.receiver import Receiver, receiver

from benchmarks.harness import Server, write_result

MODEL = "drill/steps"
CATALOG = """
models:
  - id: drill/steps
    task: text-to-image
    family: faults
    source: builtin://faults
    defaults: {width: 64, height: 64, num_inference_steps: 1}
    runtime: {max_attempts: 5}
"""
SECRET = "whsec_" + base64.b64encode(os.urandom(24)).decode()
FAST_LEASES = {"LIMNER_LEASE_S": "2", "LIMNER_HEARTBEAT_S": "0.3", "LIMNER_STREAM_POLL_S": "0.05"}


def catalog_file() -> Path:
    path = Path(tempfile.mkdtemp(prefix="limner-chaos-")) / "drill.yaml"
    path.write_text(CATALOG)
    return path


def wait_for(predicate: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise TimeoutError(what)


def trial(http: httpx.Client, index: int, hook: Receiver) -> dict[str, Any]:
    """One kill; returns what the client saw."""
    handle = http.post(
        f"/v1/queue/{MODEL}",
        json={"prompt": "steps:60", "seed": index},
        params={"webhook_url": hook.url, "webhook_events": "completed"},
    ).json()
    request_id = handle["request_id"]

    def holder() -> dict[str, Any] | None:
        status = http.get(handle["status_url"]).json()
        if status["state"] != "running" or status["progress"].get("step", 0) < 3:
            return None
        workers = http.get("/v1/workers").json()["workers"]
        return next((w for w in workers if request_id in w["current_jobs"]), None)

    victim = wait_for(holder, 120, "job never ran")
    killed_at = time.monotonic()
    os.kill(victim["pid"], signal.SIGKILL)

    def finished() -> dict[str, Any] | None:
        status: dict[str, Any] = http.get(handle["status_url"], params={"logs": 1}).json()
        return status if status["status"] == "COMPLETED" else None

    final = wait_for(finished, 180, "job never finished")
    recovery_s = time.monotonic() - killed_at
    # Verify the completed message now: standardwebhooks refuses messages over 5 minutes old.
    with contextlib.suppress(TimeoutError):
        hook.wait_for(lambda _: bool(completed_messages(hook, request_id)), timeout=60)
    verified = hook.verified(SECRET, request_id)
    messages = [line["message"] for line in final["logs"]]
    result = http.get(handle["response_url"])
    ok = (
        final["state"] == "succeeded"
        and result.status_code == 200
        and len(result.json()["images"]) == 1
        and messages.count("succeeded") == 1
        and final["attempts"] >= 2
        and any(m["type"] == "request.completed" and m["status"] == "OK" for m in verified)
    )
    return {
        "request_id": request_id,
        "ok": ok,
        "attempts": final["attempts"],
        "recovery_s": recovery_s,
        "completions": messages.count("succeeded"),
        "state": final["state"],
    }


def run_trials(trials: int, store: str | None = None) -> list[dict[str, Any]]:
    env = {
        **FAST_LEASES,
        "LIMNER_CATALOG": str(catalog_file()),
        "LIMNER_WEBHOOK_SECRET": SECRET,
        "LIMNER_WEBHOOK_ALLOW_HOSTS": "127.0.0.1",
    }
    if store:
        env["LIMNER_STORE"] = store
    with receiver() as hook, Server(workers=2, env=env) as server:
        server.wait_ready()
        with httpx.Client(base_url=server.base, timeout=30) as http:
            outcomes = []
            for index in range(trials):
                outcomes.append(trial(http, index, hook))
                # Let the supervisor bring the killed worker back before the next kill.
                wait_for(lambda: len(http.get("/v1/workers").json()["workers"]) >= 2, 120, "worker not replaced")
            listed = http.get("/v1/requests", params={"model": MODEL, "limit": 500}).json()["requests"]
            count_webhooks(hook, outcomes)
    # No job was lost and none was duplicated: exactly the submitted ids, each once.
    assert sorted(r["request_id"] for r in listed) == sorted(o["request_id"] for o in outcomes)
    return outcomes


def completed_messages(hook: Receiver, request_id: str) -> list[Any]:
    return [m for m in hook.for_request(request_id) if m.json.get("type") == "request.completed"]


def count_webhooks(hook: Receiver, outcomes: list[dict[str, Any]]) -> None:
    """After the last trial (and a moment more, for late duplicates), record each job's count
    of completed messages; a trial is good only with exactly one (each verified on arrival)."""
    time.sleep(1.0)
    for outcome in outcomes:
        outcome["webhooks"] = len(completed_messages(hook, outcome["request_id"]))
        outcome["ok"] = outcome["ok"] and outcome["webhooks"] == 1


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--store", default=None)
    args = parser.parse_args()
    started = time.monotonic()
    outcomes = run_trials(args.trials, args.store)
    good = sum(o["ok"] for o in outcomes)
    recovery = sorted(o["recovery_s"] for o in outcomes)
    print(
        f"{good}/{len(outcomes)} trials: completed exactly once, with one completed webhook, after a SIGKILL mid-job "
        f"(median recovery {recovery[len(recovery) // 2]:.1f} s, worst {recovery[-1]:.1f} s, "
        f"{time.monotonic() - started:.0f} s in all)"
    )
    write_result(
        "chaos",
        {
            "store": args.store or "sqlite",
            "trials": len(outcomes),
            "exactly_once": good,
            "median_recovery_s": recovery[len(recovery) // 2],
            "worst_recovery_s": recovery[-1],
            "outcomes": outcomes,
        },
    )
    if good != len(outcomes):
        sys.exit(1)


if __name__ == "__main__":
    main()
