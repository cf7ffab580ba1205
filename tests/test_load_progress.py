"""A model's first job says that it waits for the model: ``loading`` (and ``building`` for a
tiny:// build on first use) in its progress, and a line for each in its logs; the next job of
the resident model goes straight to work. Through a live limner of its own, so that the
model is built and loaded fresh."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from limner.progress import Stage
from tests.conftest import Live
from tests.jobs import sse_events, submit
from tests.live import start_live, stop_live

MODEL = "test/first-use"
CATALOG = f"""
models:
  - id: {MODEL}
    task: text-to-image
    family: diffusers-image
    source: tiny://sd
    defaults: {{width: 64, height: 64, num_inference_steps: 2}}
    runtime: {{dtype: float32, memory_mb: 64}}
"""


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    catalog = tmp_path_factory.mktemp("first-use") / "catalog.yaml"
    catalog.write_text(CATALOG)
    live = start_live(catalog)
    yield live
    stop_live(live)


def follow(http: httpx.Client, prompt: str) -> list[dict[str, object]]:
    handle = submit(http, MODEL, {"prompt": prompt, "seed": 1})
    return sse_events(http, f"{handle['status_url']}/stream?logs=1")


def worker_lines(event: dict[str, object]) -> list[str]:
    logs = event["logs"]
    assert isinstance(logs, list)
    return [line["message"] for line in logs if line["source"] == "worker"]


def test_the_first_job_reports_building_and_loading_then_the_next_goes_straight_on(fresh: Live) -> None:
    assert not (Path(fresh.home) / "models" / "tiny" / "sd").exists()
    with fresh.client() as http:
        events = follow(http, "first")
        last = events[-1]
        assert last["status"] == "COMPLETED" and last["state"] == "succeeded", last
        stages = [e["progress"]["stage"] for e in events]  # type: ignore[index]
        # Loading lasts seconds here (the worker imports diffusers for its first model), so the
        # stream sees it; building a tiny SD takes a fraction of that, so only the logs are sure to.
        assert Stage.LOADING in stages, stages
        assert stages.index(Stage.STARTING) < stages.index(Stage.LOADING) < stages.index(Stage.COMPLETED)
        lines = worker_lines(last)
        load_lines = [m for m in lines if m.split(" ", 1)[0] in ("loading", "building", "built", "loaded")]
        assert load_lines[0] == f"loading {MODEL} (tiny://sd) on cpu"
        assert load_lines[1] == f"building {MODEL} (tiny://sd) for its first use"
        assert load_lines[2].startswith("built tiny://sd in ")
        assert load_lines[3].startswith(f"loaded {MODEL} (tiny-") and len(load_lines) == 4
        assert (Path(fresh.home) / "models" / "tiny" / "sd" / "model_index.json").is_file()

        again = follow(http, "second")
        assert again[-1]["state"] == "succeeded"
        assert Stage.LOADING not in [e["progress"]["stage"] for e in again]  # type: ignore[index]
        assert not [m for m in worker_lines(again[-1]) if m.startswith(("loading", "building", "loaded"))]
