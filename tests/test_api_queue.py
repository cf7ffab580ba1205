"""The queue protocol end to end: a live API and a live worker, over real HTTP."""

from __future__ import annotations

import uuid

import httpx
import numpy as np
from PIL import Image

from tests.conftest import Live
from tests.jobs import fetch_image, generate, pixels, result, sse_events, submit, wait_done, wait_state

SD = "limner/tiny-sd"


def test_submit_status_result(http: httpx.Client, live: Live) -> None:
    handle = submit(http, SD, {"prompt": "a lighthouse at dusk", "seed": 7, "num_outputs": 2})
    request_id = handle["request_id"]
    base = f"{live.base}/v1/queue/{SD}/requests/{request_id}"
    assert handle == {
        "request_id": request_id,
        "status_url": f"{base}/status",
        "response_url": base,
        "cancel_url": f"{base}/cancel",
    }
    status = wait_done(http, SD, request_id)
    assert status["state"] == "succeeded" and status["progress"]["percent"] == 100.0
    body = result(http, SD, request_id)
    assert body["seed"] == 7
    assert body["model"]["id"] == SD and body["model"]["revision"].startswith("tiny-")
    assert body["input"]["prompt"] == "a lighthouse at dusk" and body["input"]["num_inference_steps"] == 4
    assert set(body["timings"]) >= {"queue_s", "load_s", "inference_s", "total_s"}
    assert len(body["images"]) == 2
    for image_info in body["images"]:
        image = fetch_image(http, image_info["url"])
        assert image.format == "PNG" and image.size == (64, 64)
        assert (image_info["width"], image_info["height"], image_info["content_type"]) == (64, 64, "image/png")
        assert image_info["file_size"] == len(http.get(image_info["url"]).content)
    first, second = (pixels(http, i["url"]) for i in body["images"])
    assert np.abs(first - second).mean() > 1  # two seeds, two different images


def test_same_seed_same_image(http: httpx.Client) -> None:
    request = {"prompt": "a red bicycle", "seed": 1234, "width": 128, "height": 64}
    a = generate(http, SD, request)
    b = generate(http, SD, request)
    assert a["images"][0]["width"] == 128
    assert np.array_equal(pixels(http, a["images"][0]["url"]), pixels(http, b["images"][0]["url"]))
    c = generate(http, SD, {**request, "seed": 1235})
    assert not np.array_equal(pixels(http, a["images"][0]["url"]), pixels(http, c["images"][0]["url"]))


def test_output_formats(http: httpx.Client) -> None:
    for fmt, pil_name in (("webp", "WEBP"), ("jpeg", "JPEG")):
        body = generate(http, SD, {"prompt": "x", "seed": 1, "output_format": fmt})
        assert body["images"][0]["content_type"] == f"image/{fmt}"
        assert fetch_image(http, body["images"][0]["url"]).format == pil_name


def test_flux_text_to_image(http: httpx.Client) -> None:
    body = generate(http, "limner/tiny-flux", {"prompt": "a cat", "seed": 3, "width": 96, "height": 64})
    assert fetch_image(http, body["images"][0]["url"]).size == (96, 64)


def test_image_to_image_and_inpainting(http: httpx.Client) -> None:
    from tests.jobs import data_uri

    gradient = np.tile(np.linspace(0, 255, 96, dtype=np.uint8), (64, 1))
    source = Image.fromarray(np.stack([gradient, gradient[::-1], gradient], axis=-1))
    mask = Image.new("L", (96, 64), 0)
    mask.paste(255, (32, 16, 64, 48))
    for family in ("sd", "flux"):
        # No width/height given: the output takes the input image's size.
        out = generate(http, f"limner/tiny-{family}-img2img", {"prompt": "paint", "image": data_uri(source), "seed": 1})
        assert fetch_image(http, out["images"][0]["url"]).size == (96, 64)
        assert out["input"]["image"].startswith(http.base_url.scheme)  # stored input shown as a URL
        inpaint = generate(
            http,
            f"limner/tiny-{family}-inpaint",
            {
                "prompt": "a window",
                "image": data_uri(source),
                "mask_image": data_uri(mask),
                "seed": 2,
                "width": 64,
                "height": 64,
            },
        )
        assert fetch_image(http, inpaint["images"][0]["url"]).size == (64, 64)
    # A result of this server is a valid input (by URL), no re-upload needed.
    chained = generate(http, "limner/tiny-sd-img2img", {"prompt": "again", "image": out["images"][0]["url"]})
    assert chained["images"][0]["width"] == 96


