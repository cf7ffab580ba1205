"""Approximate caching through the HTTP API (NIRVANA): a request near a cached one but not a
hit (one attribute changed) starts from that job's latent after K steps and runs the rest; a
request with an explicit seed never does."""

from __future__ import annotations

import httpx

from tests.jobs import fetch_image, generate, result, sse_events, submit

MODEL = "test/approximate-sd"


def test_a_near_miss_resumes_from_the_cached_latent(http: httpx.Client) -> None:
    handle = submit(http, MODEL, {"prompt": "a red leather armchair in a sunny living room, product photo"})
    sse_events(http, handle["status_url"] + "/stream")
    first_id = handle["request_id"]
    assert not (result(http, MODEL, first_id).get("cache") or {}).get("hit")
    handle = submit(http, MODEL, {"prompt": "a blue leather armchair in a sunny living room, product photo"})
    events = sse_events(http, handle["status_url"] + "/stream")
    near = result(http, MODEL, handle["request_id"])
    cache = near["cache"]
    assert cache["hit"] == "approximate" and cache["method"] == "nirvana", cache
    assert cache["source_request_id"] == first_id
    assert 0 < cache["skipped_steps"] < cache["total_steps"] == 20
    assert cache["matched_prompt"].startswith("a red leather armchair")
    # The run did only the remaining steps: its step callback counted them, and any denoising
    # progress the stream caught (writes are coalesced, so a fast run may show none) agrees.
    assert cache["ran_steps"] == 20 - cache["skipped_steps"]
    denoising = [e["progress"] for e in events if e["progress"]["stage"] == "denoising" and e["progress"]["total"]]
    assert all(p["total"] == 20 - cache["skipped_steps"] for p in denoising), denoising
    image = fetch_image(http, near["images"][0]["url"])
    assert image.size == (64, 64)
    # A seeded request asks for that seed's image: it runs in full.
    seeded = generate(
        http, MODEL, {"prompt": "a green leather armchair in a sunny living room, product photo", "seed": 3}
    )
    assert (seeded.get("cache") or {}).get("hit") != "approximate"
