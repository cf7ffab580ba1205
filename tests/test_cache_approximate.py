"""Approximate caching around the adapter hook: the K policy, the latent store (safetensors
files, per-project folders, LRU under a budget), the nearest-latent lookup with the real
prompt embedder, what a resumed job records, and the CLIP quality gate."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from limner.cache.approximate import ApproximateCache, QualityGate, capture_points, k_for
from limner.cache.latents import LatentStore
from limner.catalog.entry import CatalogEntry
from limner.catalog.options import ApproximateOptions
from limner.store.records import Job

STEPS = 20


def entry(approximate: bool = True, shared: bool = False) -> CatalogEntry:
    return CatalogEntry.model_validate(
        {
            "id": "test/approx-sd",
            "task": "text-to-image",
            "family": "diffusers-image",
            "source": "tiny://sd",
            "cache": {"mode": "semantic", "semantic": True, "shared": shared, "approximate": {"enabled": approximate}},
        }
    )


def job(job_id: str, prompt: str, project: str = "alpha", mode: str = "semantic", width: int = 64) -> Job:
    spec = {"prompt": prompt, "width": width, "height": 64, "num_inference_steps": STEPS, "guidance_scale": 5.0}
    return Job(
        id=job_id, model_id="test/approx-sd", task="text-to-image", status="running", priority="normal", rank=0.0,
        input={**spec, "seed": 1, "num_outputs": 1}, batch_key="", idempotency_key=None, attempts=1,
        max_attempts=1, lease_owner="w", lease_expires_at=None, cancel_requested=False, progress=None, result=None,
        error=None, error_type=None, created_at=0.0, started_at=0.0, finished_at=None, updated_at=0.0,
        cache_mode=mode, project=project,
    )  # fmt: skip


@pytest.fixture(scope="module")
def embed() -> Any:
    from limner.cache.semantic import Embedder

    embedder = Embedder()
    return lambda text: embedder.encode([text])[0]


def test_k_follows_the_similarity_bands() -> None:
    options = ApproximateOptions(enabled=True)
    assert [k_for(s, 50, options) for s in (0.99, 0.95, 0.92, 0.87, 0.82, 0.77, 0.7)] == [25, 25, 20, 15, 10, 5, 0]
    assert capture_points(50, options) == [5, 10, 15, 20, 25]  # NIRVANA's K values for 50 steps
    assert capture_points(28, options) == [2, 5, 8, 11, 14]
    assert k_for(0.99, 3, options) == 0 and capture_points(3, options) == []  # too few steps to skip any
    with pytest.raises(ValueError, match="highest similarity down"):
        ApproximateOptions(bands=((0.8, 0.2), (0.9, 0.4)))


def test_latent_store_keeps_files_per_project_under_an_lru_budget(tmp_path: Path) -> None:
    latent = np.arange(4 * 8 * 8, dtype=np.float16).reshape(1, 4, 8, 8)  # 512 bytes
    embedding = np.ones(384, dtype=np.float32) / np.sqrt(384)  # 1,536 bytes
    store = LatentStore(tmp_path / "latents", budget_bytes=1 << 20)

    def save(project: str, job_id: str) -> Path | None:
        return store.save(
            project, "m/sd", job_id, revision_key="r", group_key="g", prompt=f"prompt of {job_id}",
            embedding=embedding, total_steps=STEPS, latents={4: latent, 8: latent + 1},
        )  # fmt: skip

    first = save("alpha", "a1")
    assert first is not None and first.suffix == ".safetensors"
    store.budget_bytes = int(3.5 * first.stat().st_size)  # room for three files (headers included)
    second, third = save("alpha", "a2"), save("beta", "b1")
    assert second and third
    assert [r.job_id for r in store.records("beta", "m/sd")] == ["b1"]  # beta sees only its own
    (a1,) = [r for r in store.records("alpha", "m/sd") if r.job_id == "a1"]
    assert a1.steps == (4, 8) and a1.total_steps == STEPS and a1.prompt == "prompt of a1"
    for path, age in ((first, 30), (second, 20), (third, 10)):
        os.utime(path, (time.time() - age, time.time() - age))
    loaded = store.load(a1, 8)  # reading a1 makes it the most recently used
    assert loaded is not None and np.array_equal(loaded, latent + 1)
    save("alpha", "a3")  # over budget: the least recently used file (a2) goes
    assert sorted(r.job_id for r in store.records("alpha", "m/sd")) == ["a1", "a3"]
    assert store.total_bytes() <= store.budget_bytes
    assert store.load(a1, 999) is None  # a step that was never saved
    huge = {1: np.zeros((1, 4, 64, 64), dtype=np.float32)}
    assert store.save("alpha", "m/sd", "big", revision_key="r", group_key="g", prompt="x", embedding=embedding,
                      total_steps=STEPS, latents=huge) is None  # fmt: skip


def test_nearest_cached_latents_give_a_plan_in_scope_only(tmp_path: Path, embed: Any) -> None:
    cache = ApproximateCache(LatentStore(tmp_path / "latents", 1 << 24), embed)
    model = entry()
    source = job("src", "a red leather armchair in a sunny living room")
    kept = {k: np.full((1, 4, 8, 8), k, dtype=np.float16) for k in capture_points(STEPS, model.cache.approximate)}
    batch = cache.for_batch(model, [source])
    assert batch.plan("src") is None  # nothing cached yet: runs in full
    assert batch.capture_steps("src", STEPS) == [2, 4, 6, 8, 10]
    assert batch.save("src", kept, STEPS) and batch.record("src") is None

    near = job("near", "a red velvet armchair in a sunny living room")
    reuse = cache.for_batch(model, [near])
    plan = reuse.plan("near")
    assert plan is not None and plan.source_request_id == "src"
    assert plan.skip_steps == k_for(plan.similarity, STEPS, model.cache.approximate) > 0
    assert np.array_equal(plan.latents, kept[plan.skip_steps])
    assert reuse.capture_steps("near", STEPS) == [k for k in kept if k > plan.skip_steps]
    assert reuse.record("near") == {
        "hit": "approximate",
        "method": "nirvana",
        "skipped_steps": plan.skip_steps,
        "total_steps": STEPS,
        "similarity": round(plan.similarity, 4),
        "matched_prompt": "a red leather armchair in a sunny living room",
        "source_request_id": "src",
    }

    def planned(other: Job, model_entry: CatalogEntry = model) -> bool:
        return cache.for_batch(model_entry, [other]).plan(other.id) is not None

    assert not planned(job("far", "a castle on a hill under the stars"))  # below every band
    assert not planned(job("beta", "a red velvet armchair in a sunny living room", project="beta"))
    assert not planned(job("seeded", "a red velvet armchair in a sunny living room", mode="exact"))
    assert not planned(job("wide", "a red velvet armchair in a sunny living room", width=128))
    assert not planned(near, entry(approximate=False))
    # A model that shares its cache across projects shares its latents too.
    shared = entry(shared=True)
    cache.for_batch(shared, [source]).save("src", kept, STEPS)
    assert planned(job("gamma", "a red velvet armchair in a sunny living room", project="gamma"), shared)


def test_quality_gate_compares_clip_scores_with_full_runs(tmp_path: Path) -> None:
    from limner.quality.clip import ClipScorer

    scorer = ClipScorer("tiny://clip", tmp_path / "models")
    gate = QualityGate(audit_every=2, window=3)
    assert [gate.next_is_audit("m") for _ in range(4)] == [False, True, False, True]
    rng = np.random.default_rng(0)
    noise = Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8))
    flat = Image.new("RGB", (64, 64), (200, 40, 40))
    audits = [gate.judge("m", scorer, "a red square", noise, flat) for _ in range(3)]
    assert all(0 <= a["clip_approximate"] <= 100 and 0 <= a["clip_full"] <= 100 for a in audits)
    approximate = np.mean([a["clip_approximate"] for a in audits])
    full = np.mean([a["clip_full"] for a in audits])
    drop = 0.05
    assert gate.allows("m", drop) == bool(approximate >= full * (1 - drop))
    assert gate.allows("other-model", drop)  # no audits yet: allowed
