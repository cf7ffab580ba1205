"""Images in and out: encoding outputs, and checking input images before anything decodes them."""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import re
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from limner.errors import InvalidInput, LimitExceeded
from limner.media.types import IMAGE_TYPES as CONTENT_TYPES

PIL_FORMATS = {"png": "PNG", "webp": "WEBP", "jpeg": "JPEG"}
ACCEPTED_INPUT_FORMATS = {"PNG": "png", "JPEG": "jpeg", "WEBP": "webp"}
DATA_URI = re.compile(r"^data:(?P<mime>[\w.+-]+/[\w.+-]+)?(?P<params>(?:;[\w.+-]+=[\w.+-]+)*)(?P<b64>;base64)?,", re.I)


@dataclass(frozen=True)
class MediaFile:
    """One encoded output file and the properties measured from it."""

    data: bytes
    content_type: str
    extension: str
    properties: dict[str, Any] = field(default_factory=dict)


def encode_image(image: Image.Image, fmt: str) -> MediaFile:
    """Encode a PIL image as png, webp (lossless) or jpeg (quality 95)."""
    if fmt not in PIL_FORMATS:
        raise InvalidInput(f"output_format={fmt!r} is not one of png, webp, jpeg", loc=("body", "output_format"))
    buffer = io.BytesIO()
    if fmt == "jpeg":
        image.convert("RGB").save(buffer, format="JPEG", quality=95)
    elif fmt == "webp":
        image.save(buffer, format="WEBP", lossless=True)
    else:
        image.save(buffer, format="PNG")
    return MediaFile(
        data=buffer.getvalue(),
        content_type=CONTENT_TYPES[fmt],
        extension=fmt,
        properties={"width": image.width, "height": image.height},
    )


@dataclass(frozen=True)
class CheckedImage:
    data: bytes
    extension: str
    width: int
    height: int

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


def decode_data_uri(uri: str, field_name: str, max_bytes: int) -> bytes:
    match = DATA_URI.match(uri)
    if not match or not match.group("b64"):
        raise InvalidInput(f"{field_name} must be a base64 data: URI or a URL", loc=("body", field_name))
    payload = uri[match.end() :]
    if len(payload) * 3 // 4 > max_bytes:
        raise LimitExceeded(
            f"{field_name} is over this model's limit of {max_bytes} bytes (limits.max_input_bytes)",
            loc=("body", field_name),
        )
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput(f"{field_name} is not valid base64", loc=("body", field_name)) from None


def probe_image(data: bytes, field_name: str, max_pixels: int | None = None) -> tuple[str, int, int]:
    """Format (png, jpeg, webp) and size of an image, read from its header only.

    Pillow refuses a header claiming more than twice ``Image.MAX_IMAGE_PIXELS`` on open; that
    is reported as the pixel limit it is, not as an unreadable file.
    """
    try:
        with Image.open(io.BytesIO(data)) as probe:
            fmt = probe.format or ""
            width, height = probe.size
    except Image.DecompressionBombError:
        claimed = f"{field_name} claims more than {2 * (Image.MAX_IMAGE_PIXELS or 0)} pixels (a decompression bomb)"
        limit = f", over this model's limit of {max_pixels} pixels (limits.max_input_pixels)" if max_pixels else ""
        raise LimitExceeded(f"{claimed}{limit}; refused before decoding", loc=("body", field_name)) from None
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"{field_name} is not a readable image: {exc}", loc=("body", field_name)) from None
    if fmt not in ACCEPTED_INPUT_FORMATS:
        raise InvalidInput(f"{field_name} must be PNG, JPEG or WebP, not {fmt or 'unknown'}", loc=("body", field_name))
    return ACCEPTED_INPUT_FORMATS[fmt], width, height


def check_image(data: bytes, field_name: str, *, max_bytes: int, max_pixels: int) -> CheckedImage:
    """Check size, format and pixel count from the header only: a decompression bomb is
    refused before a single pixel is decoded."""
    if len(data) > max_bytes:
        raise LimitExceeded(
            f"{field_name} is over this model's limit of {max_bytes} bytes (limits.max_input_bytes)",
            loc=("body", field_name),
        )
    extension, width, height = probe_image(data, field_name, max_pixels)
    if width * height > max_pixels:
        raise LimitExceeded(
            f"{field_name} is {width}x{height}, over this model's limit of {max_pixels} pixels "
            "(limits.max_input_pixels)",
            loc=("body", field_name),
        )
    return CheckedImage(data=data, extension=extension, width=width, height=height)


def open_image(data: bytes, mode: str = "RGB") -> Image.Image:
    """Decode a stored (already checked) input image."""
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        return image.convert(mode)
