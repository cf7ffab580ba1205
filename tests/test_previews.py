"""Step previews through the HTTP API: a job that asks for them (or a model that makes them
for every job) gets ``progress.preview_url`` while it denoises, on the status route, the SSE
and WebSocket streams and ``progress`` webhooks; each URL is a stored JPEG picture of the
latents at that step. One server of its own: a tiny SD with a tiny random AutoencoderTiny
(TAESD's architecture) as its preview decoder, and one with the linear latent-to-RGB map."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from PIL import Image
from websockets.sync.client import connect

from tests.conftest import Live
from tests.jobs import data_uri, sse_events, submit, wait_done, wait_state
from tests.live import start_live, stop_live
from tests.receiver import receiver

CATALOG = """
models:
  - id: test/preview-taesd
    task: text-to-image
    family: diffusers-image
    source: tiny://sd
    title: Tiny SD with a tiny autoencoder for step previews
    defaults: {width: 64, height: 64, num_inference_steps: 8, guidance_scale: 5.0}
    limits: {max_steps: 5000}
    runtime: {dtype: float32, memory_mb: 64, preview_decoder: "tiny://taesd"}
  - id: test/preview-linear
    task: text-to-image
    family: diffusers-image
    source: tiny://sd
    title: Tiny SD with a preview every 2 steps for every job (linear latent-to-RGB map)
    defaults: {width: 64, height: 64, num_inference_steps: 8, guidance_scale: 5.0}
    limits: {max_steps: 5000}
    runtime: {dtype: float32, memory_mb: 64, preview_every: 2}
  - id: test/preview-controlnet
    task: text-to-image
    family: diffusers-controlnet
    source: tiny://sd
    title: Tiny SD + canny ControlNet with step previews
    defaults: {width: 64, height: 64, num_inference_steps: 8, guidance_scale: 5.0}
    limits: {max_width: 128, max_height: 128, max_steps: 5000}
    runtime: {dtype: float32, controlnet: "tiny://sd-controlnet", control_type: canny, memory_mb: 64,
              preview_decoder: "tiny://taesd"}