def test_status_stream_ends_with_the_terminal_event(http: httpx.Client) -> None:
    handle = submit(http, SD, {"prompt": "stream me", "seed": 5, "num_inference_steps": 8})
    events = sse_events(http, handle["status_url"] + "/stream?logs=1")
    assert events[-1]["status"] == "COMPLETED" and events[-1]["state"] == "succeeded"
    assert all(e["status"] != "COMPLETED" for e in events[:-1])
    assert any(line["message"] == "succeeded" for line in events[-1]["logs"])
    # The stream of a finished job is just its terminal event.
    assert [e["status"] for e in sse_events(http, handle["status_url"] + "/stream")] == ["COMPLETED"]


def test_progress_is_reported_while_running(http: httpx.Client) -> None:
    handle = submit(http, "test/slow-sd", {"prompt": "slow", "seed": 1, "num_inference_steps": 300})
    seen = wait_state(
        http,
        "test/slow-sd",
        handle["request_id"],
        lambda b: b["status"] == "IN_PROGRESS" and b["progress"]["stage"] == "denoising" and b["progress"]["step"] > 0,
    )
    assert seen["progress"]["total"] == 300 and 0 < seen["progress"]["percent"] < 100
    assert "logs" in seen and "queue_position" not in seen
    wait_done(http, "test/slow-sd", handle["request_id"])


def test_idempotency_key(http: httpx.Client) -> None:
    key = str(uuid.uuid4())
    a = submit(http, SD, {"prompt": "once", "seed": 1}, **{"Idempotency-Key": key})
    b = submit(http, SD, {"prompt": "once", "seed": 1}, **{"Idempotency-Key": key})
    assert a["request_id"] == b["request_id"]
    conflict = http.post(f"/v1/queue/{SD}", json={"prompt": "twice"}, headers={"Idempotency-Key": key})
    assert conflict.status_code == 409
    assert conflict.json()["detail"][0]["loc"] == ["header", "idempotency-key"]


def test_cancel_a_queued_job_means_it_never_runs(http: httpx.Client) -> None:
    handle = submit(http, "test/unserved", {"prompt": "never"})
    status = http.get(handle["status_url"]).json()
    assert status["status"] == "IN_QUEUE" and status["queue_position"] >= 0
    not_yet = http.get(handle["response_url"])
    assert not_yet.status_code == 400 and not_yet.json()["error_type"] == "not_ready"
    response = http.put(handle["cancel_url"])
    assert (response.status_code, response.json()) == (202, {"status": "CANCELLATION_REQUESTED"})
    final = http.get(handle["status_url"]).json()
    assert final["status"] == "COMPLETED" and final["state"] == "canceled" and final["error_type"] == "canceled"
    assert final["started_at"] is None
    assert http.get(handle["response_url"]).status_code == 409
    again = http.put(handle["cancel_url"])
    assert (again.status_code, again.json()) == (400, {"status": "ALREADY_COMPLETED"})


def test_cancel_a_running_job_stops_it_at_the_next_step(http: httpx.Client) -> None:
    model = "test/slow-sd"
    handle = submit(http, model, {"prompt": "long", "seed": 1, "num_inference_steps": 4000})
    wait_state(http, model, handle["request_id"], lambda b: b["progress"].get("step", 0) > 2)
    assert http.put(handle["cancel_url"]).json() == {"status": "CANCELLATION_REQUESTED"}
    final = wait_done(http, model, handle["request_id"], timeout=60)
    assert final["state"] == "canceled"
    assert final["progress"]["step"] < 4000
    # The worker is fine afterwards.
    assert generate(http, SD, {"prompt": "after", "seed": 9})["images"]


