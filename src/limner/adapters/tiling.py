"""Running an image model tile by tile, with overlapping tiles and blended seams.

A convolutional super-resolution network needs memory in proportion to the area it sees, so a
large image runs as tiles of ``tile`` input pixels. Neighbouring tiles share ``overlap`` pixels;
in the shared band each tile's output is weighted by a linear ramp (1 inside, falling towards
the tile's inner edges, where it lacked context), and the weighted outputs are averaged. A
ramp is used rather than a hard cut so that no seam shows where two tiles disagree slightly.

Written here with numpy because ncnn (the runtime) has no tiling of its own, and the blending
is a few lines of array arithmetic.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

Array = np.ndarray[Any, Any]


@dataclass(frozen=True)
class Tile:
    top: int
    left: int
    height: int
    width: int


def axis_tiles(length: int, tile: int, overlap: int) -> tuple[int, list[int]]:
    """Tile length and start offsets along one axis.

    As few tiles as fit (each at most ``tile``, neighbours sharing at least ``overlap``), made
    equal and spread evenly: the work is the tiles' total area, so tiles shrink to what the
    axis needs instead of the last one sliding back over its neighbour.
    """
    if tile <= 0 or length <= tile:
        return length, [0]
    count = math.ceil((length - overlap) / (tile - overlap))
    size = math.ceil((length + (count - 1) * overlap) / count)
    return size, [round(i * (length - size) / (count - 1)) for i in range(count)]


def plan_tiles(height: int, width: int, tile: int, overlap: int) -> list[Tile]:
    size_h, tops = axis_tiles(height, tile, overlap)
    size_w, lefts = axis_tiles(width, tile, overlap)
    return [Tile(top, left, size_h, size_w) for top in tops for left in lefts]


def _ramp(length: int, ramp: int, lead: bool, trail: bool) -> Array:
    """Per-pixel weights along one axis: linear over ``ramp`` pixels at inner edges, else 1."""
    weights = np.ones(length, dtype=np.float32)
    if ramp <= 0:
        return weights
    rising = (np.arange(min(ramp, length), dtype=np.float32) + 0.5) / ramp
    if lead:
        weights[: rising.size] = np.minimum(weights[: rising.size], rising)
    if trail:
        weights[length - rising.size :] = np.minimum(weights[length - rising.size :], rising[::-1])
    return weights


def run_tiled(
    image: Array,
    model: Callable[[Array], Array],
    scale: int,
    tile: int,
    overlap: int,
) -> Iterator[tuple[int, int, Array | None]]:
    """Apply ``model`` (HxWxC float -> (H*scale)x(W*scale)xC float) to ``image`` tile by tile.

    Yields ``(done, total, None)`` after each tile (progress, and a point to stop at) and finally
    ``(total, total, output)``. A caller that stops iterating early stops the work.
    """
    height, width, channels = image.shape
    tiles = plan_tiles(height, width, tile, overlap)
    if len(tiles) == 1:
        out = model(image)
        yield 1, 1, out
        return
    total = np.zeros((height * scale, width * scale, channels), dtype=np.float32)
    weight = np.zeros((height * scale, width * scale, 1), dtype=np.float32)
    ramp = overlap * scale
    for done, t in enumerate(tiles, start=1):
        piece = model(image[t.top : t.top + t.height, t.left : t.left + t.width])
        rows = _ramp(t.height * scale, ramp, t.top > 0, t.top + t.height < height)
        cols = _ramp(t.width * scale, ramp, t.left > 0, t.left + t.width < width)
        w = (rows[:, None] * cols[None, :])[..., None]
        region = (slice(t.top * scale, (t.top + t.height) * scale), slice(t.left * scale, (t.left + t.width) * scale))
        total[region] += piece * w
        weight[region] += w
        yield done, len(tiles), None
    yield len(tiles), len(tiles), total / weight
