"""Real photographs that ship inside packages the tests already depend on (no downloads)."""

from __future__ import annotations

from functools import cache

import matplotlib.cbook
from PIL import Image


@cache
def grace_hopper() -> Image.Image:
    """Grace Hopper's portrait (512x600 JPEG) from matplotlib's bundled sample data: a person
    in front of a plain background, with natural photographic detail."""
    path = matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    with Image.open(path) as image:
        return image.convert("RGB")
