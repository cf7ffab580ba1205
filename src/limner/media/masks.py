"""Masks and cutouts out: single-channel PNG masks and RGBA cutouts, with measured properties.

A mask is 255 on the object and 0 elsewhere (binary), or the model's confidence scaled to
0..255 (soft). ``coverage`` is the share of pixels at 128 or more, measured from the encoded
pixels, so a client can tell an empty mask from a full one without decoding it.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
from PIL import Image

from limner.media.images import MediaFile, encode_image
from limner.media.types import IMAGE_TYPES

Array = np.ndarray[Any, Any]


def mask_pixels(probability: Array, *, binary: bool) -> Array:
    """Confidence in [0, 1] (HxW) as uint8: thresholded at 0.5 when ``binary``."""
    if binary:
        return np.where(probability >= 0.5, 255, 0).astype(np.uint8)
    return np.clip(probability * 255.0 + 0.5, 0, 255).astype(np.uint8)


def coverage(pixels: Array) -> float:
    return round(float(np.count_nonzero(pixels >= 128)) / max(1, pixels.size), 6)


def encode_mask(probability: Array, *, binary: bool, extra: dict[str, Any] | None = None) -> MediaFile:
    """A mask as a mode-L PNG with width, height, coverage (and ``extra``, e.g. a score)."""
    pixels = mask_pixels(probability, binary=binary)
    buffer = io.BytesIO()
    Image.fromarray(pixels, "L").save(buffer, format="PNG")
    properties = {"width": pixels.shape[1], "height": pixels.shape[0], "coverage": coverage(pixels), **(extra or {})}
    return MediaFile(data=buffer.getvalue(), content_type=IMAGE_TYPES["png"], extension="png", properties=properties)


def encode_cutout(image: Image.Image, probability: Array, fmt: str) -> MediaFile:
    """``image`` with the (soft) mask as its alpha channel: PNG or lossless WebP."""
    alpha = mask_pixels(probability, binary=False)
    cutout = image.convert("RGB")
    cutout.putalpha(Image.fromarray(alpha, "L"))
    encoded = encode_image(cutout, fmt)
    encoded.properties["coverage"] = coverage(alpha)
    return encoded


def outputs_for(task: str, image: Image.Image, probability: Array, fmt: str) -> dict[str, list[MediaFile]]:
    """What a one-mask model returns for each task: the mask (segmentation), or the cutout and
    its mask (background-removal)."""
    if task == "background-removal":
        return {"images": [encode_cutout(image, probability, fmt)], "masks": [encode_mask(probability, binary=False)]}
    return {"masks": [encode_mask(probability, binary=True)]}
