"""Run by tests/test_fal_tls.py in a process of its own: fal-client reads FAL_QUEUE_RUN_HOST,
FAL_RUN_HOST and FAL_KEY when it is imported. Prints one JSON object of what it saw."""

from __future__ import annotations

import io
import json
import sys
from typing import Any

import fal_client
import httpx
from PIL import Image

MODEL, SLOW, UNSERVED = sys.argv[1], sys.argv[2], sys.argv[3]


def describe(status: Any) -> dict[str, Any]:
    kind = type(status).__name__
    out: dict[str, Any] = {"kind": kind}
    if isinstance(status, fal_client.Queued):
        out["position"] = status.position
    if isinstance(status, fal_client.InProgress | fal_client.Completed):
        out["logs"] = status.logs
    if isinstance(status, fal_client.Completed):
        out["error"], out["error_type"], out["metrics"] = status.error, status.error_type, status.metrics
    return out


def image_size(url: str) -> list[int]:
    response = httpx.get(url)  # trusts the test certificate through SSL_CERT_FILE
    response.raise_for_status()
    return list(Image.open(io.BytesIO(response.content)).size)


seen: dict[str, Any] = {}

handle = fal_client.submit(MODEL, {"prompt": "a lighthouse", "seed": 1, "width": 96})
seen["submitted"] = handle.request_id
seen["events"] = [describe(s) for s in handle.iter_events(with_logs=True, interval=0.05)]
result = handle.get()
seen["result_size"] = image_size(result["images"][0]["url"])
seen["status_by_id"] = describe(fal_client.status(MODEL, handle.request_id, with_logs=True))
seen["result_by_id_seed"] = fal_client.result(MODEL, handle.request_id)["seed"]

updates: list[dict[str, Any]] = []
enqueued: list[str] = []
subscribed = fal_client.subscribe(
    SLOW,
    {"prompt": "slowly", "seed": 2, "num_inference_steps": 40},
    with_logs=True,
    on_enqueue=enqueued.append,
    on_queue_update=lambda status: updates.append(describe(status)),
)
seen["subscribe"] = {"enqueued": enqueued, "updates": updates, "size": image_size(subscribed["images"][0]["url"])}

ran = fal_client.run(MODEL, {"prompt": "direct", "seed": 3})
seen["run_size"] = image_size(ran["images"][0]["url"])

queued = fal_client.submit(UNSERVED, {"prompt": "never runs"}, priority="low")
seen["queued_status"] = describe(queued.status())
queued.cancel()
seen["canceled_status"] = describe(queued.status(with_logs=True))
try:
    queued.get()
except fal_client.client.FalClientHTTPError as exc:
    seen["canceled_result"] = {"status": exc.status_code, "error_type": exc.error_type}
try:
    queued.cancel()
except fal_client.client.FalClientHTTPError as exc:
    seen["cancel_again"] = exc.status_code

try:
    fal_client.SyncClient(key="lmk_not_a_key").submit(MODEL, {"prompt": "x"})
except fal_client.client.FalClientHTTPError as exc:
    seen["bad_key"] = exc.status_code
try:
    fal_client.submit(MODEL, {"prompt": "x", "width": 4096})
except fal_client.client.FalClientHTTPError as exc:
    seen["bad_input"] = {"status": exc.status_code, "error_type": exc.error_type}

print(json.dumps(seen))
