"""Dynamic batching through the server: same-model jobs share a forward pass, and an image
depends only on its own input and seed, not on the batch it ran in."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.jobs import pixels, result, submit, wait_done
from tests.test_recovery import Stack

SD = "limner/tiny-sd"


@pytest.fixture
def stack(catalogs: tuple[Path, Path]) -> Iterator[Stack]:
    s = Stack(catalogs[0])
    yield s
    s.close()


def test_queued_jobs_run_in_batches_with_the_same_images(stack: Stack) -> None:
    stack.start_api()
    with httpx.Client(base_url=stack.base, timeout=30) as http:
        # Queued while no worker runs, so the worker finds them all at once.
        handles = [submit(http, SD, {"prompt": f"tile {i}", "seed": 100 + i}) for i in range(8)]
        odd = submit(http, SD, {"prompt": "other size", "seed": 1, "width": 128})  # cannot share their batch
        stack.start_worker()
        for handle in [*handles, odd]:
            assert wait_done(http, SD, handle["request_id"], timeout=180)["state"] == "succeeded"
        batched = [result(http, SD, h["request_id"]) for h in handles]
        assert max(r["batch_size"] for r in batched) == 8
        assert result(http, SD, odd["request_id"])["batch_size"] == 1
        # The same inputs again, one at a time: identical images.
        for i in (0, 5):
            # Cache off: the same seeded request would otherwise be answered from the cache.
            alone = submit(http, SD, {"prompt": f"tile {i}", "seed": 100 + i}, **{"X-Limner-Cache": "off"})
            wait_done(http, SD, alone["request_id"])
            single = result(http, SD, alone["request_id"])
            assert single["batch_size"] == 1
            a = pixels(http, single["images"][0]["url"])
            b = pixels(http, batched[i]["images"][0]["url"])
            assert np.abs(a - b).max() <= 1, "batching changed the image"
