"""Family ``stable-audio``: text-to-audio with Stable Audio Open (diffusers' StableAudioPipeline).

Music and sound effects from one set of weights: a catalog may list the same source twice
with different defaults (the residency key is the same, so the weights load once).

Steps: 1. load (resolve the source, from_pretrained, place on the device)
       2. check (inputs this pipeline cannot take, the model's longest output)
       3. prepare (one row per output)  4. call (one pipeline call over up to max_batch_size
          rows, with or without a negative prompt; one generator per output, progress and stop
          per denoising step)  5. encode (WAV/FLAC/MP3)
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

import torch
from diffusers import DiffusionPipeline

from limner.adapters.base import Chunk, FamilyAdapter, JobOutput, LoadedModel, LoadEnv, RunContext, WorkItem
from limner.adapters.loading import pipeline_bytes, place, quiet_runtimes, release, resolve_dtype, resolve_source
from limner.catalog.entry import CatalogEntry
from limner.errors import InvalidInput, LimitExceeded, ModelUnavailable
from limner.media.audio import encode_audio
from limner.progress import Stage
from limner.tasks.audio import TextToAudioInput

DEFAULT_STEPS = 100  # StableAudioPipeline's own default, used when neither request nor catalog sets one


@dataclass
class StableAudio:
    pipe: Any
    sample_rate: int
    max_duration_s: float  # latent frames x VAE hop / sample rate: 47.55 s for Stable Audio Open 1.0


@dataclass(frozen=True)
class Row:
    prompt: str
    negative_prompt: str | None
    seed: int


class StableAudioAdapter(FamilyAdapter[TextToAudioInput, Row, torch.Tensor]):
    stage = Stage.DENOISING

    # -- 1. load ---------------------------------------------------------------------------

    def load(self, entry: CatalogEntry, env: LoadEnv) -> LoadedModel:
        path, revision = resolve_source(entry, env, download=_download)
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

    # -- 2. check ----------------------------------------------------------------------------

    def check(self, model: LoadedModel, entry: CatalogEntry, item: WorkItem[TextToAudioInput]) -> None:
        audio_model: StableAudio = model.handle
        if item.input.melody:
            raise InvalidInput(f"{entry.id} does not take a melody", loc=("body", "melody"))
        duration = item.input.duration_s
        if duration > audio_model.max_duration_s:
            raise LimitExceeded(
                f"duration_s={duration} is over what {entry.id} can make: {audio_model.max_duration_s:.2f} s",
                loc=("body", "duration_s"),
            )

    # -- 3. prepare --------------------------------------------------------------------------

    def prepare(
        self, model: LoadedModel, entry: CatalogEntry, items: list[WorkItem[TextToAudioInput]], ctx: RunContext
    ) -> list[list[Row]]:
        rows: list[list[Row]] = []
        for item in items:
            spec, seed = item.input, item.input.chosen_seed()
            rows.append([Row(spec.prompt, spec.negative_prompt, seed + k) for k in range(spec.num_outputs)])
        return rows

    def call_key(self, row: Row) -> Hashable:
        """Rows with and without a negative prompt never share a call: the pipeline guides
        against zeros without one and against the encoded text with one, and an output must
        not depend on its batch-mates."""
        return bool(row.negative_prompt)

    # -- 4. call -----------------------------------------------------------------------------

    def call(self, model: LoadedModel, entry: CatalogEntry, chunk: Chunk[TextToAudioInput, Row]) -> list[torch.Tensor]:
        """One pipeline call over the chunk's rows; ``(channels, samples)`` audio per row."""
        pipe = model.handle.pipe
        spec, rows = chunk.input, chunk.rows  # duration, steps and guidance are batch fields
        steps = spec.num_inference_steps or DEFAULT_STEPS

        def on_step(step: int, _timestep: Any, _latents: Any) -> None:
            chunk.step(step + 1, steps)  # StableAudioPipeline has no interrupt flag: Stopped ends it

        kwargs: dict[str, Any] = {
            "prompt": [r.prompt for r in rows],
            "audio_end_in_s": spec.duration_s,
            "num_inference_steps": steps,
            "guidance_scale": spec.guidance_scale,
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

    # -- 5. encode ---------------------------------------------------------------------------

    def encode(
        self,
        model: LoadedModel,
        entry: CatalogEntry,
        item: WorkItem[TextToAudioInput],
        results: list[torch.Tensor],
        ctx: RunContext,
    ) -> JobOutput:
        rate = model.handle.sample_rate
        spec = item.input
        audio = [
            encode_audio(wave.float().cpu().numpy(), rate, spec.output_format, target_rate=spec.sample_rate)
            for wave in results
        ]
        return JobOutput(files={"audio": audio})


def make_adapter() -> StableAudioAdapter:
    quiet_runtimes()
    return StableAudioAdapter()


def _download(repo: str, revision: str | None, variant: str | None) -> str:
    """Only the files a diffusers pipeline needs (one weight variant, no duplicates)."""
    folder: str = DiffusionPipeline.download(repo, revision=revision, variant=variant)
    return folder
