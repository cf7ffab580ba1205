"""Hosted providers and routes against real servers only (tests/routing_stack.py: a second
limner over TLS is the provider; the router is a limner in front of it).

The provider is killed by the last test (mid-job, then while cooling down), and revived.
"""

from __future__ import annotations

import json
import time

import pytest

from limner.client import Client, ImageResult
from tests.routing_stack import Stack, remote_request_of, run, wait_end

# -- providers as families -----------------------------------------------------------------------


def test_a_fal_queue_entry_runs_on_the_provider_and_its_files_are_copied_here(stack: Stack) -> None:
    done = run(stack, "prov/remote-sd", {"prompt": "a remote lighthouse", "seed": 3})
    assert done["code"] == 200, done
    result = done["body"]
    image = result["images"][0]
    assert image["url"].startswith(f"{stack.router.base}/v1/files/")  # stored here, not the provider's URL
    assert (image["width"], image["height"]) == (64, 64)
    assert result["provider"]["request_id"] and result["provider"]["seed"] == 3
    assert result["usage"]["cost_usd"] == pytest.approx(0.003) and result["usage"]["device"] == "remote"
    with stack.http() as http:
        assert http.get(image["url"]).content[:8] == b"\x89PNG\r\n\x1a\n"
    with stack.http(stack.provider) as http:  # the provider ran it: its own request exists
        remote = http.get(f"/v1/queue/limner/tiny-sd/requests/{result['provider']['request_id']}/status").json()
        assert remote["status"] == "COMPLETED" and "error" not in remote


def test_an_openai_images_entry_and_a_missing_key(stack: Stack) -> None:
    done = run(stack, "prov/openai-sd", {"prompt": "an openai-shaped lighthouse"})
    assert done["code"] == 200, done
    assert done["body"]["images"][0]["width"] == 64 and done["body"]["usage"]["cost_usd"] == pytest.approx(0.002)
    missing = run(stack, "prov/no-key", {"prompt": "no key"})
    assert missing["status"]["error_type"] == "model_unavailable"
    assert "NOT_SET_ANYWHERE" in missing["status"]["error"]


# -- routes ----------------------------------------------------------------------------------------


def test_a_route_is_listed_as_a_model_with_a_schema_every_target_honours(stack: Stack) -> None:
    with stack.http() as http:
        models = {m["id"]: m for m in http.get("/v1/models").json()["models"]}
        route = models["route/strict"]
        assert route["task"] == "text-to-image" and route["kind"] == "route"
        steps = route["input_schema"]["properties"]["num_inference_steps"]
        assert steps["maximum"] == 8  # test/local-sd's limit
        assert models["prov/remote-sd"]["runtime"]["api_key_env"] == "PROVIDER_KEY"
        shown = http.get("/v1/models/route/cheapest").json()
        assert shown["strategy"] == "lowest-cost" and [t["model"] for t in shown["targets"]] == [
            "prov/remote-sd",
            "prov/openai-sd",
        ]


def test_fallback_when_the_local_target_is_unavailable(stack: Stack) -> None:
    done = run(stack, "route/unavailable-first", {"prompt": "fallback", "seed": 4})
    assert done["code"] == 200, done
    routing = done["body"]["routing"]
    assert routing["served_by"] == "prov/remote-sd"
    assert [(a["target"], a["error_type"]) for a in routing["attempts"]] == [
        ("test/local-broken", "model_unavailable"),
        ("prov/remote-sd", None),
    ]
    assert all(a["latency_s"] is not None for a in routing["attempts"])
    assert done["body"]["usage"]["attempts_cost_usd"] == pytest.approx(0.003)


def test_the_sdk_calls_a_route_like_a_model(stack: Stack) -> None:
    with Client(stack.router.base, verify=str(stack.cert)) as client:
        result = client.subscribe("route/unavailable-first", {"prompt": "through the sdk", "seed": 9})
        assert isinstance(result, ImageResult) and result.images[0].url.startswith(stack.router.base)


def test_lowest_cost_picks_the_cheaper_provider(stack: Stack) -> None:
    done = run(stack, "route/cheapest", {"prompt": "cheap"})
    assert done["code"] == 200, done
    assert done["body"]["routing"]["served_by"] == "prov/openai-sd"  # 0.002 against 0.003 per image
    # That target takes no seed, so the route drew none for its attempts, and none is reported.
    assert done["body"]["input"]["seed"] is None and done["body"]["seed"] is None