def test_priorities_reach_the_queue(http: httpx.Client) -> None:
    handle = submit(http, "test/unserved", {"prompt": "p"}, **{"X-Limner-Priority": "high"})
    listed = http.get("/v1/requests", params={"model": "test/unserved", "limit": 50}).json()["requests"]
    assert next(r for r in listed if r["request_id"] == handle["request_id"])["priority"] == "high"
    http.put(handle["cancel_url"])
    bad = http.post(f"/v1/queue/{SD}", json={"prompt": "p"}, headers={"X-Limner-Priority": "urgent"})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["header", "x-limner-priority"]


def test_sync_run(http: httpx.Client) -> None:
    response = http.post(f"/v1/run/{SD}", json={"prompt": "now", "seed": 11})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["seed"] == 11 and len(body["images"]) == 1
    request_id = response.headers["x-limner-request-id"]
    assert result(http, SD, request_id)["images"] == body["images"]


def test_a_model_that_cannot_load_fails_clearly_and_the_worker_carries_on(http: httpx.Client) -> None:
    handle = submit(http, "test/offline-hub", {"prompt": "x"})
    final = wait_done(http, "test/offline-hub", handle["request_id"])
    assert final["state"] == "failed" and final["error_type"] == "model_unavailable"
    assert "limner-tests/not-on-this-machine" in final["error"]
    response = http.get(handle["response_url"])
    assert response.status_code == 503 and response.json()["error_type"] == "model_unavailable"
    assert generate(http, SD, {"prompt": "still alive", "seed": 2})["images"]


def test_request_listing(http: httpx.Client) -> None:
    generate(http, SD, {"prompt": "listed", "seed": 3})
    page = http.get("/v1/requests", params={"status": "succeeded", "model": SD, "limit": 2}).json()
    assert len(page["requests"]) == 2 and page["next_cursor"]
    assert all(r["state"] == "succeeded" and r["model_id"] == SD for r in page["requests"])
    following = http.get(
        "/v1/requests", params={"status": "COMPLETED", "model": SD, "limit": 2, "cursor": page["next_cursor"]}
    ).json()
    first_ids = {r["request_id"] for r in page["requests"]}
    assert first_ids.isdisjoint(r["request_id"] for r in following["requests"])
    assert http.get("/v1/requests", params={"status": "weird"}).status_code == 422
    assert http.get("/v1/requests", params={"cursor": "garbage!"}).status_code == 422


def test_health_and_readiness(http: httpx.Client) -> None:
    assert http.get("/healthz").json() == {"status": "ok"}
    ready = http.get("/readyz")
    assert ready.status_code == 200 and ready.json()["workers"] >= 1 and ready.json()["store"] == "ok"


def test_openapi_documents_the_routes(http: httpx.Client) -> None:
    spec = http.get("/openapi.json").json()
    paths = spec["paths"]
    for path in (
        "/v1/queue/{owner}/{name}",
        "/v1/queue/{owner}/{name}/requests/{request_id}/status",
        "/v1/queue/{owner}/{name}/requests/{request_id}/status/stream",
        "/v1/queue/{owner}/{name}/requests/{request_id}",
        "/v1/queue/{owner}/{name}/requests/{request_id}/cancel",
        "/v1/run/{owner}/{name}",
        "/v1/models",
        "/v1/models/{owner}/{name}",
        "/v1/requests",
        "/healthz",
        "/readyz",
    ):
        assert path in paths, path
    headers = {p["name"] for p in paths["/v1/queue/{owner}/{name}"]["post"]["parameters"]}
    assert {"Idempotency-Key", "X-Limner-Priority"} <= headers


def test_files_route_refuses_escapes(http: httpx.Client) -> None:
    assert http.get("/v1/files/results/nope.png").status_code == 404
    assert http.get("/v1/files/../limner.db").status_code in (404, 422)
    assert http.get("/v1/files/%2e%2e/limner.db").status_code in (404, 422)


def test_timings_add_up(http: httpx.Client) -> None:
    timings = generate(http, SD, {"prompt": "t", "seed": 4})["timings"]
    parts = timings["queue_s"] + timings["load_s"] + timings["inference_s"] + timings["upload_s"]
    assert all(timings[k] >= 0 for k in ("queue_s", "load_s", "inference_s", "upload_s"))
    assert parts <= timings["total_s"] + 0.01
