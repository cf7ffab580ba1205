"""The tiny random-weight pipelines build offline and behave like real ones.

Each pipeline is built once per module, loaded through the ordinary
``DiffusionPipeline.from_pretrained`` path and exercised the way the product
uses real models: text-to-image, image-to-image and inpainting via
``from_pipe``, seeded determinism, batching with per-prompt generators, step
callbacks and interruption.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

import limner.tiny as tiny
from limner.tiny import build_tiny
from limner.tiny.tokenizers import (
    CLIP_MAX_LENGTH,
    T5_MAX_LENGTH,
    WORDS,
    build_clip_tokenizer,
    build_t5_tokenizer,
)

os.environ.setdefault("HF_HUB_OFFLINE", "1")
diffusers: Any = pytest.importorskip("diffusers")  # untyped for mypy; skip on API-only installs

import torch  # noqa: E402  (runtime extra only: after the skip above)

# The text-to-image builds this module exercises; the video and 3D builds are tested with
# their tasks (tests/test_video.py, tests/test_mesh.py).
IMAGE_PIPELINES = ("sd", "flux")
SIZE = 64
STEPS = 2
PROMPT = "a photo of a cat riding a horse"


@dataclass(frozen=True)
class Built:
    """One tiny pipeline: its name, folder and the loaded text-to-image pipe."""

    name: str
    dest: Path
    pipe: Any


@pytest.fixture(scope="module", params=IMAGE_PIPELINES)
def built(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Built:
    name: str = request.param
    dest = tmp_path_factory.mktemp(f"tiny-{name}") / name
    build_tiny(name, dest)
    pipe = diffusers.DiffusionPipeline.from_pretrained(dest)
    pipe.set_progress_bar_config(disable=True)
    return Built(name, dest, pipe)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _pixels(image: Image.Image) -> np.ndarray[Any, np.dtype[np.int16]]:
    return np.asarray(image, dtype=np.int16)


def _text_to_image(pipe: Any, seed: int, prompt: str = PROMPT, **kw: Any) -> Image.Image:
    kw = {"height": SIZE, "width": SIZE, "num_inference_steps": STEPS, **kw}
    images = pipe(prompt, generator=_gen(seed), **kw).images
    assert len(images) == 1
    image: Image.Image = images[0]
    return image


def _init_image() -> Image.Image:
    ramp = np.linspace(0, 255, SIZE, dtype=np.uint8)
    across, down = np.meshgrid(ramp, ramp)
    rgb = np.stack([across, down, np.full_like(across, 128)], axis=-1)
    return Image.fromarray(rgb, "RGB")


def _size_for(built: Built) -> dict[str, int]:
    """Flux img2img / inpaint default to 1024x1024, not the input image's size.

    SD's img2img takes its size from the image (and has no height/width
    arguments); the Flux pipelines must be told.
    """
    return {"height": SIZE, "width": SIZE} if built.name == "flux" else {}


def _mask() -> Image.Image:
    mask = Image.new("L", (SIZE, SIZE), 0)
    mask.paste(255, (SIZE // 4, SIZE // 4, 3 * SIZE // 4, 3 * SIZE // 4))
    return mask


# --- package-level behaviour -------------------------------------------------


def test_import_does_not_import_torch() -> None:
    src = str(Path(tiny.__file__).resolve().parents[2])
    heavy = "{'torch', 'diffusers', 'transformers'}"
    code = f"import sys, limner.tiny; assert not {heavy} & set(sys.modules), sys.modules.keys()"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
    subprocess.run([sys.executable, "-c", code], check=True, env=env)


def test_unknown_name_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"unknown tiny model 'nope'; known: sd, flux"):
        build_tiny("nope", tmp_path / "x")
    assert not (tmp_path / "x").exists()


def _fake_builder(marker: str) -> Any:
    def build(dest: Path) -> None:
        (dest / "model_index.json").write_text(marker)

    return build


def test_crash_mid_build_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def crash(dest: Path) -> None:
        (dest / "model_index.json").write_text("half")
        raise RuntimeError("boom")

    monkeypatch.setattr(tiny, "_BUILDERS", {"sd": crash})
    with pytest.raises(RuntimeError, match="boom"):
        build_tiny("sd", tmp_path / "sd")
    assert list(tmp_path.iterdir()) == []


def test_existing_build_is_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tiny, "_BUILDERS", {"sd": _fake_builder("first")})
    build_tiny("sd", tmp_path / "sd")
    monkeypatch.setattr(tiny, "_BUILDERS", {"sd": _fake_builder("second")})
    build_tiny("sd", tmp_path / "sd")
    assert (tmp_path / "sd" / "model_index.json").read_text() == "first"
    assert [p.name for p in tmp_path.iterdir()] == ["sd"]


def test_race_loser_discards_its_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dest = tmp_path / "sd"

    def lose_race(tmp: Path) -> None:
        _fake_builder("loser")(tmp)
        dest.mkdir()  # another process publishes while we are still building
        _fake_builder("winner")(dest)

    monkeypatch.setattr(tiny, "_BUILDERS", {"sd": lose_race})
    build_tiny("sd", dest)
    assert (dest / "model_index.json").read_text() == "winner"
    assert [p.name for p in tmp_path.iterdir()] == ["sd"]


def test_foreign_dest_is_not_replaced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "sd").mkdir()
    (tmp_path / "sd" / "notes.txt").write_text("mine")
    monkeypatch.setattr(tiny, "_BUILDERS", {"sd": _fake_builder("new")})
    with pytest.raises(FileExistsError):
        build_tiny("sd", tmp_path / "sd")
    assert [p.name for p in (tmp_path / "sd").iterdir()] == ["notes.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["sd"]


def test_tokenizers_cover_words_and_lengths() -> None:
    clip, t5 = build_clip_tokenizer(), build_t5_tokenizer()
    assert clip.model_max_length == CLIP_MAX_LENGTH
    assert t5.model_max_length == T5_MAX_LENGTH
    for word in WORDS:
        assert len(clip(word, add_special_tokens=False).input_ids) == 1, word
        assert len(t5(word, add_special_tokens=False).input_ids) == 1, word
    ids = clip("Ünïcode, 42!").input_ids
    assert clip.unk_token_id not in ids[1:-1]  # byte-level: nothing is unknown
    assert clip.decode(clip(PROMPT).input_ids, skip_special_tokens=True) == PROMPT
    assert t5.decode(t5(PROMPT).input_ids, skip_special_tokens=True) == PROMPT
    assert t5(PROMPT).input_ids[-1] == t5.eos_token_id


# --- each pipeline -----------------------------------------------------------


def test_build_is_byte_identical(built: Built, tmp_path: Path) -> None:
    again = tmp_path / "again"
    build_tiny(built.name, again)
    files = sorted(p.relative_to(built.dest) for p in built.dest.rglob("*") if p.is_file())
    assert [p.relative_to(again) for p in sorted(again.rglob("*")) if p.is_file()] == files
    weights = [f for f in files if f.suffix == ".safetensors"]
    assert weights, "weights must be safetensors"
    assert not [f for f in files if f.suffix in {".bin", ".pt", ".pth", ".ckpt"}]
    for rel in files:
        assert (built.dest / rel).read_bytes() == (again / rel).read_bytes(), rel


def test_loaded_like_a_real_model(built: Built) -> None:
    pipe = built.pipe
    expected = {"sd": "StableDiffusionPipeline", "flux": "FluxPipeline"}[built.name]
    assert type(pipe).__name__ == expected
    assert pipe.vae_scale_factor == 8
    assert pipe.tokenizer.model_max_length == CLIP_MAX_LENGTH
    assert pipe.tokenizer(PROMPT).input_ids == build_clip_tokenizer()(PROMPT).input_ids
    if built.name == "flux":
        assert pipe.tokenizer_2.model_max_length == T5_MAX_LENGTH
        assert pipe.tokenizer_2(PROMPT).input_ids == build_t5_tokenizer()(PROMPT).input_ids
    else:
        assert pipe.safety_checker is None


def test_latent_is_one_eighth(built: Built) -> None:
    latents = built.pipe(PROMPT, height=SIZE, width=SIZE, num_inference_steps=STEPS, output_type="latent").images
    side = SIZE // 8
    if built.name == "flux":  # packed 2x2 patches: (batch, tokens, 4 * channels)
        assert tuple(latents.shape) == (1, (side // 2) ** 2, 16)
    else:
        assert tuple(latents.shape) == (1, 4, side, side)


@pytest.mark.parametrize(("width", "height"), [(64, 64), (128, 96)])
def test_text_to_image(built: Built, width: int, height: int) -> None:
    image = _text_to_image(built.pipe, 0, width=width, height=height)
    assert isinstance(image, Image.Image)
    assert image.mode == "RGB"
    assert image.size == (width, height)
    assert _pixels(image).std() > 1.0  # not a blank frame


def test_seeds_are_deterministic(built: Built) -> None:
    first = _pixels(_text_to_image(built.pipe, 7))
    again = _pixels(_text_to_image(built.pipe, 7))
    other = _pixels(_text_to_image(built.pipe, 8))
    assert np.array_equal(first, again)
    assert np.abs(first - other).mean() > 5.0


def test_image_to_image(built: Built) -> None:
    pipe = diffusers.AutoPipelineForImage2Image.from_pipe(built.pipe)
    assert pipe.vae is built.pipe.vae  # from_pipe shares components, no reload
    kw: dict[str, Any] = {
        "image": _init_image(),
        "strength": 0.75,
        "num_inference_steps": STEPS,
        **_size_for(built),
    }
    images = [pipe(PROMPT, generator=_gen(s), **kw).images[0] for s in (1, 1, 2)]
    assert [im.size for im in images] == [(SIZE, SIZE)] * 3
    assert np.array_equal(_pixels(images[0]), _pixels(images[1]))
    assert not np.array_equal(_pixels(images[0]), _pixels(images[2]))


def test_inpainting(built: Built) -> None:
    pipe = diffusers.AutoPipelineForInpainting.from_pipe(built.pipe)
    assert "Inpaint" in type(pipe).__name__
    kw: dict[str, Any] = {
        "image": _init_image(),
        "mask_image": _mask(),
        "strength": 0.75,
        "num_inference_steps": STEPS,
        **_size_for(built),
    }
    images = [pipe(PROMPT, generator=_gen(s), **kw).images[0] for s in (1, 1, 2)]
    assert [im.size for im in images] == [(SIZE, SIZE)] * 3
    assert np.array_equal(_pixels(images[0]), _pixels(images[1]))
    assert not np.array_equal(_pixels(images[0]), _pixels(images[2]))


def test_batch_matches_single_calls(built: Built) -> None:
    prompts, seeds = ["a red cat", "a blue dog"], [3, 4]
    batch = built.pipe(
        prompts,
        generator=[_gen(s) for s in seeds],
        height=SIZE,
        width=SIZE,
        num_inference_steps=STEPS,
    ).images
    assert len(batch) == 2
    assert [im.size for im in batch] == [(SIZE, SIZE)] * 2
    singles = [_text_to_image(built.pipe, s, prompt=p) for p, s in zip(prompts, seeds, strict=True)]
    for batched, single in zip(batch, singles, strict=True):
        assert np.abs(_pixels(batched) - _pixels(single)).mean() <= 2.0
    assert not np.array_equal(_pixels(batch[0]), _pixels(batch[1]))


def _recorder(calls: list[tuple[Any, int, float]], stop_at: int | None = None) -> Any:
    def on_step_end(pipe: Any, step: int, timestep: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
        assert "latents" in kwargs
        calls.append((pipe, step, float(timestep)))
        if step == stop_at:
            pipe._interrupt = True
        return kwargs

    return on_step_end


def test_callback_once_per_step(built: Built) -> None:
    calls: list[tuple[Any, int, float]] = []
    _text_to_image(built.pipe, 0, num_inference_steps=3, callback_on_step_end=_recorder(calls))
    assert [step for _, step, _ in calls] == [0, 1, 2]
    assert all(pipe is built.pipe for pipe, _, _ in calls)
    timesteps = [t for _, _, t in calls]
    assert timesteps == sorted(timesteps, reverse=True)
    assert len(set(timesteps)) == 3


def test_interrupt_stops_early(built: Built) -> None:
    calls: list[tuple[Any, int, float]] = []
    image = _text_to_image(built.pipe, 0, num_inference_steps=5, callback_on_step_end=_recorder(calls, stop_at=1))
    assert [step for _, step, _ in calls] == [0, 1]
    assert image.size == (SIZE, SIZE)  # the partly denoised latents are still decoded
    calls.clear()
    _text_to_image(built.pipe, 0, num_inference_steps=3, callback_on_step_end=_recorder(calls))
    assert len(calls) == 3  # the next call resets the flag
