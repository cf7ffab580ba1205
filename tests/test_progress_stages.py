"""The diffusers image family reports the named stages of the progress contract, in order."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from limner.adapters.base import LoadEnv, work_item
from limner.progress import STAGES, Stage

os.environ.setdefault("HF_HUB_OFFLINE", "1")
pytest.importorskip("diffusers")


class Recorder:
    """A RunContext that remembers what it was told."""

    def __init__(self) -> None:
        self.events: list[tuple[Stage, int, int]] = []
        self._stage = Stage.STARTING

    def stage(self, name: Stage) -> None:
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
    [output] = adapter.run(model, entry, [work_item(entry.task, "j", spec)], recorder)
    assert len(output.files["images"]) == 1
    stages = [name for name, _step, _total in recorder.events if _step == 0]
    assert stages == [Stage.ENCODING_PROMPT, Stage.DENOISING, Stage.DECODING, Stage.ENCODING_MEDIA]
    steps = [(s, t) for name, s, t in recorder.events if name == Stage.DENOISING and s]
    assert steps == [(1, 3), (2, 3), (3, 3)]
    assert set(stages) <= set(STAGES)
    adapter.unload(model)


def test_stage_values_are_the_wire_strings() -> None:
    """A stage serialises as its value: clients and stored rows keep reading the same strings."""
    import json

    from limner import progress

    assert json.dumps(progress.make(Stage.MAKING_CONTROL_MAP, 1, 2)) == (
        '{"stage": "making the control map", "step": 1, "total": 2, "percent": 50.0, "eta_s": null}'
    )
    assert [str(s) for s in STAGES[:4]] == ["queued", "starting", "building", "loading"]
    assert progress.QUEUED is Stage.QUEUED and progress.CANCELED is Stage.CANCELED
