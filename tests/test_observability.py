"""Cache, usage, estimates, quotas, metrics, quality and JSON logs, end to end: an API and a
worker over real HTTP, with a tiny SD model that allows semantic hits and is quality-scored
by a tiny random CLIP (built with the real CLIP tokenizer)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families

from tests.jobs import generate, result, submit, wait_done
from tests.services import Proc, child_env, free_port, wait_http, wait_workers

MODEL = "test/cached-sd"
CATALOG = """
models:
  - id: test/cached-sd
    task: text-to-image
    family: diffusers-image
    source: tiny://sd
    defaults: {{width: 64, height: 64, num_inference_steps: 2, guidance_scale: 5.0}}
    runtime: {{dtype: float32, memory_mb: 64, usd_per_gpu_hour: 3.6}}
    cache: {{mode: exact, semantic: true, semantic_threshold: 0.9}}
    quality: {{clip_score: true, window: 4, fid_reference: {reference}}}
  - id: test/obs-faults
    task: text-to-image
    family: faults
    source: builtin://faults
    defaults: {{width: 64, height: 64, num_inference_steps: 1}}
"""


class ObsStack:
    def __init__(self, tmp: Path) -> None:
        reference = tmp / "reference"
        reference.mkdir()
        rng = np.random.default_rng(0)
        for i in range(6):
            Image.fromarray(rng.integers(0, 255, (48, 48, 3), dtype=np.uint8)).save(reference / f"{i}.png")
        catalog = tmp / "catalog.yaml"
        catalog.write_text(CATALOG.format(reference=reference))
        self.home = tmp / "home"
        self.base = f"http://127.0.0.1:{free_port()}"
        port = self.base.rsplit(":", 1)[1]
        env = child_env(
            self.home,
            {
                "LIMNER_CLIP_MODEL": "tiny://clip",
                "LIMNER_LOG_FORMAT": "json",
                "LIMNER_ACCESS_LOG": "1",
                "LIMNER_USD_PER_GPU_HOUR": "1",
            },
        )
        self.env = env
        self.api = Proc(["serve", "--workers", "0", "--port", port, "--catalog", str(catalog)], env, tmp / "api.log")
        wait_http(f"{self.base}/healthz", self.api)
        self.worker = Proc(["worker", "--catalog", str(catalog)], env, tmp / "worker.log")
        wait_workers(self.base, 1)

    def close(self) -> None:
        self.worker.stop()
        self.api.stop()


@pytest.fixture(scope="module")
def obs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ObsStack]:
    stack = ObsStack(tmp_path_factory.mktemp("obs"))
    yield stack
    stack.close()


@pytest.fixture
def client(obs: ObsStack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=obs.base, timeout=60) as http:
        yield http


def run(http: httpx.Client, body: dict[str, Any], cache: str | None = None) -> dict[str, Any]:
    headers = {"X-Limner-Cache": cache} if cache else {}
    response = http.post(f"/v1/queue/{MODEL}", json=body, headers=headers)
    assert response.status_code == 202, response.text
    request_id = response.json()["request_id"]
    assert wait_done(http, MODEL, request_id)["state"] == "succeeded"
    return {"request_id": request_id, **result(http, MODEL, request_id)}


def test_exact_hit_is_instant_with_the_same_files(client: httpx.Client) -> None:
    first = run(client, {"prompt": "a lighthouse", "seed": 11})
    assert "cache" not in first and first["usage"]["compute_s"] > 0 and first["usage"]["outputs"] == 1
    assert first["usage"]["cost_usd"] == pytest.approx(first["usage"]["compute_s"] * 3.6 / 3600, abs=1e-6)
    time.sleep(2.5)  # the API refreshes its list of models with cache entries every 2 s
    handle = submit(client, MODEL, {"prompt": "a lighthouse", "seed": 11})
    status = client.get(f"/v1/queue/{MODEL}/requests/{handle['request_id']}/status")
    assert status.status_code == 200 and status.json()["state"] == "succeeded"  # done before any worker saw it
    hit = result(client, MODEL, handle["request_id"])
    assert hit["cache"]["hit"] == "exact" and hit["cache"]["source_request_id"] == first["request_id"]
    assert hit["cache"]["saved_compute_s"] == pytest.approx(first["usage"]["compute_s"], abs=1e-3)
    assert [i["url"] for i in hit["images"]] == [i["url"] for i in first["images"]]
    assert client.get(hit["images"][0]["url"]).content == client.get(first["images"][0]["url"]).content
    other_seed = run(client, {"prompt": "a lighthouse", "seed": 12})
    assert "cache" not in other_seed
    off = run(client, {"prompt": "a lighthouse", "seed": 11}, cache="off")
    assert "cache" not in off


def test_worker_answers_from_the_cache_when_the_api_did_not(client: httpx.Client) -> None:
    first = run(client, {"prompt": "a harbour", "seed": 21})
    # With an Idempotency-Key the API queues the job; the worker finds the entry before running.
    response = client.post(
        f"/v1/queue/{MODEL}", json={"prompt": "a harbour", "seed": 21}, headers={"Idempotency-Key": "harbour-1"}
    )
    request_id = response.json()["request_id"]
    assert wait_done(client, MODEL, request_id)["state"] == "succeeded"
    body = result(client, MODEL, request_id)
    assert body["cache"] == {**body["cache"], "hit": "exact", "source_request_id": first["request_id"]}
    logs = client.get(f"/v1/queue/{MODEL}/requests/{request_id}/status", params={"logs": 1}).json()["logs"]
    assert any(line["source"] == "cache" for line in logs)


def test_cache_header_is_checked(client: httpx.Client) -> None:
    bad = client.post(f"/v1/queue/{MODEL}", json={"prompt": "x"}, headers={"X-Limner-Cache": "maybe"})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["header", "x-limner-cache"]
    # limner/tiny-sd has not opted in to semantic hits.
    refused = client.post("/v1/queue/limner/tiny-sd", json={"prompt": "x"}, headers={"X-Limner-Cache": "semantic"})
    assert refused.status_code == 422 and "semantic" in refused.json()["detail"][0]["msg"]


def test_semantic_hit_for_a_paraphrase_and_not_for_a_near_miss(client: httpx.Client) -> None:
    source = run(client, {"prompt": "a red dress on a mannequin, studio lighting"}, cache="semantic")
    assert "cache" not in source
    same = run(client, {"prompt": "A red dress on a mannequin, studio lighting."}, cache="semantic")
    assert same["cache"]["hit"] == "semantic" and same["cache"]["source_request_id"] == source["request_id"]
    assert same["cache"]["similarity"] >= 0.9 and same["seed"] == source["seed"]
    assert same["images"][0]["url"] == source["images"][0]["url"]
    assert "cache" not in run(client, {"prompt": "a blue dress on a mannequin, studio lighting"}, cache="semantic")
    # Same meaning, other size: parameters must match.
    other = run(client, {"prompt": "A red dress on a mannequin, studio lighting.", "width": 128}, cache="semantic")
    assert "cache" not in other
    # A seeded request wants that seed's image: no semantic hit for it.
    seeded = run(client, {"prompt": "A red dress on a mannequin, studio lighting!", "seed": 99}, cache="semantic")
    assert "cache" not in seeded


def test_usage_estimate_and_metrics(client: httpx.Client) -> None:
    failing = submit(client, "test/obs-faults", {"prompt": "raise"})
    assert wait_done(client, "test/obs-faults", failing["request_id"])["state"] == "failed"
    run(client, {"prompt": "usage", "seed": 1})
    run(client, {"prompt": "usage", "seed": 1})  # an exact hit
    body = client.get("/v1/usage", params={"group_by": "model"}).json()
    row = next(r for r in body["usage"] if r["model_id"] == MODEL)
    assert row["jobs"] >= 2 and row["succeeded"] == row["jobs"] and row["outputs"] >= 2
    assert row["cache_hits"] >= 1 and row["saved_compute_s"] > 0 and row["compute_s"] > 0 and row["cost_usd"] > 0
    by_day = client.get("/v1/usage", params={"group_by": "day,key"}).json()["usage"]
    assert by_day and by_day[0]["api_key_id"] is None and len(by_day[0]["day"]) == 10
    assert client.get("/v1/usage", params={"group_by": "colour"}).status_code == 422

    estimate = client.post(f"/v1/estimate/{MODEL}", json={"prompt": "anything", "num_outputs": 2}).json()
    assert estimate["compute_s"] > 0 and estimate["outputs"] == 2 and "same size" in estimate["basis"]
    assert estimate["cost_usd"] == pytest.approx(estimate["compute_s"] * 3.6 / 3600, abs=1e-6)
    scaled = client.post(f"/v1/estimate/{MODEL}", json={"prompt": "x", "width": 128, "height": 128}).json()
    assert "scaled" in scaled["basis"] and scaled["compute_s"] > estimate["compute_s_per_output"]
    cached = client.post(f"/v1/estimate/{MODEL}", json={"prompt": "usage", "seed": 1}).json()
    assert cached["cache_hit"] is True and cached["compute_s"] == 0

    text = client.get("/metrics").text
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    assert samples[("limner_cache_hits_total", (("kind", "exact"), ("model", MODEL)))] >= 1
    assert samples[("limner_jobs_finished_total", (("model", MODEL), ("status", "succeeded")))] >= 2
    assert samples[("limner_job_end_to_end_seconds_count", (("model", MODEL),))] >= 2
    assert samples[("limner_cache_saved_compute_seconds_total", (("model", MODEL),))] > 0
    assert samples[("limner_workers", ())] == 1
    assert samples[("limner_job_failures_total", (("error_type", "model_error"), ("model", "test/obs-faults")))] >= 1
    rss = [v for (name, _), v in samples.items() if name == "limner_worker_rss_bytes"]
    assert rss and rss[0] > 10_000_000
    loads = [v for (name, _), v in samples.items() if name == "limner_model_loads_total"]
    assert loads and loads[0] >= 1


def test_quality_scores_windows_and_mlflow(client: httpx.Client, obs: ObsStack) -> None:
    for i in range(4):
        run(client, {"prompt": f"quality {i}", "seed": 500 + i})
    deadline = time.monotonic() + 120
    windows: list[dict[str, Any]] = []
    while time.monotonic() < deadline and not windows:
        windows = client.get("/v1/quality", params={"model": MODEL}).json()["windows"]
        time.sleep(0.2)
    assert windows, "no quality window was closed"
    window = windows[-1]
    assert window["samples"] == 4 and window["fid"] is not None and window["fid"] >= 0
    assert window["clip_mean"] is not None and 0 <= window["clip_mean"] <= 100
    last = run(client, {"prompt": "quality last", "seed": 600})
    scored = last
    while time.monotonic() < deadline and "quality" not in scored:  # scored after it completed
        time.sleep(0.2)
        scored = result(client, MODEL, last["request_id"])
    assert len(scored["quality"]["clip_score"]) == 1 and scored["quality"]["clip_model"] == "clip"
    assert 0 <= scored["quality"]["clip_score"][0] <= 100

    from mlflow import MlflowClient

    tracking = MlflowClient(tracking_uri=f"sqlite:///{obs.home / 'mlflow.db'}")
    experiment = tracking.get_experiment_by_name("limner-quality")
    assert experiment is not None
    runs = tracking.search_runs([experiment.experiment_id], filter_string=f"tags.limner_model = '{MODEL}'")
    history = tracking.get_metric_history(runs[0].info.run_id, "clip_score")
    assert len(history) >= 4
    assert tracking.get_metric_history(runs[0].info.run_id, "fid")


def test_purge_by_model(client: httpx.Client) -> None:
    run(client, {"prompt": "purge me", "seed": 3})
    assert run(client, {"prompt": "purge me", "seed": 3})["cache"]["hit"] == "exact"
    stats = client.get("/v1/cache").json()["models"]
    assert next(m for m in stats if m["model_id"] == MODEL)["hits"] >= 1
    purged = client.delete(f"/v1/cache/{MODEL}").json()
    assert purged["purged"] >= 1
    assert "cache" not in run(client, {"prompt": "purge me", "seed": 3})
    assert client.delete("/v1/cache/nobody/nothing").status_code == 404


def test_json_logs_carry_request_ids(client: httpx.Client, obs: ObsStack) -> None:
    response = client.get("/v1/models", headers={"X-Request-Id": "trace-123"})
    assert response.headers["x-request-id"] == "trace-123"
    time.sleep(0.5)
    lines = [json.loads(line) for line in obs.api.log_path.read_text().splitlines() if line.startswith("{")]
    assert lines and all({"time", "level", "logger", "message"} <= set(line) for line in lines)
    assert any(line.get("request_id") == "trace-123" for line in lines)


def test_quota_returns_429_with_retry_after(tmp_path: Path) -> None:
    env = child_env(tmp_path, {"LIMNER_QUOTAS": '{"anonymous": {"jobs_per_minute": 2}}'})
    base_port = free_port()
    api = Proc(["serve", "--workers", "0", "--port", str(base_port)], env, tmp_path / "api.log")
    try:
        wait_http(f"http://127.0.0.1:{base_port}/healthz", api)
        with httpx.Client(base_url=f"http://127.0.0.1:{base_port}", timeout=30) as http:
            for _ in range(2):
                assert http.post("/v1/queue/limner/tiny-sd", json={"prompt": "q"}).status_code == 202
            refused = http.post("/v1/queue/limner/tiny-sd", json={"prompt": "q"})
            assert refused.status_code == 429 and refused.json()["error_type"] == "quota_exceeded"
            assert 1 <= int(refused.headers["retry-after"]) <= 60
    finally:
        api.stop()


def test_generate_helper_still_works(client: httpx.Client) -> None:
    assert generate(client, MODEL, {"prompt": "plain", "seed": 77})["images"]


def test_cli_cache_and_usage(client: httpx.Client, obs: ObsStack) -> None:
    import subprocess
    import sys

    run(client, {"prompt": "cli", "seed": 5})

    def limner(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "limner", *args, "--url", obs.base], capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    body = json.loads(limner("usage", "--by", "model", "--json"))
    assert any(r["model_id"] == MODEL and r["jobs"] >= 1 for r in body["usage"])
    assert MODEL in limner("cache", "stats")
    assert "purged" in limner("cache", "purge", MODEL)
