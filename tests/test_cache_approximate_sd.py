"""Approximate caching's mechanism on a real (tiny, random-weight) Stable Diffusion pipeline,
driven directly: keep the latent after K steps with callback_on_step_end, restart another run
from it with only the remaining steps, and count the UNet calls.

Tiny random weights say nothing about image quality; what they show is that the restart is
the same computation: resumed with its own prompt, a run gives the full run's image; resumed
with another prompt, it runs N - K steps and gives a valid image nearer the cached job's than
an unrelated seed's run is."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
diffusers = pytest.importorskip("diffusers")

from limner.cache.resume import capture, resume_arguments, supports_resume  # noqa: E402
from limner.tiny import build_tiny  # noqa: E402

STEPS, K = 8, 4
PROMPT = "a red leather armchair in a sunny living room"
OTHER = "a red leather armchair in a sunlit living room, product photo"


@pytest.fixture(scope="module")
def pipe(tmp_path_factory: pytest.TempPathFactory) -> Any:
    folder = tmp_path_factory.mktemp("tiny") / "sd"
    build_tiny("sd", folder)
    pipeline = diffusers.DiffusionPipeline.from_pretrained(str(folder), use_safetensors=True)
    pipeline.set_progress_bar_config(disable=True)
    calls = {"unet": 0}
    pipeline.unet.register_forward_pre_hook(lambda *_: calls.__setitem__("unet", calls["unet"] + 1))
    pipeline.calls = calls
    return pipeline


def run(pipe: Any, prompt: str, seed: int, **kwargs: Any) -> tuple[np.ndarray[Any, Any], int]:
    pipe.calls["unet"] = 0
    args: dict[str, Any] = {"num_inference_steps": STEPS, **kwargs}
    with torch.inference_mode():
        out = pipe(
            prompt=prompt,
            width=64,
            height=64,
            guidance_scale=5.0,
            generator=torch.Generator("cpu").manual_seed(seed),
            output_type="np",
            **args,
        )
    return np.asarray(out.images[0], dtype=np.float32), pipe.calls["unet"]


def test_restart_from_a_cached_step_latent_skips_k_steps(pipe: Any) -> None:
    assert supports_resume(pipe)
    kept: dict[int, np.ndarray[Any, Any]] = {}
    full, full_calls = run(pipe, PROMPT, seed=1, callback_on_step_end=capture([2, K], kept))
    assert full_calls == STEPS and sorted(kept) == [2, K]
    assert kept[K].shape == (1, 4, 8, 8) and kept[K].dtype == np.float16  # 64 px -> 8x8 latent

    # Resumed with its own prompt: the same computation as steps K+1..N of the full run.
    args = resume_arguments(pipe, kept[K], K, STEPS)
    assert len(args["timesteps"]) == STEPS - K
    same, same_calls = run(pipe, PROMPT, seed=1, num_inference_steps=None, **args)
    assert same_calls == STEPS - K
    assert np.abs(same - full).max() < 0.02  # float16 storage of the latent is the only difference

    # Resumed with a paraphrase: N - K steps, a valid image, near the cached job's.
    resumed, calls = run(pipe, OTHER, seed=2, num_inference_steps=None, **resume_arguments(pipe, kept[K], K, STEPS))
    assert calls == STEPS - K
    assert resumed.shape == (64, 64, 3) and np.isfinite(resumed).all() and 0 <= resumed.min() <= resumed.max() <= 1
    fresh, fresh_calls = run(pipe, OTHER, seed=2)
    assert fresh_calls == STEPS
    assert np.abs(resumed - full).mean() < np.abs(fresh - full).mean()


def test_captured_latents_round_trip_through_the_latent_store(pipe: Any, tmp_path: Path) -> None:
    from limner.cache.latents import LatentStore

    kept: dict[int, np.ndarray[Any, Any]] = {}
    run(pipe, PROMPT, seed=3, callback_on_step_end=capture([K], kept))
    store = LatentStore(tmp_path / "latents", budget_bytes=1 << 20)
    embedding = np.ones(384, dtype=np.float32) / np.sqrt(384)
    store.save(
        "proj", "m/sd", "job-1", revision_key="r", group_key="g", prompt=PROMPT, embedding=embedding,
        total_steps=STEPS, latents=kept,
    )  # fmt: skip
    (record,) = store.records("proj", "m/sd")
    loaded = store.load(record, K)
    assert loaded is not None and np.array_equal(loaded, kept[K])
    restarted, calls = run(pipe, PROMPT, seed=3, num_inference_steps=None, **resume_arguments(pipe, loaded, K, STEPS))
    assert calls == STEPS - K and np.isfinite(restarted).all()
