"""The diffusers image family reports the named stages of the progress contract, in order."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from limner import progress
from limner.adapters.base import LoadEnv, WorkItem

os.environ.setdefault("HF_HUB_OFFLINE", "1")
pytest.importorskip("diffusers")


class Recorder:
    """A RunContext that remembers what it was told."""

    def __init__(self) -> None:
        self.events: list[tuple[str, int, int]] = []
        self._stage = ""

    def stage(self, name: str) -> None:
        self._stage = name
        self.events.append((name, 0, 0))

    def step(self, step: int, total: int) -> None:
        self.events.append((self._stage, step, total))

    def log(self, message: str, level: str = "info") -> None:
        pass

    def is_canceled(self, job_id: str) -> bool:
        return False

    def should_stop(self) -> bool:
        return False


def test_stages_in_order(tmp_path: Path) -> None:
    from limner.adapters import load_adapter
    from limner.catalog import load_catalog

    entry = load_catalog(()).get("limner/tiny-sd")
    adapter = load_adapter(entry.family)
    model = adapter.load(entry, LoadEnv(device="cpu", models_dir=tmp_path))
    spec = {**entry.defaults, "prompt": "stages", "seed": 1, "num_inference_steps": 3, "width": 64, "height": 64}
    recorder = Recorder()
    [output] = adapter.run(model, entry, [WorkItem(job_id="j", input=spec)], recorder)
    assert len(output.files["images"]) == 1
    stages = [name for name, _step, _total in recorder.events if name and _step == 0]
    assert stages == [progress.ENCODING_PROMPT, progress.DENOISING, progress.DECODING, progress.ENCODING_MEDIA]
    steps = [(s, t) for name, s, t in recorder.events if name == progress.DENOISING and s]
    assert steps == [(1, 3), (2, 3), (3, 3)]
    assert set(stages) <= set(progress.STAGES)
    adapter.unload(model)
