"""``POST /v1/audio/speech``, as OpenAI's speech API: text in, audio bytes out.

- ``model``: a limner text-to-speech model id or an alias; ``input`` -> ``text``; ``speed``
  (0.25 to 4) -> ``speed``.
- ``voice``: one of the model's voices (``limits.voices``). OpenAI's own voice names
  (``alloy``, ``nova`` …) mean the model's default voice; the ``X-Limner-Voice`` header says
  which voice spoke. Any other name is refused with the list.
- ``response_format``: ``mp3`` (OpenAI's default), ``wav``, ``flac``, or ``pcm`` (raw 16-bit
  little-endian mono at 24 kHz, as OpenAI sends it); ``opus`` and ``aac`` are refused.
- ``instructions`` and ``stream_format: sse`` are refused: no limner voice takes them.
"""

from __future__ import annotations

import io
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from limner.api.context import ApiContext, get_ctx
from limner.api.openai.common import output_keys, resolve_model, run_job
from limner.catalog import CatalogEntry
from limner.errors import InvalidInput

router = APIRouter(tags=["openai"])
Ctx = Annotated[ApiContext, Depends(get_ctx)]

OPENAI_VOICES = frozenset(
    {"alloy", "ash", "ballad", "coral", "echo", "fable", "nova", "onyx", "sage", "shimmer", "verse", "marin", "cedar"}
)
FORMATS = {"mp3": "audio/mpeg", "wav": "audio/wav", "flac": "audio/flac", "pcm": "audio/pcm"}
PCM_RATE = 24000


class SpeechRequest(BaseModel):
    """OpenAI's speech request; other fields of the text-to-speech schema may be added."""

    model_config = ConfigDict(extra="allow")

    model: str = Field(description="A limner text-to-speech model id, or an alias.")
    input: str = Field(description="The text to speak.")
    voice: str | dict[str, Any] = Field(description="A voice of the model, or one of OpenAI's names (its default).")
    response_format: str = Field(default="mp3", description="mp3, wav, flac or pcm.")
    speed: float | None = Field(default=None, description="0.25 to 4.0.")
    instructions: str | None = None
    stream_format: str | None = None


def choose_voice(entry: CatalogEntry, voice: str | dict[str, Any]) -> str | None:
    """The model voice to use: a name it knows, or None (its default) for OpenAI's names."""
    name = voice.get("id") if isinstance(voice, dict) else voice
    if not isinstance(name, str) or not name:
        raise InvalidInput("voice must be a voice name", loc=("body", "voice"))
    voices = entry.limits.voices
    if name in voices or (not voices and name not in OPENAI_VOICES):
        return name
    if name in OPENAI_VOICES:
        return None
    raise InvalidInput(
        f"voice={name!r} is not a voice of {entry.id} ({', '.join(voices)}) nor one of OpenAI's names "
        "(which mean the model's default voice)",
        loc=("body", "voice"),
    )


def to_pcm(wav: bytes) -> bytes:
    """Raw 16-bit little-endian PCM, mono, of a WAV file."""
    import soundfile

    samples, _rate = soundfile.read(io.BytesIO(wav), dtype="int16", always_2d=True)
    mono: bytes = samples[:, 0].astype("<i2").tobytes()
    return mono


@router.post("/v1/audio/speech", response_class=Response)
async def speech(body: SpeechRequest, request: Request, ctx: Ctx) -> Response:
    """Text to speech; answers with the audio file's bytes."""
    fmt = body.response_format
    if fmt not in FORMATS:
        raise InvalidInput(
            f"response_format={fmt!r} is not supported; use one of {', '.join(FORMATS)}",
            loc=("body", "response_format"),
        )
    for name in ("instructions", "stream_format"):
        value = getattr(body, name)
        if value and not (name == "stream_format" and value == "audio"):
            raise InvalidInput(f"{name} is not supported by limner's speech models", loc=("body", name))
    entry = resolve_model(ctx, body.model, ("text-to-speech",))
    voice = choose_voice(entry, body.voice)
    known = set(SpeechRequest.model_fields)
    task: dict[str, Any] = {k: v for k, v in body.model_dump().items() if k not in known and v is not None}
    task.update({"text": body.input, "output_format": "wav" if fmt == "pcm" else fmt})
    if fmt == "pcm":
        task["sample_rate"] = PCM_RATE
    if voice is not None:
        task["voice"] = voice
    if body.speed is not None:
        task["speed"] = body.speed
    job = await run_job(ctx, request, entry, task)
    files = output_keys(job, "audio")
    if not files:
        raise InvalidInput(f"request {job.id} made no audio", loc=("body", "input"))
    data = await run_in_threadpool(ctx.storage.get, files[0][0])
    if fmt == "pcm":
        data = await run_in_threadpool(to_pcm, data)
    spoken = voice or (job.result or {}).get("input", {}).get("voice") or "default"
    headers = {"X-Limner-Request-Id": job.id, "X-Limner-Voice": str(spoken)}
    return Response(content=data, media_type=FORMATS[fmt], headers=headers)
