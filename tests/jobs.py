"""Test helpers that drive jobs through the HTTP API."""

from __future__ import annotations

import base64
import io
import json
import time
from typing import Any

import httpx
import numpy as np
from PIL import Image


def submit(http: httpx.Client, model: str, body: dict[str, Any], **headers: str) -> dict[str, Any]:
    response = http.post(f"/v1/queue/{model}", json=body, headers=headers)
    assert response.status_code == 202, response.text
    handle: dict[str, Any] = response.json()
    return handle


def wait_done(http: httpx.Client, model: str, request_id: str, timeout: float = 120) -> dict[str, Any]:
    """Poll the status route until the job is COMPLETED; returns the last status body."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = http.get(f"/v1/queue/{model}/requests/{request_id}/status")
        body: dict[str, Any] = response.json()
        if body["status"] == "COMPLETED":
            assert response.status_code == 200
            return body
        assert response.status_code == 202
        time.sleep(0.05)
    raise TimeoutError(f"{model} {request_id} did not finish in {timeout} s")


def wait_state(http: httpx.Client, model: str, request_id: str, predicate: Any, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body: dict[str, Any] = http.get(f"/v1/queue/{model}/requests/{request_id}/status").json()
        if predicate(body):
            return body
        time.sleep(0.02)
    raise TimeoutError(f"{model} {request_id} never reached the awaited state")


def result(http: httpx.Client, model: str, request_id: str) -> dict[str, Any]:
    response = http.get(f"/v1/queue/{model}/requests/{request_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def generate(http: httpx.Client, model: str, body: dict[str, Any]) -> dict[str, Any]:
    handle = submit(http, model, body)
    status = wait_done(http, model, handle["request_id"])
    assert status["state"] == "succeeded", status
    return result(http, model, handle["request_id"])


def fetch_image(http: httpx.Client, url: str) -> Image.Image:
    response = http.get(url)
    assert response.status_code == 200, response.text
    image = Image.open(io.BytesIO(response.content))
    image.load()
    return image


def pixels(http: httpx.Client, url: str) -> np.ndarray[Any, Any]:
    return np.asarray(fetch_image(http, url).convert("RGB"), dtype=np.int16)


def data_uri(image: Image.Image, fmt: str = "PNG") -> str:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    mime = "image/png" if fmt == "PNG" else f"image/{fmt.lower()}"
    return f"data:{mime};base64,{base64.b64encode(buffer.getvalue()).decode()}"


def sse_events(http: httpx.Client, url: str) -> list[dict[str, Any]]:
    """Read a status stream to its end."""
    events: list[dict[str, Any]] = []
    with http.stream("GET", url, timeout=httpx.Timeout(60, read=60)) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("data:"):
                events.append(json.loads(line[5:].strip()))
    return events