def test_priority_lanes(stack: Stack) -> None:
    high = run(stack, "route/lanes", {"prompt": "urgent"}, {"X-Limner-Priority": "high"})
    normal = run(stack, "route/lanes", {"prompt": "bulk"})
    assert high["body"]["routing"]["served_by"] == "prov/remote-sd"
    assert normal["body"]["routing"]["served_by"] == "test/local-sd"
    [skip] = normal["body"]["routing"]["skipped"]
    assert skip["target"] == "prov/remote-sd" and "priority high" in skip["why"]


def test_strict_refuses_what_no_target_takes_and_coerce_maps_it(stack: Stack) -> None:
    body = {"prompt": "too many steps", "num_inference_steps": 20, "width": 100, "height": 64}
    with stack.http() as http:
        refused = http.post("/v1/queue/route/strict", json=body)
    assert refused.status_code == 422
    assert refused.json()["detail"][0]["loc"][-1] in ("num_inference_steps", "width")
    done = run(stack, "route/coerce", body)
    assert done["code"] == 200, done
    coerced = {c["field"]: (c["from"], c["to"]) for c in done["body"]["routing"]["coerced"]}
    assert coerced == {"num_inference_steps": (20, 8), "width": (100, 96)}
    assert done["body"]["images"][0]["width"] == 96


def test_a_422_from_the_provider_never_falls_back(stack: Stack) -> None:
    # prov/remote-sd allows 500 steps here; the provider's model allows 50: it answers 422.
    done = run(stack, "route/no-fallback-on-422", {"prompt": "bad", "num_inference_steps": 200})
    assert done["status"]["error_type"] == "invalid_input", done
    assert "num_inference_steps" in done["status"]["error"]
    with stack.http() as http:
        logs = http.get(
            f"/v1/queue/route/no-fallback-on-422/requests/{done['status']['request_id']}/status", params={"logs": 1}
        ).json()["logs"]
    assert sum("attempt" in line["message"] for line in logs) == 1  # one attempt, no fallback


def test_saturation_under_a_latency_budget_goes_remote(stack: Stack) -> None:
    # Teach the route how long a local job takes, then fill the local queue.
    warm = run(stack, "test/local-slow", {"prompt": "warm", "seed": 1})
    assert warm["code"] == 200
    first = run(stack, "route/budget", {"prompt": "idle", "seed": 2})
    assert first["body"]["routing"]["served_by"] == "test/local-slow"
    with stack.http() as http:
        fillers = [
            http.post("/v1/queue/test/local-slow", json={"prompt": f"filler {i}", "seed": i}).json()["request_id"]
            for i in range(40)
        ]
        try:
            busy = run(stack, "route/budget", {"prompt": "saturated", "seed": 3})
            roomy = run(
                stack,
                "route/budget",
                {"prompt": "patient", "seed": 4},
                {"X-Limner-Latency-Budget": "86400", "X-Limner-Priority": "high"},
            )
            bad = http.post("/v1/queue/route/budget", json={"prompt": "x"}, headers={"X-Limner-Latency-Budget": "-1"})
        finally:
            for request_id in fillers:
                http.put(f"/v1/queue/test/local-slow/requests/{request_id}/cancel")
    routing = busy["body"]["routing"]
    assert routing["served_by"] == "prov/remote-sd"
    assert routing["attempts"] == [routing["attempts"][0]] and routing["attempts"][0]["target"] == "prov/remote-sd"
    [skip] = routing["skipped"]
    assert skip["target"] == "test/local-slow" and "latency budget of 8 s" in skip["why"]
    assert roomy["body"]["routing"]["served_by"] == "test/local-slow"
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["header", "x-limner-latency-budget"]


