"""What kind of file an upload is, told from its first bytes (never from what the client claims).

Images are probed through Pillow's header reader (no pixel is decoded). Audio is told by the
magic bytes of its container: the API process stays free of audio decoders, and each task
checks duration and sample rate of the files it takes when a job is submitted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from limner.errors import InvalidInput, LimitExceeded
from limner.media.images import probe_image
from limner.media.types import AUDIO_TYPES
from limner.media.types import IMAGE_TYPES as CONTENT_TYPES

ACCEPTED = "an image (PNG, JPEG, WebP) or audio (WAV, FLAC, MP3, Ogg)"


@dataclass(frozen=True)
class Sniffed:
    kind: str  # "image" or "audio"
    extension: str
    content_type: str
    properties: dict[str, Any] = field(default_factory=dict)


def audio_extension(data: bytes) -> str | None:
    """wav, flac, ogg or mp3 from the container's magic bytes, else None."""
    if data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        return "wav"
    if data[:4] == b"fLaC":
        return "flac"
    if data[:4] == b"OggS":
        return "ogg"
    if data[:3] == b"ID3":
        return "mp3"
    # An MPEG audio frame: 11 sync bits, then a layer other than "reserved" (00 is AAC's ADTS).
    if len(data) >= 4 and data[0] == 0xFF and data[1] & 0xE0 == 0xE0 and data[1] & 0x06:
        return "mp3"
    return None


def sniff(data: bytes, field_name: str) -> Sniffed:
    """The kind, extension and content type of ``data``; InvalidInput if it is neither kind."""
    audio = audio_extension(data)
    if audio is not None:
        return Sniffed("audio", audio, AUDIO_TYPES[audio])
    try:
        extension, width, height = probe_image(data, field_name)
    except LimitExceeded:
        raise  # a decompression bomb: say so, not "unknown format"
    except InvalidInput:
        raise InvalidInput(f"{field_name} must be {ACCEPTED}", loc=("body", field_name)) from None
    return Sniffed("image", extension, CONTENT_TYPES[extension], {"width": width, "height": height})
