"""Family ``musicgen``: text-to-audio with MusicGen and MusicGen Melody (transformers).

One family for both: the checkpoint's ``config.json`` says which model class it is
(``musicgen`` or ``musicgen_melody``). MusicGen writes EnCodec codes one frame at a time, so
progress is counted in generated frames, and a cancel stops generation at the next frame.

Steps: 1. load (resolve the source, from_pretrained with safetensors only, tokenizer, the
          melody features' settings)
       2. check (inputs this checkpoint cannot take)  3. prepare (one row per output; melody
          chroma)  4. call (one generate() over up to max_batch_size rows, one seeded sampler
          per row, progress and stop per frame)  5. encode (WAV/FLAC/MP3, trimmed to the
          requested duration)
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

from limner.adapters.base import Chunk, FamilyAdapter, JobOutput, LoadedModel, LoadEnv, RunContext, WorkItem
from limner.adapters.chroma import ChromaSettings, melody_chroma, null_chroma
from limner.adapters.loading import module_bytes, quiet_runtimes, release, resolve_dtype, resolve_source
from limner.catalog.entry import CatalogEntry
from limner.errors import InvalidInput, ModelError, ModelUnavailable
from limner.media.audio import decode_audio, encode_audio
from limner.progress import Stage
from limner.tasks.audio import TextToAudioInput

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
    """One output: how to make it."""

    prompt: str
    seed: int
    chroma: torch.Tensor | None


class MusicGenAdapter(FamilyAdapter[TextToAudioInput, Row, torch.Tensor]):
    stage = Stage.GENERATING

    # -- 1. load ---------------------------------------------------------------------------

    def load(self, entry: CatalogEntry, env: LoadEnv) -> LoadedModel:
        path, revision = resolve_source(entry, env, download=_download, marker="config.json")
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

    # -- 2. check ----------------------------------------------------------------------------

    def check(self, model: LoadedModel, entry: CatalogEntry, item: WorkItem[TextToAudioInput]) -> None:
        """MusicGen has no negative prompt and no denoising steps; only Melody takes a melody.
        (Length is the catalog's limit: the sinusoidal positions go on past the 30 s the released
        models were trained on, so nothing in the model itself stops a longer request.)"""
        spec = item.input
        refused = {"negative_prompt": spec.negative_prompt, "num_inference_steps": spec.num_inference_steps}
        for name, value in refused.items():
            if value is not None:
                raise InvalidInput(f"{entry.id} (MusicGen) does not take {name}", loc=("body", name))
        if spec.melody and model.handle.chroma is None:
            raise InvalidInput(f"{entry.id} does not take a melody (MusicGen Melody does)", loc=("body", "melody"))

    # -- 3. prepare --------------------------------------------------------------------------

    def prepare(
        self, model: LoadedModel, entry: CatalogEntry, items: list[WorkItem[TextToAudioInput]], ctx: RunContext
    ) -> list[list[Row]]:
        ctx.stage(Stage.PREPARING)
        return [rows_of(model.handle, item, model.device) for item in items]

    # -- 4. call -----------------------------------------------------------------------------

    def call(self, model: LoadedModel, entry: CatalogEntry, chunk: Chunk[TextToAudioInput, Row]) -> list[torch.Tensor]:
        """One generate() over the chunk's rows; ``(channels, samples)`` audio per row."""
        gen: MusicGen = model.handle
        # Duration and guidance are batch fields: every row of a batch shares them.
        new_tokens = math.ceil(chunk.input.duration_s * gen.frame_rate) + gen.num_codebooks - 1
        return generate(gen, chunk, new_tokens, model.device)

    # -- 5. encode ---------------------------------------------------------------------------

    def encode(
        self,
        model: LoadedModel,
        entry: CatalogEntry,
        item: WorkItem[TextToAudioInput],
        results: list[torch.Tensor],
        ctx: RunContext,
    ) -> JobOutput:
        gen: MusicGen = model.handle
        samples = round(item.input.duration_s * gen.sample_rate)
        audio = [
            encode_audio(
                wave[:, :samples].float().cpu().numpy(),
                gen.sample_rate,
                item.input.output_format,
                target_rate=item.input.sample_rate,
            )
            for wave in results
        ]
        return JobOutput(files={"audio": audio})


def make_adapter() -> MusicGenAdapter:
    quiet_runtimes()
    return MusicGenAdapter()


def _download(repo: str, revision: str | None, _variant: str | None) -> str:
    from huggingface_hub import snapshot_download

    folder: str = snapshot_download(repo, revision=revision, allow_patterns=HUB_FILES)
    return folder


# -- preparing ---------------------------------------------------------------------------------


def rows_of(gen: MusicGen, item: WorkItem[TextToAudioInput], device: str) -> list[Row]:
    """One row per output (seeds seed, seed+1, ...), with the melody's chroma for Melody."""
    spec = item.input
    chroma = None
    if gen.chroma is not None:
        if "melody" in item.files:
            samples, rate = decode_audio(item.files["melody"])
            chroma = melody_chroma(samples, rate, gen.chroma)
        else:
            chroma = null_chroma(gen.chroma)
        chroma = chroma.to(device=device, dtype=gen.model.dtype)
    seed = spec.chosen_seed()
    return [Row(spec.prompt, seed + k, chroma) for k in range(spec.num_outputs)]


# -- running ---------------------------------------------------------------------------------


class Progress(StoppingCriteria):
    """Reports each generated frame, which stops generation when no job of the call is wanted.

    generate() only checks criteria between frames, and a criterion that says "stop" would
    cut MusicGen's delayed codebooks unevenly; ``chunk.step`` raising ``Stopped`` abandons the
    call instead.
    """

    def __init__(self, chunk: Chunk[TextToAudioInput, Row], total: int) -> None:
        self.chunk, self.total = chunk, total
        self.generated = 0

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: Any) -> torch.BoolTensor:
        self.generated += 1
        self.chunk.step(self.generated, self.total)
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


def generate(gen: MusicGen, chunk: Chunk[TextToAudioInput, Row], new_tokens: int, device: str) -> list[torch.Tensor]:
    """One generate() call over the chunk's rows; returns ``(channels, samples)`` audio per row."""
    rows, guidance_scale = chunk.rows, chunk.input.guidance_scale
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
            stopping_criteria=StoppingCriteriaList([Progress(chunk, new_tokens)]),
        )
    return list(audio)