def test_cancel_propagates_to_the_provider(stack: Stack) -> None:
    with stack.http() as http:
        submitted = http.post("/v1/queue/route/cancel", json={"prompt": "long", "num_inference_steps": 1500}).json()
        request_id = submitted["request_id"]
        _, remote = remote_request_of(http, "route/cancel", request_id)
        assert http.put(f"/v1/queue/route/cancel/requests/{request_id}/cancel").status_code == 202
        ended = wait_end(http, "route/cancel", request_id)
    assert ended["status"]["error_type"] == "canceled"
    with stack.http(stack.provider) as provider:
        while True:
            status = provider.get(f"/v1/queue/test/slow-sd/requests/{remote}/status").json()
            if status["status"] == "COMPLETED":
                break
            time.sleep(0.1)
    assert status["error_type"] == "canceled"


def test_routes_and_metrics_show_targets_health_and_latency(stack: Stack) -> None:
    assert run(stack, "route/unavailable-first", {"prompt": "counted"})["code"] == 200
    with stack.http() as http:
        routes = {r["id"]: r for r in http.get("/v1/routes").json()["routes"]}
        targets = {t["model"]: t for t in routes["route/unavailable-first"]["targets"]}
        remote, broken = targets["prov/remote-sd"], targets["test/local-broken"]
        assert remote["p50_s"] > 0 and remote["remote"] is True and remote["usd_per_output"] == 0.003
        assert remote["attempts"]["succeeded"] >= 1 and broken["attempts"]["failed"] >= 1
        # Its failures count toward its cooldown (3 in a row start it, and the count starts over).
        assert broken["health"]["failures"] >= 1 or broken["health"]["cooling_down"]
        assert broken["health"]["last_error_type"] == "model_unavailable"
        metrics = http.get("/metrics").text
    assert 'limner_route_target_p50_seconds{route="route/unavailable-first",target="prov/remote-sd"}' in metrics
    assert (
        'limner_route_attempts_total{route="route/unavailable-first",status="failed",target="test/local-broken"}'
        in (metrics)
    )


def test_fallback_when_the_provider_dies_mid_job_then_cooldown(stack: Stack) -> None:
    try:
        provider_dies_mid_job_then_cooldown(stack)
    finally:
        stack.revive_provider()


def provider_dies_mid_job_then_cooldown(stack: Stack) -> None:
    with stack.http() as http:
        submitted = http.post("/v1/queue/route/remote-first", json={"prompt": "dies", "num_inference_steps": 1500})
        request_id = submitted.json()["request_id"]
        remote_request_of(http, "route/remote-first", request_id)  # the provider is running it
        stack.provider.worker.kill()
        stack.provider.api.kill()
        done = wait_end(http, "route/remote-first", request_id)
        assert done["code"] == 200, done
        routing = done["body"]["routing"]
        assert routing["served_by"] == "test/local-sd"
        assert [(a["target"], a["error_type"]) for a in routing["attempts"]] == [
            ("prov/remote-slow", "server_error"),
            ("test/local-sd", None),
        ]
        # One failure starts this route's cooldown: the dead provider is skipped, not tried.
        cooling = run(stack, "route/remote-first", {"prompt": "while cooling"})
        assert [a["target"] for a in cooling["body"]["routing"]["attempts"]] == ["test/local-sd"]
        [skip] = cooling["body"]["routing"]["skipped"]
        assert skip["target"] == "prov/remote-slow" and "cooling down" in skip["why"]
        health = next(
            t["health"] for t in next(
                r for r in http.get("/v1/routes").json()["routes"] if r["id"] == "route/remote-first"
            )["targets"] if t["model"] == "prov/remote-slow"
        )  # fmt: skip
        assert health["cooling_down"] and health["last_error_type"] == "server_error"
        while time.time() < health["cooldown_until"]:
            time.sleep(0.2)
        after = run(stack, "route/remote-first", {"prompt": "after the cooldown"})
    attempts = [(a["target"], a["error_type"]) for a in after["body"]["routing"]["attempts"]]
    assert attempts == [("prov/remote-slow", "server_error"), ("test/local-sd", None)]  # tried again, then fell back


def test_the_provider_key_never_shows(stack: Stack) -> None:
    """Every response the tests read, and every log line of the router, without the key."""
    with stack.http() as http:
        http.get("/v1/models")
        http.get("/v1/routes")
    logs = [p.read_text(errors="replace") for p in stack.router.home.glob("*.log")]
    assert stack.seen and logs
    leaks = [text for text in [*stack.seen, *logs] if stack.key in text]
    assert not leaks, json.dumps(leaks[0][:500])
