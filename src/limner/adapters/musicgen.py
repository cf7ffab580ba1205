"""Family ``musicgen``: text-to-audio with MusicGen and MusicGen Melody (transformers).

One family for both: the checkpoint's ``config.json`` says which model class it is
(``musicgen`` or ``musicgen_melody``). MusicGen writes EnCodec codes one frame at a time, so
progress is counted in generated frames, and a cancel stops generation at the next frame.

Steps: 1. load (resolve the source, from_pretrained with safetensors only, tokenizer, the
          melody features' settings)
       2. check (inputs this checkpoint cannot take)  3. prepare (one row per output; melody
          chroma)  4. run (chunks of max_batch_size, one seeded sampler per row, progress and
          cancel per frame)  5. encode (WAV/FLAC/MP3, trimmed to the requested duration)
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any

import torch
from transformers import (
    AutoConfig,
    AutoTokenizer,
    LogitsProcessor,
    LogitsProcessorList,
    MusicgenForConditionalGeneration,
    MusicgenMelodyForConditionalGeneration,
    StoppingCriteria,
    StoppingCriteriaList,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from limner.adapters.base import JobOutput, LoadedModel, LoadEnv, RunContext, WorkItem
from limner.adapters.chroma import ChromaSettings, melody_chroma, null_chroma
from limner.adapters.loading import module_bytes, quiet_runtimes, release, resolve_dtype, resolve_source
from limner.catalog.entry import CatalogEntry
from limner.errors import InvalidInput, ModelError, ModelUnavailable
from limner.media.audio import decode_audio, encode_audio

MODEL_CLASSES: dict[str, Any] = {
    "musicgen": MusicgenForConditionalGeneration,
    "musicgen_melody": MusicgenMelodyForConditionalGeneration,
}
# A hub snapshot without the duplicate pickled weights (pytorch_model.bin) some repos also hold.
HUB_FILES = ["*.json", "*.safetensors", "*.model", "*.txt"]


@dataclass
class MusicGen:
    model: Any
    tokenizer: Any
    sample_rate: int
    frame_rate: float
    num_codebooks: int
    chroma: ChromaSettings | None  # set when the checkpoint takes a melody


@dataclass(frozen=True)
class Row:
    """One output: which item it belongs to and how to make it."""

    item: int
    prompt: str
    seed: int
    chroma: torch.Tensor | None


class Stopped(Exception):
    """Raised from inside generate() when no job of the batch still wants its output."""


class MusicGenAdapter:
    # -- 1. load ---------------------------------------------------------------------------

    def load(self, entry: CatalogEntry, env: LoadEnv) -> LoadedModel:
        path, revision = resolve_source(entry, env.models_dir, download=_download, marker="config.json")
        dtype = resolve_dtype(entry.runtime.dtype, env.device)
        try:
            config = AutoConfig.from_pretrained(path)
            model_class = MODEL_CLASSES.get(config.model_type)
            if model_class is None:
                raise ModelUnavailable(f"{entry.id}: {path} holds a {config.model_type!r} model, not MusicGen")
            model = model_class.from_pretrained(path, dtype=dtype, use_safetensors=True)
            tokenizer = AutoTokenizer.from_pretrained(path)
        except (OSError, ValueError) as exc:
            raise ModelUnavailable(f"cannot load {entry.id} from {path}: {exc}") from exc
        model.to(env.device).eval()
        chroma = ChromaSettings.from_folder(path, model.config) if config.model_type == "musicgen_melody" else None
        handle = MusicGen(
            model=model,
            tokenizer=tokenizer,
            sample_rate=int(model.config.audio_encoder.sampling_rate),
            frame_rate=float(model.config.audio_encoder.frame_rate),
            num_codebooks=int(model.decoder.config.num_codebooks),
            chroma=chroma,
        )
        return LoadedModel(handle=handle, revision=revision, size_bytes=module_bytes(model), device=env.device)

    def unload(self, model: LoadedModel) -> None:
        model.handle = None
        release(model.device)

    # -- 2. to 5. run a batch -----------------------------------------------------------------

    def run(self, model: LoadedModel, entry: CatalogEntry, items: list[WorkItem], ctx: RunContext) -> list[JobOutput]:
        gen: MusicGen = model.handle
        check(entry, gen, items)
        ctx.stage("preparing")
        rows = prepare(gen, items, model.device)
        spec = items[0].input  # duration and guidance are shared by every job of a batch
        new_tokens = math.ceil(spec["duration_s"] * gen.frame_rate) + gen.num_codebooks - 1
        size = max(1, entry.runtime.max_batch_size)
        chunks = [rows[i : i + size] for i in range(0, len(rows), size)]
        ctx.stage("generating audio tokens")
        audio: list[torch.Tensor | None] = []
        try:
            for index, part in enumerate(chunks):
                if all(ctx.is_canceled(items[r.item].job_id) for r in part):
                    audio.extend([None] * len(part))
                    continue
                progress = Progress(ctx, done=index * new_tokens, total=len(chunks) * new_tokens)
                audio.extend(generate(gen, part, spec["guidance_scale"], new_tokens, progress, model.device))
        except Stopped:
            return [JobOutput(files={"audio": []}) for _ in items]
        ctx.stage("encoding media")
        samples = round(spec["duration_s"] * gen.sample_rate)
        outputs = [JobOutput(files={"audio": []}) for _ in items]
        for row, wave in zip(rows, audio, strict=True):
            item = items[row.item]
            if wave is None or ctx.is_canceled(item.job_id):
                continue
            encoded = encode_audio(
                wave[:, :samples].float().cpu().numpy(),
                gen.sample_rate,
                item.input.get("output_format", "wav"),
                target_rate=item.input.get("sample_rate"),
            )
            outputs[row.item].files["audio"].append(encoded)
        return outputs


def make_adapter() -> MusicGenAdapter:
    quiet_runtimes()
    return MusicGenAdapter()


def _download(repo: str, revision: str | None, _variant: str | None) -> str:
    from huggingface_hub import snapshot_download

    folder: str = snapshot_download(repo, revision=revision, allow_patterns=HUB_FILES)
    return folder


# -- checking and preparing ------------------------------------------------------------------


def check(entry: CatalogEntry, gen: MusicGen, items: list[WorkItem]) -> None:
    """MusicGen has no negative prompt and no denoising steps; only Melody takes a melody.
    (Length is the catalog's limit: the sinusoidal positions go on past the 30 s the released
    models were trained on, so nothing in the model itself stops a longer request.)"""
    for item in items:
        for name in ("negative_prompt", "num_inference_steps"):
            if item.input.get(name) is not None:
                raise InvalidInput(f"{entry.id} (MusicGen) does not take {name}", loc=("body", name))
        if item.input.get("melody") and gen.chroma is None:
            raise InvalidInput(f"{entry.id} does not take a melody (MusicGen Melody does)", loc=("body", "melody"))


def prepare(gen: MusicGen, items: list[WorkItem], device: str) -> list[Row]:
    rows: list[Row] = []
    for index, item in enumerate(items):
        spec = item.input
        chroma = None
        if gen.chroma is not None:
            if "melody" in item.files:
                samples, rate = decode_audio(item.files["melody"])
                chroma = melody_chroma(samples, rate, gen.chroma)
            else:
                chroma = null_chroma(gen.chroma)
            chroma = chroma.to(device=device, dtype=gen.model.dtype)
        for k in range(spec.get("num_outputs", 1)):
            rows.append(Row(index, spec["prompt"], spec["seed"] + k, chroma))
    return rows


# -- running ---------------------------------------------------------------------------------


class Progress(StoppingCriteria):
    """Reports each generated frame and stops generation when every job was canceled.

    generate() only checks criteria between frames, and a criterion that says "stop" would
    cut MusicGen's delayed codebooks unevenly; raising ``Stopped`` abandons the call instead.
    """

    def __init__(self, ctx: RunContext, *, done: int, total: int) -> None:
        self.ctx, self.done, self.total = ctx, done, total
        self.generated = 0

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: Any) -> torch.BoolTensor:
        self.generated += 1
        self.ctx.step(self.done + self.generated, self.total)
        if self.ctx.should_stop():
            raise Stopped
        keep_going = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
        return keep_going  # type: ignore[return-value]  # transformers annotates the legacy BoolTensor


class SeededSampler(LogitsProcessor):
    """Samples each row's next codes with that row's own generator, so an output depends on
    its seed and not on which other jobs shared its batch.

    generate() draws from one global RNG for the whole batch; instead this processor applies the
    checkpoint's sampling warpers (temperature, top-k, top-p), samples, and leaves a single
    finite logit per codebook that generate() then takes greedily.
    """

    def __init__(self, generators: list[torch.Generator], num_codebooks: int, warpers: LogitsProcessorList) -> None:
        self.generators, self.num_codebooks, self.warpers = generators, num_codebooks, warpers

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        k = self.num_codebooks
        if scores.shape[0] != len(self.generators) * k:
            raise ModelError(f"sampler saw {scores.shape[0]} rows, expected {len(self.generators)} x {k} codebooks")
        probs = torch.softmax(self.warpers(input_ids, scores).float(), dim=-1).cpu()
        picks = torch.cat(
            [torch.multinomial(probs[i * k : (i + 1) * k], 1, generator=g) for i, g in enumerate(self.generators)]
        )
        chosen: torch.FloatTensor = torch.full_like(scores, -math.inf)  # type: ignore[assignment]
        chosen.scatter_(1, picks.to(scores.device), 0.0)
        return chosen


class SamplerLast(LogitsProcessorList):
    """generate() appends its classifier-free-guidance processor to the list it is given; keep
    the sampler after it, so it samples the guided logits."""

    def append(self, processor: Any) -> None:
        self.insert(len(self) - 1, processor)


def warpers_of(config: Any) -> LogitsProcessorList:
    warpers = LogitsProcessorList()
    if config.temperature is not None and config.temperature != 1.0:
        warpers.append(TemperatureLogitsWarper(config.temperature))
    if config.top_k:
        warpers.append(TopKLogitsWarper(top_k=config.top_k))
    if config.top_p is not None and config.top_p < 1.0:
        warpers.append(TopPLogitsWarper(top_p=config.top_p))
    return warpers


def generate(
    gen: MusicGen, rows: list[Row], guidance_scale: float, new_tokens: int, progress: Progress, device: str
) -> list[torch.Tensor]:
    """One generate() call over ``rows``; returns ``(channels, samples)`` audio per row."""
    inputs = gen.tokenizer([r.prompt for r in rows], padding=True, return_tensors="pt").to(device)
    if gen.chroma is not None:
        inputs["input_features"] = torch.stack([r.chroma for r in rows if r.chroma is not None])
    config = copy.deepcopy(gen.model.generation_config)
    sampler = SeededSampler(
        [torch.Generator().manual_seed(r.seed) for r in rows], gen.num_codebooks, warpers_of(config)
    )
    config.do_sample, config.top_k, config.top_p, config.temperature = False, None, None, None
    config.guidance_scale = guidance_scale if guidance_scale > 1 else None
    config.max_new_tokens = config.min_new_tokens = new_tokens
    with torch.inference_mode():
        audio = gen.model.generate(
            **inputs,
            generation_config=config,
            logits_processor=SamplerLast([sampler]),
            stopping_criteria=StoppingCriteriaList([progress]),
        )
    return list(audio)
