"""Run by tests/test_providers_fal.py in a process of its own (fal-client reads FAL_QUEUE_RUN_HOST
and FAL_KEY when it is imported): fal-client calls a limner *route*, with fal's own field
names, and submits one more request with a webhook. Prints one JSON object of what it saw."""

from __future__ import annotations

import json
import sys
from typing import Any

import fal_client

ROUTE, WEBHOOK = sys.argv[1], sys.argv[2]

seen: dict[str, Any] = {}
updates: list[str] = []
result = fal_client.subscribe(
    ROUTE,
    {"prompt": "a routed lighthouse", "seed": 5, "image_size": {"width": 64, "height": 64}, "num_images": 2},
    with_logs=True,
    on_queue_update=lambda status: updates.append(type(status).__name__),
)
seen["updates"] = updates
seen["images"] = [[image["width"], image["height"]] for image in result["images"]]
seen["routing"] = result["routing"]
handle = fal_client.submit(ROUTE, {"prompt": "hooked", "seed": 6}, webhook_url=WEBHOOK)
seen["hooked"] = handle.request_id
print(json.dumps(seen))
