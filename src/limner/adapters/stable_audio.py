"""Family ``stable-audio``: text-to-audio with Stable Audio Open (diffusers' StableAudioPipeline).

Music and sound effects from one set of weights: a catalog may list the same source twice
with different defaults (the residency key is the same, so the weights load once).

Steps: 1. load (resolve the source, from_pretrained, place on the device)
       2. check (inputs this pipeline cannot take, the model's longest output)
       3. prepare (one row per output)  4. run (chunks of max_batch_size, one generator per
          output, progress and cancel per denoising step)  5. encode (WAV/FLAC/MP3)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from diffusers import DiffusionPipeline

from limner.adapters.base import JobOutput, LoadedModel, LoadEnv, RunContext, WorkItem
from limner.adapters.loading import pipeline_bytes, place, quiet_runtimes, release, resolve_dtype, resolve_source
from limner.catalog.entry import CatalogEntry
from limner.errors import InvalidInput, LimitExceeded, ModelUnavailable
from limner.media.audio import encode_audio

DEFAULT_STEPS = 100  # StableAudioPipeline's own default, used when neither request nor catalog sets one


@dataclass
class StableAudio:
    pipe: Any
    sample_rate: int
    max_duration_s: float  # latent frames x VAE hop / sample rate: 47.55 s for Stable Audio Open 1.0


@dataclass(frozen=True)
class Row:
    item: int
    prompt: str
    negative_prompt: str | None
    seed: int


class Stopped(Exception):
    """Raised from the step callback when no job of the batch still wants its output
    (StableAudioPipeline has no interrupt flag, only a per-step callback)."""


class StableAudioAdapter:
    # -- 1. load ---------------------------------------------------------------------------

    def load(self, entry: CatalogEntry, env: LoadEnv) -> LoadedModel:
        path, revision = resolve_source(entry, env.models_dir, download=_download)
        dtype = resolve_dtype(entry.runtime.dtype, env.device)
        try:
            pipe = DiffusionPipeline.from_pretrained(str(path), dtype=dtype, use_safetensors=True)
        except (OSError, ValueError, ImportError) as exc:
            hint = " (its scheduler needs torchsde: pip install torchsde)" if "torchsde" in str(exc) else ""
            raise ModelUnavailable(f"cannot load {entry.id} from {path}{hint}: {exc}") from exc
        place(pipe, entry, env.device)
        pipe.set_progress_bar_config(disable=True)
        rate = int(pipe.vae.config.sampling_rate)
        handle = StableAudio(
            pipe=pipe,
            sample_rate=rate,
            max_duration_s=pipe.transformer.config.sample_size * pipe.vae.hop_length / rate,
        )
        return LoadedModel(handle=handle, revision=revision, size_bytes=pipeline_bytes(pipe), device=env.device)

    def unload(self, model: LoadedModel) -> None:
        handle: StableAudio = model.handle
        if hasattr(handle.pipe, "remove_all_hooks"):
            handle.pipe.remove_all_hooks()
        model.handle = None
        release(model.device)

    # -- 2. to 5. run a batch -----------------------------------------------------------------

    def run(self, model: LoadedModel, entry: CatalogEntry, items: list[WorkItem], ctx: RunContext) -> list[JobOutput]:
        audio_model: StableAudio = model.handle
        check(entry, audio_model, items)
        rows = prepare(items)
        spec = items[0].input  # duration, steps and guidance are shared by every job of a batch
        steps = spec.get("num_inference_steps") or DEFAULT_STEPS
        chunks = chunk(rows, max(1, entry.runtime.max_batch_size))
        waves: dict[int, torch.Tensor] = {}
        ctx.stage("denoising")
        try:
            for index, part in enumerate(chunks):
                if all(ctx.is_canceled(items[rows[r].item].job_id) for r in part):
                    continue
                done = call(audio_model.pipe, spec, [rows[r] for r in part], steps, ctx, index, len(chunks))
                waves.update(zip(part, done, strict=True))
        except Stopped:
            return [JobOutput(files={"audio": []}) for _ in items]
        ctx.stage("encoding media")
        outputs = [JobOutput(files={"audio": []}) for _ in items]
        for index, row in enumerate(rows):
            item = items[row.item]
            if index not in waves or ctx.is_canceled(item.job_id):
                continue
            encoded = encode_audio(
                waves[index].float().cpu().numpy(),
                audio_model.sample_rate,
                item.input.get("output_format", "wav"),
                target_rate=item.input.get("sample_rate"),
            )
            outputs[row.item].files["audio"].append(encoded)
        return outputs


def make_adapter() -> StableAudioAdapter:
    quiet_runtimes()
    return StableAudioAdapter()


def _download(repo: str, revision: str | None, variant: str | None) -> str:
    """Only the files a diffusers pipeline needs (one weight variant, no duplicates)."""
    folder: str = DiffusionPipeline.download(repo, revision=revision, variant=variant)
    return folder


# -- checking and preparing ------------------------------------------------------------------


def check(entry: CatalogEntry, audio_model: StableAudio, items: list[WorkItem]) -> None:
    for item in items:
        if item.input.get("melody"):
            raise InvalidInput(f"{entry.id} does not take a melody", loc=("body", "melody"))
        duration = item.input["duration_s"]
        if duration > audio_model.max_duration_s:
            raise LimitExceeded(
                f"duration_s={duration} is over what {entry.id} can make: {audio_model.max_duration_s:.2f} s",
                loc=("body", "duration_s"),
            )


def prepare(items: list[WorkItem]) -> list[Row]:
    rows: list[Row] = []
    for index, item in enumerate(items):
        spec = item.input
        for k in range(spec.get("num_outputs", 1)):
            rows.append(Row(index, spec["prompt"], spec.get("negative_prompt"), spec["seed"] + k))
    return rows


def chunk(rows: list[Row], size: int) -> list[list[int]]:
    """Row indices in chunks of ``size``, rows with and without a negative prompt apart: the
    pipeline guides against zeros without one and against the encoded text with one, and an
    output must not depend on its batch-mates."""
    chunks: list[list[int]] = []
    for negative in (False, True):
        group = [i for i, r in enumerate(rows) if bool(r.negative_prompt) == negative]
        chunks.extend(group[i : i + size] for i in range(0, len(group), size))
    return chunks


# -- running ---------------------------------------------------------------------------------


def call(
    pipe: Any, spec: dict[str, Any], rows: list[Row], steps: int, ctx: RunContext, chunk_index: int, chunks: int
) -> list[torch.Tensor]:
    """One pipeline call over ``rows``; returns ``(channels, samples)`` audio per row."""

    def on_step(step: int, _timestep: Any, _latents: Any) -> None:
        ctx.step(chunk_index * steps + step + 1, chunks * steps)
        if ctx.should_stop():
            raise Stopped

    kwargs: dict[str, Any] = {
        "prompt": [r.prompt for r in rows],
        "audio_end_in_s": spec["duration_s"],
        "num_inference_steps": steps,
        "guidance_scale": spec["guidance_scale"],
        "num_waveforms_per_prompt": 1,
        # One generator per output: an output depends on its own seed, not on its batch.
        "generator": [torch.Generator(device="cpu").manual_seed(r.seed) for r in rows],
        "callback": on_step,
        "callback_steps": 1,
        "output_type": "pt",
    }
    if rows[0].negative_prompt:
        kwargs["negative_prompt"] = [r.negative_prompt or "" for r in rows]
    with torch.inference_mode():
        result = pipe(**kwargs)
    return list(result.audios)
