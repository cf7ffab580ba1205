"""What kind of file an upload is, told from its first bytes (never from what the client claims).

Images are probed through Pillow's header reader (no pixel is decoded). Audio is told by the
magic bytes of its container: the API process stays free of audio decoders, and each task
checks duration and sample rate of the files it takes when a job is submitted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from limner.errors import InvalidInput, LimitExceeded
from limner.media.archives import is_zip, read_zip_images
from limner.media.images import probe_image
from limner.media.types import AUDIO_TYPES
from limner.media.types import IMAGE_TYPES as CONTENT_TYPES

ACCEPTED = "an image (PNG, JPEG, WebP), audio (WAV, FLAC, MP3, Ogg) or a zip of training images"
# A zip uploaded on its own is checked against these (a training job checks it again against
# its model's limits): entries, uncompressed size, zip bombs, and every image's header.
UPLOAD_ZIP_IMAGES = 500
UPLOAD_ZIP_BYTES = 1024 * 1024 * 1024
UPLOAD_IMAGE_BYTES = 50 * 1024 * 1024
UPLOAD_IMAGE_PIXELS = 8192 * 8192


@dataclass(frozen=True)
class Sniffed:
    kind: str  # "image", "audio" or "archive"
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
    if is_zip(data):
        images = read_zip_images(
            data,
            field_name,
            max_images=UPLOAD_ZIP_IMAGES,
            max_archive_bytes=UPLOAD_ZIP_BYTES,
            max_image_bytes=UPLOAD_IMAGE_BYTES,
            max_pixels=UPLOAD_IMAGE_PIXELS,
        )
        captions = sum(1 for i in images if i.caption)
        return Sniffed("archive", "zip", "application/zip", {"images": len(images), "captions": captions})
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
