"""The Ray executor end to end: a real `limner serve --executor ray` against one Ray instance
per test session, jobs through HTTP, batching, multiplexing, cancel, and a replica killed
mid-job. The job store stays the state of record throughout."""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from limner.catalog import load_catalog
from limner.executors import RAY_MISSING, ray_missing
from limner.executors.ray_serve import Group, app_of_replica
from limner.settings import Settings
from tests.jobs import fetch_image, result, submit, wait_done, wait_state
from tests.services import Proc, child_env, free_port, wait_http, wait_workers

needs_ray = pytest.mark.skipif(
    ray_missing() is not None and os.environ.get("LIMNER_REQUIRE_RAY") != "1",
    reason="Ray is not installed (pip install 'limner[ray]')",
)

RAY_CATALOG = """
models:
  # Same runtime group as limner/tiny-sd and tiny-flux (no GPU, batches of 8, no wait), so all
  # of them share one Ray deployment and its two replicas.
  - id: raytest/steps
    task: text-to-image
    family: faults
    source: builtin://faults
    defaults: {width: 64, height: 64, num_inference_steps: 1}
    runtime: {max_batch_size: 8, max_attempts: 3}
  # Two models with their own weights (a revision each) for the multiplexing test.
  - id: raytest/paint-a
    task: text-to-image
    family: faults
    source: builtin://faults
    revision: a
    defaults: {width: 64, height: 64, num_inference_steps: 1}
    runtime: {max_batch_size: 8}
  - id: raytest/paint-b
    task: text-to-image
    family: faults
    source: builtin://faults
    revision: b
    defaults: {width: 64, height: 64, num_inference_steps: 1}
    runtime: {max_batch_size: 8}
"""


# -- without a cluster ------------------------------------------------------------------------


def test_entries_group_into_deployments_by_their_ray_options() -> None:
    catalog = load_catalog()
    sd, flux = catalog.get("limner/tiny-sd"), catalog.get("limner/tiny-flux")
    assert Group.of(sd) == Group.of(flux) == Group(num_gpus=0, max_batch_size=8, batch_wait_ms=0)
    assert Group.of(sd, batching=False).max_batch_size == 1
    assert Group.of(sd).app_name("limner-x") == "limner-x-g0-b8-w0"
    assert app_of_replica("SERVE_REPLICA::limner-x-g0-b8-w0#replica#ab12") == "limner-x-g0-b8-w0"
    assert app_of_replica("vm-123-abc") is None


def test_replica_bounds_are_checked() -> None:
    with pytest.raises(ValueError, match="ray_min_replicas"):
        Settings(ray_min_replicas=3, ray_max_replicas=2)


def test_executor_ray_without_ray_installed_says_what_to_do(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import limner.executors
    from limner.cli.main import app

    monkeypatch.setattr(limner.executors, "ray_missing", lambda: RAY_MISSING)
    outcome = CliRunner().invoke(app, ["serve", "--executor", "ray", "--home", str(tmp_path)])
    assert outcome.exit_code == 2
    assert "pip install 'limner[ray]'" in outcome.output


# -- on a Ray cluster ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def ray_address() -> Iterator[str]:
    """One Ray instance for the session, started here and stopped at the end."""
    import ray
    from benchmarks.harness import start_ray

    address = start_ray(num_cpus=2)
    yield address
    ray.shutdown()


class RayLive:
    def __init__(self, base: str, api: Proc) -> None:
        self.base = base
        self.api = api

    def replicas(self, http: httpx.Client) -> list[dict[str, Any]]:
        workers: list[dict[str, Any]] = http.get("/v1/workers").json()["workers"]
        return [w for w in workers if app_of_replica(w["id"])]


@pytest.fixture(scope="module")
def ray_live(ray_address: str) -> Iterator[RayLive]:
    """`limner serve --executor ray` with two replicas on the session's Ray."""
    home = Path(tempfile.mkdtemp(prefix="limner-ray-"))
    catalog = home / "ray.yaml"
    catalog.write_text(RAY_CATALOG)
    env = child_env(
        home,
        {
            "LIMNER_RAY_MIN_REPLICAS": "2",
            "LIMNER_RAY_MAX_REPLICAS": "2",
            "LIMNER_RAY_NUM_CPUS": "0.5",
            "LIMNER_RAY_MODELS_PER_REPLICA": "8",
        },
    )
    port = free_port()
    api = Proc(
        ["serve", "--executor", "ray", "--ray-address", ray_address, "--port", str(port), "--catalog", str(catalog)],
        env,
        home / "serve.log",
    )
    base = f"http://127.0.0.1:{port}"
    wait_http(f"{base}/healthz", api)
    wait_workers(base, 1)  # the dispatcher; replicas start with the first job
    yield RayLive(base, api)
    api.stop()


@pytest.fixture
def http(ray_live: RayLive) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=ray_live.base, timeout=30) as client:
        yield client


def ran_on(http: httpx.Client, handle: dict[str, Any]) -> list[str]:
    """The replicas a job ran on, from its log."""
    logs = http.get(handle["status_url"], params={"logs": 1}).json()["logs"]
    return [line["message"].removeprefix("running on ") for line in logs if line["message"].startswith("running on ")]


