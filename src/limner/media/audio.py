"""Audio in and out: encoding outputs (WAV, FLAC, MP3), resampling, and checking input audio.

Encoding goes through soundfile (libsndfile). Its wheels bundle a libsndfile that writes MP3
with LAME since 1.1.0; a system libsndfile without it makes ``mp3`` a clear 422 instead.
Resampling uses soxr (the SoX resampler, "HQ" quality). Every output's properties are measured
by reading back the bytes that were written, so the result JSON describes the file, not the
request.
"""

from __future__ import annotations

import functools
import hashlib
import io
from dataclasses import dataclass
from typing import Any

import numpy as np

from limner.errors import InvalidInput, LimitExceeded
from limner.media.images import MediaFile
from limner.media.types import AUDIO_TYPES as CONTENT_TYPES

# output_format -> libsndfile (format, subtype). 16-bit PCM is what every player reads.
ENCODINGS = {"wav": ("WAV", "PCM_16"), "flac": ("FLAC", "PCM_16"), "mp3": ("MP3", "MPEG_LAYER_III")}
# Input containers accepted for audio fields: libsndfile's major format -> file extension.
INPUT_FORMATS = {"WAV": "wav", "WAVEX": "wav", "FLAC": "flac", "OGG": "ogg", "MP3": "mp3"}
# MPEG-1, -2 and -2.5 Layer III sample rates: LAME writes no others.
MP3_RATES = frozenset({8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000})


@functools.cache
def mp3_encoder_available() -> bool:
    """True when this machine's libsndfile can write MP3."""
    import soundfile

    return "MP3" in soundfile.available_formats() and "MPEG_LAYER_III" in soundfile.available_subtypes("MP3")


def check_output_format(fmt: str, sample_rate: int | None) -> None:
    """Refuse an output format this machine cannot write (or a rate MP3 cannot carry), naming the field."""
    if fmt not in ENCODINGS:
        raise InvalidInput(f"output_format={fmt!r} is not one of wav, flac, mp3", loc=("body", "output_format"))
    if fmt != "mp3":
        return
    if not mp3_encoder_available():
        raise InvalidInput(
            "output_format='mp3' needs a libsndfile with MP3 support (soundfile's wheels bundle one); "
            "this server has none: use wav or flac",
            loc=("body", "output_format"),
        )
    if sample_rate is not None and sample_rate not in MP3_RATES:
        raise InvalidInput(
            f"sample_rate={sample_rate} cannot be written as MP3 (MP3 rates: {', '.join(map(str, sorted(MP3_RATES)))})",
            loc=("body", "sample_rate"),
        )


def resample(samples: np.ndarray[Any, Any], from_rate: int, to_rate: int) -> np.ndarray[Any, Any]:
    """Resample ``(channels, frames)`` float audio with soxr."""
    if from_rate == to_rate:
        return samples
    import soxr

    converted = soxr.resample(np.ascontiguousarray(samples.T), from_rate, to_rate, quality="HQ")
    return np.asarray(converted, dtype=np.float32).reshape(-1, samples.shape[0]).T


def encode_audio(
    samples: np.ndarray[Any, Any], sample_rate: int, fmt: str, *, target_rate: int | None = None
) -> MediaFile:
    """Encode ``(channels, frames)`` float audio in [-1, 1] as wav, flac or mp3, resampled to
    ``target_rate`` when given. Values outside [-1, 1] clip, as they would on any DAC."""
    import soundfile

    rate = target_rate or sample_rate
    check_output_format(fmt, target_rate)
    if fmt == "mp3" and rate not in MP3_RATES:
        raise InvalidInput(
            f"this model makes {rate} Hz audio, which MP3 cannot carry: ask for a sample_rate MP3 supports "
            "(e.g. 44100) or another output_format",
            loc=("body", "output_format"),
        )
    audio = np.asarray(samples, dtype=np.float32)
    if audio.ndim == 1:
        audio = audio[None, :]
    audio = np.clip(resample(audio, sample_rate, rate), -1.0, 1.0)
    container, subtype = ENCODINGS[fmt]
    buffer = io.BytesIO()
    soundfile.write(buffer, audio.T, rate, format=container, subtype=subtype)
    data = buffer.getvalue()
    return MediaFile(data=data, content_type=CONTENT_TYPES[fmt], extension=fmt, properties=measure_audio(data))


def measure_audio(data: bytes) -> dict[str, Any]:
    """Sample rate, channels, frames and duration of an encoded file, read back from its bytes."""
    import soundfile

    info = soundfile.info(io.BytesIO(data))
    return {
        "sample_rate": int(info.samplerate),
        "channels": int(info.channels),
        "frames": int(info.frames),
        "duration_s": round(info.frames / info.samplerate, 4),
    }


@dataclass(frozen=True)
class CheckedAudio:
    data: bytes
    extension: str
    sample_rate: int
    channels: int
    duration_s: float

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @property
    def content_type(self) -> str:
        return CONTENT_TYPES[self.extension]


def check_audio(data: bytes, field_name: str, *, max_bytes: int, max_duration_s: float) -> CheckedAudio:
    """Check size, container and duration from the header, before anything decodes the samples."""
    import soundfile

    loc = ("body", field_name)
    if len(data) > max_bytes:
        raise LimitExceeded(
            f"{field_name} is over this model's limit of {max_bytes} bytes (limits.max_input_bytes)", loc=loc
        )
    try:
        info = soundfile.info(io.BytesIO(data))
    except (soundfile.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        reason = getattr(exc, "error_string", None) or str(exc)  # libsndfile's reason, not the buffer's repr
        raise InvalidInput(f"{field_name} is not readable audio ({reason})", loc=loc) from None
    extension = INPUT_FORMATS.get(info.format)
    if extension is None:
        raise InvalidInput(f"{field_name} must be WAV, FLAC, OGG or MP3, not {info.format_info}", loc=loc)
    if info.frames <= 0 or info.samplerate <= 0:
        raise InvalidInput(f"{field_name} holds no audio", loc=loc)
    duration = info.frames / info.samplerate
    if duration > max_duration_s:
        raise LimitExceeded(
            f"{field_name} is {duration:.2f} s long, over this model's limit of {max_duration_s} s "
            "(limits.max_input_audio_s)",
            loc=loc,
        )
    return CheckedAudio(
        data=data,
        extension=extension,
        sample_rate=int(info.samplerate),
        channels=int(info.channels),
        duration_s=duration,
    )


def decode_audio(data: bytes) -> tuple[np.ndarray[Any, Any], int]:
    """Decode a stored (already checked) input file to ``(channels, frames)`` float32 and its rate."""
    import soundfile

    samples, rate = soundfile.read(io.BytesIO(data), dtype="float32", always_2d=True)
    return np.ascontiguousarray(samples.T), int(rate)