"""
TAESD, LINEAR, PLAIN = "test/preview-taesd", "test/preview-linear", "limner/tiny-sd"
CONTROLNET = "test/preview-controlnet"
STEP = re.compile(r"/preview-(\d{5})\.jpg")
LONG = 3000  # steps: a job long enough to watch, canceled once seen


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    catalog = tmp_path_factory.mktemp("previews") / "catalog.yaml"
    catalog.write_text(CATALOG)
    live = start_live(catalog, env={"LIMNER_WEBHOOK_ALLOW_HOSTS": "127.0.0.1"})
    yield live
    stop_live(live)


@pytest.fixture
def client(server: Live) -> Iterator[httpx.Client]:
    with server.client() as http:
        yield http


def picture(http: httpx.Client, url: str) -> Image.Image:
    response = http.get(url)
    assert response.status_code == 200 and response.headers["content-type"] == "image/jpeg"
    image = Image.open(io.BytesIO(response.content))
    image.load()
    return image


def step_of(url: str) -> int:
    found = STEP.search(url)
    assert found is not None, url
    return int(found.group(1))


def watch_and_cancel(http: httpx.Client, model: str, body: dict[str, Any]) -> tuple[str, str]:
    """Submit a long job, wait for a preview on the status route, cancel; (request id, URL)."""
    job = submit(http, model, {"seed": 1, "num_inference_steps": LONG, **body}, **{"X-Limner-Cache": "off"})
    seen = wait_state(http, model, job["request_id"], lambda s: "preview_url" in s["progress"])
    http.put(f"/v1/queue/{model}/requests/{job['request_id']}/cancel")
    wait_done(http, model, job["request_id"])
    return job["request_id"], seen["progress"]["preview_url"]


def test_status_route_shows_a_tiny_autoencoder_preview(client: httpx.Client) -> None:
    _, url = watch_and_cancel(client, TAESD, {"prompt": "a lantern", "preview": True})
    step = step_of(url)
    assert step % 4 == 0 and 0 < step < LONG  # every 4 steps when the catalog says nothing
    assert picture(client, url).size == (64, 64)  # the tiny autoencoder decodes at full size


def test_sse_stream_carries_previews_and_the_result_follows(client: httpx.Client) -> None:
    steps = 400
    job = submit(
        client,
        TAESD,
        {"prompt": "a harbour", "seed": 3, "num_inference_steps": steps, "preview": True},
        **{"X-Limner-Cache": "off"},
    )
    events = sse_events(client, job["status_url"] + "/stream")
    urls = [e["progress"]["preview_url"] for e in events if "preview_url" in e["progress"]]
    assert urls, "no preview reached the stream"
    assert all(e["progress"]["stage"] == "denoising" for e in events if "preview_url" in e["progress"])
    assert all(step_of(u) % 4 == 0 and step_of(u) < steps for u in urls)
    seen = [step_of(u) for u in urls]  # a preview stays in the progress until the next one
    assert seen == sorted(seen) and len(set(seen)) > 1
    assert events[-1]["state"] == "succeeded" and "preview_url" not in events[-1]["progress"]
    picture(client, urls[-1])


def test_websocket_and_webhooks_carry_previews(server: Live, client: httpx.Client) -> None:
    with receiver() as hook:
        job = client.post(
            f"/v1/queue/{TAESD}",
            params={"webhook_url": hook.url, "webhook_events": "progress,completed"},
            json={"prompt": "a lighthouse", "seed": 4, "num_inference_steps": LONG, "preview": True},
            headers={"X-Limner-Cache": "off"},
        ).json()
        ws = server.base.replace("http://", "ws://") + f"/v1/queue/{TAESD}/requests/{job['request_id']}/status/ws"
        with connect(ws, open_timeout=10) as socket:
            while True:
                message = json.loads(socket.recv(timeout=60))
                if "preview_url" in message["progress"]:
                    break
        picture(client, message["progress"]["preview_url"])
        delivered = hook.wait_for(lambda seen: any("preview_url" in (r.json.get("payload") or {}) for r in seen))
        client.put(f"/v1/queue/{TAESD}/requests/{job['request_id']}/cancel")
        wait_done(client, TAESD, job["request_id"])
    url = next(r.json["payload"]["preview_url"] for r in delivered if "preview_url" in (r.json.get("payload") or {}))
    assert url.startswith("http") and step_of(url) % 4 == 0  # a URL the receiver can fetch, not a storage ref
    picture(client, url)


def test_catalog_previews_with_the_linear_map_and_opting_out(client: httpx.Client) -> None:
    _, url = watch_and_cancel(client, LINEAR, {"prompt": "a meadow"})  # no flag: the catalog's every 2 steps
    assert step_of(url) % 2 == 0
    assert picture(client, url).size == (8, 8)  # one pixel per latent pixel (64 px / the VAE's factor 8)
    # Opted out: long past the steps that would have had previews, the progress has none.
    job = submit(client, LINEAR, {"prompt": "none", "seed": 2, "num_inference_steps": LONG, "preview": False})
    status = wait_state(client, LINEAR, job["request_id"], lambda s: s["progress"]["step"] >= 40)
    assert status["state"] == "running" and "preview_url" not in status["progress"]
    client.put(f"/v1/queue/{LINEAR}/requests/{job['request_id']}/cancel")
    wait_done(client, LINEAR, job["request_id"])
    # A model without previews in its catalog entry, asked for none: its stream has none.
    job = submit(client, PLAIN, {"prompt": "none", "seed": 2, "num_inference_steps": 50})
    events = sse_events(client, job["status_url"] + "/stream")
    assert events[-1]["state"] == "succeeded" and not [e for e in events if "preview_url" in e["progress"]]


def test_controlnet_family_previews_too(client: httpx.Client) -> None:
    square = Image.new("RGB", (64, 64), "black")
    square.paste((255, 255, 255), (16, 16, 48, 48))
    _, url = watch_and_cancel(
        client, CONTROLNET, {"prompt": "a box", "preview": True, "control_image": data_uri(square)}
    )
    assert step_of(url) % 4 == 0 and picture(client, url).size == (64, 64)


def test_asking_for_previews_does_not_change_what_the_cache_answers(client: httpx.Client) -> None:
    body = {"prompt": "a cached lantern", "seed": 77, "num_inference_steps": 4}
    first = client.post(f"/v1/run/{TAESD}", json=body)
    again = client.post(f"/v1/run/{TAESD}", json={**body, "preview": True})
    assert first.status_code == again.status_code == 200, again.text
    assert again.json()["cache"]["hit"] == "exact"  # previews change the progress, never the picture
    assert again.json()["cache"]["source_request_id"] == first.headers["X-Limner-Request-Id"]


def test_preview_flag_is_validated(client: httpx.Client) -> None:
    answer = client.post(f"/v1/queue/{TAESD}", json={"prompt": "x", "preview": "sometimes"})
    assert answer.status_code == 422 and "preview" in json.dumps(answer.json()["detail"])