@needs_ray
@pytest.mark.parametrize("model", ["limner/tiny-sd", "limner/tiny-flux"])
def test_tiny_models_run_on_ray_through_http(http: httpx.Client, model: str) -> None:
    handle = submit(http, model, {"prompt": "a lighthouse", "seed": 7, "width": 96, "height": 64})
    assert wait_done(http, model, handle["request_id"])["state"] == "succeeded"
    body = result(http, model, handle["request_id"])
    image = fetch_image(http, body["images"][0]["url"])
    assert image.size == (96, 64) and body["images"][0]["width"] == 96
    assert body["model"]["id"] == model and body["seed"] == 7
    (replica,) = ran_on(http, handle)  # one run, on a Ray replica
    assert app_of_replica(replica)
    # The model's first job anywhere: the replica loads it inside the job's batch, so the job's
    # progress and logs say so (not the multiplexed loader, before the job is the replica's).
    logs = http.get(handle["status_url"], params={"logs": 1}).json()["logs"]
    worker = [line["message"] for line in logs if line["source"] == "worker"]
    assert f"loading {model} (tiny://{model.removeprefix('limner/tiny-')}) on cpu" in worker, worker
    assert any(m.startswith(f"loaded {model} (tiny-") for m in worker), worker


@needs_ray
def test_jobs_queued_together_share_a_batch(http: httpx.Client) -> None:
    handles = [submit(http, "limner/tiny-sd", {"prompt": "same size", "seed": i}) for i in range(8)]
    for handle in handles:
        assert wait_done(http, "limner/tiny-sd", handle["request_id"])["state"] == "succeeded"
    results = [result(http, "limner/tiny-sd", h["request_id"]) for h in handles]
    assert sorted(r["seed"] for r in results) == list(range(8))
    assert max(r["batch_size"] for r in results) > 1
    assert all(len(r["images"]) == 1 for r in results)


@needs_ray
def test_a_replica_that_holds_a_model_gets_its_jobs(http: httpx.Client, ray_live: RayLive) -> None:
    first_a = submit(http, "raytest/paint-a", {"prompt": "warm a", "seed": 1})
    assert wait_done(http, "raytest/paint-a", first_a["request_id"])["state"] == "succeeded"
    first_b = submit(http, "raytest/paint-b", {"prompt": "warm b", "seed": 1})
    assert wait_done(http, "raytest/paint-b", first_b["request_id"])["state"] == "succeeded"
    (holder_a,), (holder_b,) = ran_on(http, first_a), ran_on(http, first_b)
    # The replicas say what they hold (GET /v1/workers), and Ray routes by it.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        held = {w["id"]: w["models"] for w in ray_live.replicas(http)}
        if "raytest/paint-a" in held.get(holder_a, []) and "raytest/paint-b" in held.get(holder_b, []):
            break
        time.sleep(0.2)
    assert "raytest/paint-a" in held[holder_a] and "raytest/paint-b" in held[holder_b]
    for i in range(4):
        for model, holder in (("raytest/paint-a", holder_a), ("raytest/paint-b", holder_b)):
            handle = submit(http, model, {"prompt": f"again {i}", "seed": i})
            assert wait_done(http, model, handle["request_id"])["state"] == "succeeded"
            assert ran_on(http, handle) == [holder]


@needs_ray
def test_cancel_reaches_a_job_running_on_a_replica(http: httpx.Client) -> None:
    model = "raytest/steps"
    handle = submit(http, model, {"prompt": "steps:400", "seed": 3})
    wait_state(http, model, handle["request_id"], lambda b: b["progress"].get("step", 0) >= 2, timeout=120)
    assert http.put(handle["cancel_url"]).status_code == 202
    final = wait_done(http, model, handle["request_id"])
    assert final["state"] == "canceled" and final["progress"]["step"] < 400
    assert final["error_type"] == "canceled"


@needs_ray
def test_a_replica_killed_mid_job_loses_nothing(http: httpx.Client, ray_live: RayLive) -> None:
    import ray

    model = "raytest/steps"
    handle = submit(http, model, {"prompt": "steps:80", "seed": 11})
    request_id = handle["request_id"]
    wait_state(http, model, request_id, lambda b: b["progress"].get("step", 0) >= 3, timeout=120)
    victim: dict[str, Any] | None = None
    deadline = time.monotonic() + 30
    while victim is None and time.monotonic() < deadline:  # replicas report their jobs each heartbeat
        victim = next((w for w in ray_live.replicas(http) if request_id in w["current_jobs"]), None)
        time.sleep(0.05)
    assert victim is not None, "no replica reported the running job"
    ray.kill(ray.get_actor(victim["id"], namespace="serve"))  # Serve starts a new replica
    final = wait_done(http, model, request_id, timeout=180)
    assert final["state"] == "succeeded" and final["attempts"] >= 2
    logs = [line["message"] for line in http.get(handle["status_url"], params={"logs": 1}).json()["logs"]]
    assert logs.count("succeeded") == 1  # completed exactly once
    assert any("returned to the queue" in m for m in logs)
    assert victim["id"] not in ran_on(http, handle)[-1:]
    body = result(http, model, request_id)
    assert len(body["images"]) == 1 and body["seed"] == 11
    listed = http.get("/v1/requests", params={"model": model, "limit": 100}).json()["requests"]
    assert [r["request_id"] for r in listed].count(request_id) == 1
