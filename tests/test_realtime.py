"""The real-time lane through the API: a WebSocket per client session, frames answered by a
worker's warm copy of the model, the latest input winning over waiting ones, no job row per
frame and the usage still counted, under the caller's key and project. One server of its own
with API keys on (an admin key from the CLI, member keys of projects alpha and beta)."""

from __future__ import annotations

import base64
import io
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from tests.conftest import Live
from tests.live import create_key, project_keys, start_live, stop_live

CATALOG = """
models:
  - id: test/realtime-sd
    task: text-to-image
    family: diffusers-image
    source: tiny://sd
    title: Tiny SD with a real-time lane
    defaults: {width: 64, height: 64, num_inference_steps: 2, guidance_scale: 5.0}
    limits: {max_steps: 2000}
    runtime: {dtype: float32, memory_mb: 64, realtime: true}
"""
MODEL = "test/realtime-sd"


@dataclass
class Keys:
    live: Live
    alpha: str
    beta: str

    def client(self, key: str) -> httpx.Client:
        return httpx.Client(base_url=self.live.base, timeout=120, headers={"Authorization": f"Key {key}"})

    def socket(self, key: str | None, model: str = MODEL) -> ClientConnection:
        url = self.live.base.replace("http://", "ws://") + f"/v1/realtime/{model}"
        return connect(f"{url}?key={key}" if key else url, open_timeout=30, max_size=None)


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Keys]:
    catalog = tmp_path_factory.mktemp("realtime") / "catalog.yaml"
    catalog.write_text(CATALOG)
    live = start_live(catalog)
    members = project_keys(live.base, create_key(live.home, live.env))
    yield Keys(live, members["alpha"], members["beta"])
    stop_live(live)


def receive(socket: ClientConnection) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(socket.recv(timeout=120))
    return message


def decoded(url: str) -> np.ndarray[Any, Any]:
    assert url.startswith("data:image/png;base64,")
    with Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))) as image:
        return np.asarray(image.convert("RGB"))


def test_each_input_gets_its_image_the_same_as_the_queue_makes(keys: Keys) -> None:
    body = {"prompt": "a paper boat", "seed": 21, "num_inference_steps": 3}
    with keys.socket(keys.alpha) as socket:
        socket.send(json.dumps({**body, "request_id": "boat"}))
        first = receive(socket)
        socket.send(json.dumps({**body, "seed": 22}))  # no request_id: the server numbers it
        second = receive(socket)
    assert first["type"] == "result" and first["request_id"] == "boat" and first["seed"] == 21
    assert second["type"] == "result" and second["request_id"] == "frame-2"
    image = first["images"][0]
    assert (image["width"], image["height"]) == (64, 64) and image["content_type"] == "image/png"
    assert first["timings"]["inference_s"] > 0 and first["timings"]["total_s"] >= first["timings"]["inference_s"]
    with keys.client(keys.alpha) as alpha:
        queued = alpha.post(f"/v1/run/{MODEL}", json=body, headers={"X-Limner-Cache": "off"})
        assert queued.status_code == 200, queued.text
        made = alpha.get(queued.json()["images"][0]["url"])
    with Image.open(io.BytesIO(made.content)) as from_queue:
        assert np.array_equal(decoded(image["url"]), np.asarray(from_queue.convert("RGB")))
    assert not np.array_equal(decoded(image["url"]), decoded(second["images"][0]["url"]))


def test_the_latest_input_wins(keys: Keys) -> None:
    with keys.socket(keys.alpha) as socket:
        # The first frame is slow enough that the next four all arrive while it runs.
        socket.send(json.dumps({"prompt": "slow", "seed": 1, "num_inference_steps": 600, "request_id": "r1"}))
        for n in range(2, 6):
            socket.send(json.dumps({"prompt": f"frame {n}", "seed": n, "request_id": f"r{n}"}))
        answers = [receive(socket) for _ in range(5)]
    kinds = {a["request_id"]: a["type"] for a in answers}
    assert kinds == {"r1": "result", "r2": "skipped", "r3": "skipped", "r4": "skipped", "r5": "result"}
    assert [a["request_id"] for a in answers if a["type"] == "result"] == ["r1", "r5"]


def test_bad_inputs_are_answered_and_the_session_goes_on(keys: Keys) -> None:
    with keys.socket(keys.alpha) as socket:
        socket.send(json.dumps({"prompt": "x", "num_inference_steps": 5000, "request_id": "big"}))
        over = receive(socket)
        socket.send("not json")
        garbled = receive(socket)
        socket.send(json.dumps({"prompt": "x", "image": "data:image/png;base64,AAAA"}))
        extra = receive(socket)
        socket.send(json.dumps({"prompt": "fine", "seed": 3}))
        fine = receive(socket)
    assert over["type"] == "error" and over["request_id"] == "big" and over["error_type"] == "limit_exceeded"
    assert over["detail"][0]["loc"] == ["body", "num_inference_steps"] and "2000" in over["detail"][0]["msg"]
    assert garbled["type"] == "error" and garbled["error_type"] == "invalid_input"
    assert extra["type"] == "error" and extra["detail"][0]["loc"][-1] == "image"  # not a field of text-to-image
    assert fine["type"] == "result"


def test_no_job_rows_but_usage_adds_up_in_the_callers_project(keys: Keys) -> None:
    with keys.client(keys.alpha) as alpha, keys.client(keys.beta) as beta:
        before = alpha.get("/v1/requests", params={"model": MODEL}).json()["requests"]
        with keys.socket(keys.beta) as socket:
            for seed in range(3):
                socket.send(json.dumps({"prompt": "beta's frames", "seed": seed, "num_outputs": 2}))
                assert receive(socket)["type"] == "result"
        # The session's usage is written when it closes: wait for it.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            totals = beta.get("/v1/usage", params={"model": MODEL}).json()["totals"]
            if totals.get("outputs"):
                break
            time.sleep(0.1)
        assert totals["outputs"] == 6 and totals["compute_s"] > 0 and totals["jobs"] == 1  # one row per session
        assert beta.get("/v1/requests", params={"model": MODEL}).json()["requests"] == []  # no row per frame
        assert alpha.get("/v1/requests", params={"model": MODEL}).json()["requests"] == before
        alpha_usage = alpha.get("/v1/usage", params={"model": MODEL, "group_by": "project"}).json()["usage"]
        assert all(row["project"] == "alpha" for row in alpha_usage)  # beta's frames stay beta's


def test_keys_and_lanes_are_checked(keys: Keys) -> None:
    with pytest.raises(InvalidStatus), keys.socket(None):
        pass
    with pytest.raises(InvalidStatus), keys.socket("lmk_not-a-key"):
        pass
    for model in ("limner/tiny-sd", "nobody/nothing"):  # a model without a lane; no model at all
        with keys.socket(keys.alpha, model) as socket, pytest.raises(ConnectionClosed) as shut:
            socket.recv(timeout=30)
        assert shut.value.rcvd is not None and shut.value.rcvd.code == 4404
