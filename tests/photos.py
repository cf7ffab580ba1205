"""Real photographs that ship inside packages the tests already depend on (no downloads)."""

from __future__ import annotations

import importlib.util
from functools import cache
from pathlib import Path

import matplotlib.cbook
from PIL import Image


@cache
def grace_hopper() -> Image.Image:
    """Grace Hopper's portrait (512x600 JPEG) from matplotlib's bundled sample data: a person
    in front of a plain background, with natural photographic detail."""
    path = matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    with Image.open(path) as image:
        return image.convert("RGB")


@cache
def coffee() -> Image.Image:
    """A coffee cup on a saucer (600x400 PNG) from scikit-image's bundled data: a product shot
    with real photographic detail. Read from the installed wheel's files; scikit-image itself
    is never imported (it is installed without its dependencies, for these files)."""
    spec = importlib.util.find_spec("skimage")
    assert spec is not None and spec.submodule_search_locations, "pip install --no-deps scikit-image"
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "coffee.png"
    with Image.open(path) as image:
        return image.convert("RGB")


def chelsea() -> Image.Image:
    """A cat's face (451x300 PNG) from scikit-image's bundled data: real photographic texture."""
    spec = importlib.util.find_spec("skimage")
    assert spec is not None and spec.submodule_search_locations, "pip install --no-deps scikit-image"
    with Image.open(Path(next(iter(spec.submodule_search_locations))) / "data" / "chelsea.png") as image:
        return image.convert("RGB")


def studio_product(width: int = 320, height: int = 240) -> tuple[Image.Image, Image.Image]:
    """A product shot with a known silhouette: real photographic texture cut to a rounded box
    with a handle, on a plain studio backdrop (a light vertical gradient, sensor noise and a
    soft shadow under the object). Returns (photo, its true mask: 255 on the product)."""
    import numpy as np
    from PIL import ImageDraw, ImageFilter

    y = np.mgrid[0:height, 0:width][0].astype(np.float32)
    noise = np.random.default_rng(0).normal(0, 2, (height, width, 3))
    backdrop = np.stack([225 - 0.08 * y, 224 - 0.08 * y, 220 - 0.06 * y], -1) + noise
    shadow = Image.new("L", (width, height), 0)
    sx, sy = width / 320, height / 240
    ImageDraw.Draw(shadow).ellipse((80 * sx, 180 * sy, 250 * sx, 225 * sy), fill=90)
    dark = np.asarray(shadow.filter(ImageFilter.GaussianBlur(12 * sx)), dtype=np.float32)[..., None] / 255
    backdrop = (backdrop * (1 - 0.5 * dark)).clip(0, 255).astype(np.uint8)
    mask = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(mask)
    draw.rounded_rectangle((90 * sx, 50 * sy, 230 * sx, 200 * sy), radius=30 * sx, fill=255)
    draw.ellipse((200 * sx, 80 * sy, 260 * sx, 150 * sy), fill=255)
    photo = Image.composite(chelsea().resize((width, height)), Image.fromarray(backdrop), mask)
    return photo, mask
