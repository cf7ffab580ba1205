"""Model residency: least recently used out first, under a memory budget."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from limner.adapters.base import Adapter, JobOutput, LoadedModel, LoadEnv, LoadReporter, RunContext, WorkItem
from limner.catalog.entry import CatalogEntry
from limner.runtime.residency import MB, Residency


class Recorder:
    """A stand-in adapter that records loads and unloads (sizes come from the entries)."""

    def __init__(self) -> None:
        self.loaded: list[str] = []
        self.unloaded: list[str] = []

    def load(self, entry: CatalogEntry, env: LoadEnv) -> LoadedModel:
        self.loaded.append(entry.id)
        size = int(entry.description or 0) * MB
        return LoadedModel(handle=entry.id, revision="r", size_bytes=size, device="cpu")

    def run(
        self, model: LoadedModel, entry: CatalogEntry, items: Sequence[WorkItem[Any]], ctx: RunContext
    ) -> list[JobOutput]:
        return []

    def unload(self, model: LoadedModel) -> None:
        self.unloaded.append(model.handle)


def entry(name: str, estimate_mb: int, actual_mb: int | None = None, source: str | None = None) -> CatalogEntry:
    return CatalogEntry(
        id=f"t/{name}",
        task="text-to-image",
        family="diffusers-image",
        source=source or f"tiny://{name}",
        description=str(actual_mb if actual_mb is not None else estimate_mb),
        runtime={"memory_mb": estimate_mb},
    )


def make(budget_mb: int) -> tuple[Residency, Recorder]:
    recorder = Recorder()

    def load(e: CatalogEntry, report: LoadReporter) -> tuple[Adapter, LoadedModel]:
        return recorder, recorder.load(e, LoadEnv(device="cpu", models_dir=Path("/nonexistent"), report=report))

    return Residency(budget_mb * MB, load), recorder


def test_lru_eviction_under_the_budget() -> None:
    residency, rec = make(100)
    a, b, c = entry("a", 40), entry("b", 40), entry("c", 40)
    residency.get(a)
    residency.get(b)
    residency.get(a)  # a is now the most recently used
    residency.get(c)  # 120 > 100: b goes
    assert rec.unloaded == ["t/b"]
    assert sorted(residency.keys()) == sorted([a.residency_key, c.residency_key])
    assert rec.loaded == ["t/a", "t/b", "t/c"]
    assert residency.used_bytes == 80 * MB and residency.evictions == 1


def test_entries_with_the_same_weights_share_one_copy() -> None:
    residency, rec = make(100)
    text = entry("x", 10, source="tiny://sd")
    img2img = CatalogEntry(
        id="t/x-img2img", task="image-to-image", family="diffusers-image", source="tiny://sd", runtime={"memory_mb": 10}
    )
    assert residency.get(text) is residency.get(img2img)
    assert rec.loaded == ["t/x"]


def test_a_low_estimate_is_corrected_after_loading() -> None:
    residency, rec = make(100)
    residency.get(entry("a", 10, actual_mb=60))
    residency.get(entry("b", 10, actual_mb=60))  # estimate fit, the real size did not
    assert rec.unloaded == ["t/a"]
    # A model bigger than the whole budget still loads (alone).
    residency.get(entry("huge", 500))
    assert rec.unloaded == ["t/a", "t/b"] and len(residency.keys()) == 1
