"""Workflows through the HTTP API: called like a model, each step a real job in the queue,
advanced from the store (the shared live server: API + one worker)."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from tests.jobs import pixels, result, sse_events, submit, wait_done, wait_state


def run(http: httpx.Client, workflow: str, body: dict[str, Any], timeout: float = 180) -> dict[str, Any]:
    handle = submit(http, workflow, body)
    return wait_done(http, workflow, handle["request_id"], timeout=timeout)


def test_a_workflow_is_listed_like_a_model_with_its_schema(http: httpx.Client) -> None:
    listed = {m["id"]: m for m in http.get("/v1/models", params={"task": "workflow"}).json()["models"]}
    chain = listed["test/chain"]
    assert chain["task"] == "workflow" and chain["available"]["ok"]
    assert chain["input_schema"]["required"] == ["prompt"]
    assert [s["id"] for s in chain["steps"]] == ["draft", "restyle"] and chain["steps"][1]["needs"] == ["draft"]
    assert http.get("/v1/models/test/chain").json()["revision"].startswith("wf-")


def test_references_carry_files_and_values_between_steps(http: httpx.Client) -> None:
    status = run(http, "test/chain", {"prompt": "a lighthouse", "seed": 9})
    assert status["state"] == "succeeded", status
    assert [s["id"] for s in status["steps"]] == ["draft", "restyle"]
    assert all(s["status"] == "succeeded" and s["request_id"] for s in status["steps"])
    body = result(http, "test/chain", status["request_id"])
    draft_job, restyle_job = (s["request_id"] for s in body["steps"])
    drafted = result(http, "limner/tiny-sd", draft_job)
    restyled = result(http, "limner/tiny-sd-img2img", restyle_job)
    # The restyle step's input image is the draft step's output (kept by its content), and its
    # prompt was built from the workflow's input.
    assert "/inputs/" in restyled["input"]["image"]
    assert http.get(restyled["input"]["image"]).content == http.get(drafted["images"][0]["url"]).content
    assert restyled["input"]["prompt"] == "a lighthouse, oil painting" and restyled["seed"] == 9
    assert body["images"][0]["url"] == restyled["images"][0]["url"]
    assert body["draft"] == drafted["images"][0]["url"]
    assert body["model"]["id"] == "test/chain" and body["input"] == {"prompt": "a lighthouse", "seed": 9}
    # Step jobs are listed, each naming its workflow and step.
    steps = http.get("/v1/requests", params={"parent": status["request_id"]}).json()["requests"]
    assert {(r["step"], r["parent_id"]) for r in steps} == {
        ("draft", status["request_id"]),
        ("restyle", status["request_id"]),
    }
    assert status["request_id"] not in {
        r["request_id"]
        for r in http.get("/v1/requests", params={"top_level": "false", "parent": draft_job}).json()["requests"]
    }


def test_the_same_input_and_seed_are_served_step_by_step_from_the_cache(http: httpx.Client) -> None:
    first = run(http, "test/chain", {"prompt": "cache me", "seed": 21})
    again = run(http, "test/chain", {"prompt": "cache me", "seed": 21})
    assert first["state"] == again["state"] == "succeeded"
    assert [s["cached"] for s in again["steps"]] == [True, True]
    assert all(s["compute_s"] == 0.0 for s in again["steps"])
    body = result(http, "test/chain", again["request_id"])
    assert body["cache"]["hit"] == "exact"
    assert (
        pixels(http, body["images"][0]["url"])
        == pixels(http, result(http, "test/chain", first["request_id"])["images"][0]["url"])
    ).all()


def test_independent_steps_run_in_parallel_and_for_each_fans_out(http: httpx.Client) -> None:
    status = run(http, "test/fan-out", {"colours": ["red", "green", "blue"]})
    assert status["state"] == "succeeded", status
    steps = {s["id"]: s for s in status["steps"]}
    assert set(steps) == {"left", "right", "shades.0", "shades.1", "shades.2"}  # "big" was skipped (when)
    jobs = {k: http.get(f"/v1/queue/test/faults/requests/{v['request_id']}/status").json() for k, v in steps.items()}
    # left and right were both queued before either finished: they could run side by side.
    assert jobs["right"]["created_at"] < jobs["left"]["finished_at"]
    assert jobs["left"]["created_at"] < jobs["right"]["finished_at"]
    # the fan-out runs started only once left was done (they name its seed), one per item.
    assert all(jobs[f"shades.{i}"]["created_at"] >= jobs["left"]["finished_at"] for i in range(3))
    body = result(http, "test/fan-out", status["request_id"])
    assert len(body["shades"]) == 3 and len(body["left"]) == 1
    prompts = [result(http, "test/faults", steps[f"shades.{i}"]["request_id"])["input"]["prompt"] for i in range(3)]
    assert prompts == ["a red swatch, 1", "a green swatch, 1", "a blue swatch, 1"]


def test_when_runs_a_step_only_if_its_reference_is_truthy(http: httpx.Client) -> None:
    status = run(http, "test/fan-out", {"colours": [], "upscale": True})
    assert status["state"] == "succeeded", status
    big = next(s for s in status["steps"] if s["id"] == "big")
    upscaled = result(http, "xinntao/realesrgan-x4plus", big["request_id"])
    assert upscaled["images"][0]["width"] == 4 * 64


def test_a_failing_step_fails_the_workflow_after_its_retries(http: httpx.Client) -> None:
    status = run(http, "test/failing", {})
    assert status["state"] == "failed" and status["error_type"] == "model_error", status
    assert "step boom failed" in status["error"] and "injected fault" in status["error"]
    boom = [s for s in status["steps"] if s["id"] == "boom"]
    assert boom and boom[0]["attempt"] == 2  # retries: 1 means a second attempt
    assert "never" not in {s["id"] for s in status["steps"]}  # a step after the failure never started
    attempts = http.get("/v1/requests", params={"parent": status["request_id"]}).json()["requests"]
    assert sorted(r["step"] for r in attempts) == ["boom", "boom", "ok"]
    failed = http.get(f"/v1/queue/test/failing/requests/{status['request_id']}")
    assert failed.status_code == 500 and failed.json()["error_type"] == "model_error"


def test_retries_absorb_a_transient_failure(http: httpx.Client) -> None:
    status = run(http, "test/flaky", {"token": f"t{time.monotonic_ns()}"})
    assert status["state"] == "succeeded", status
    [shaky] = status["steps"]
    assert shaky["attempt"] == 2 and shaky["status"] == "succeeded"
    attempts = http.get("/v1/requests", params={"parent": status["request_id"]}).json()["requests"]
    assert sorted(r["state"] for r in attempts) == ["failed", "succeeded"]  # both attempts are real jobs
    assert result(http, "test/flaky", status["request_id"])["images"]


def test_a_workflow_without_retries_fails_at_the_first_error(http: httpx.Client) -> None:
    status = run(http, "test/failing", {"fault": "oom"})
    assert status["state"] == "failed" and status["error_type"] == "out_of_memory", status


def test_cancel_reaches_the_running_step(http: httpx.Client) -> None:
    handle = submit(http, "test/slow-steps", {})
    running = wait_state(
        http,
        "test/slow-steps",
        handle["request_id"],
        lambda b: any(s["status"] == "running" for s in b.get("steps", [])),
    )
    step = running["steps"][0]["request_id"]
    wait_state(http, "test/slow-sd", step, lambda b: b["progress"]["stage"] == "denoising")
    assert http.put(handle["cancel_url"]).json()["status"] == "CANCELLATION_REQUESTED"
    done = wait_done(http, "test/slow-steps", handle["request_id"])
    assert done["state"] == "canceled"
    stopped = wait_done(http, "test/slow-sd", step)
    assert stopped["state"] == "canceled" and stopped["progress"]["step"] < 2000


def test_a_step_past_its_timeout_fails_as_a_timeout(http: httpx.Client) -> None:
    status = run(http, "test/timed", {})
    assert status["state"] == "failed" and status["error_type"] == "timeout", status
    assert "timed out" in status["error"]


def test_references_and_inputs_are_checked_at_submit(http: httpx.Client) -> None:
    unknown = http.post("/v1/queue/test/chain", json={"prompt": "x", "colour": "red"})
    assert unknown.status_code == 422 and unknown.json()["detail"][0]["loc"] == ["body", "colour"]
    too_long = http.post("/v1/queue/test/chain", json={"prompt": "x" * 5000})
    assert too_long.status_code == 422
    assert too_long.json()["detail"][0]["loc"] == ["body", "prompt"] and "step draft" in too_long.text
    assert http.post("/v1/queue/test/fan-out", json={"colours": "red"}).status_code == 422


def test_the_status_stream_follows_the_steps(http: httpx.Client) -> None:
    handle = submit(http, "test/fan-out", {"colours": ["a"]})
    events = sse_events(http, handle["status_url"] + "/stream")
    assert events[-1]["state"] == "succeeded"
    running = [e for e in events if e["progress"]["stage"] == "running steps"]
    assert running and any(e["progress"].get("running") for e in running)
    assert len(events[-1]["steps"]) == 3


@pytest.mark.parametrize("priority", ["high"])
def test_steps_inherit_the_workflows_priority(http: httpx.Client, priority: str) -> None:
    handle = submit(http, "test/chain", {"prompt": "urgent", "seed": 3}, **{"X-Limner-Priority": priority})
    done = wait_done(http, "test/chain", handle["request_id"])
    listed = http.get("/v1/requests", params={"parent": handle["request_id"]}).json()["requests"]
    assert done["state"] == "succeeded" and {r["priority"] for r in listed} == {priority}


def test_cache_off_on_the_workflow_reaches_its_steps(http: httpx.Client) -> None:
    body = {"prompt": "never cached", "seed": 31}
    run(http, "test/chain", body)
    handle = submit(http, "test/chain", body, **{"X-Limner-Cache": "off"})
    again = wait_done(http, "test/chain", handle["request_id"])
    assert again["state"] == "succeeded" and [s["cached"] for s in again["steps"]] == [False, False]
    assert http.post("/v1/queue/test/chain", json=body, headers={"X-Limner-Cache": "semantic"}).status_code == 422
