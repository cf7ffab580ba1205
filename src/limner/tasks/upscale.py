"""The upscale task: one image in, the same image at ``scale`` times the size out.

Super-resolution models have a native factor (Real-ESRGAN x4plus: 4). ``scale`` may be
smaller than that: the model's output is then resized down (what Real-ESRGAN's own tools call
``outscale``), which keeps the model's detail. Large inputs run in overlapping tiles so that
memory stays bounded by the tile, not by the image.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from limner.tasks.base import Limits, TaskInput, over
from limner.tasks.image import ImageFormat


class UpscaleInput(TaskInput):
    per_item_fields: ClassVar[frozenset[str]] = frozenset({"image", "output_format"})
    limit_fields: ClassVar[frozenset[str]] = frozenset({"max_scale", "min_tile_size", "max_tile_size"})
    file_fields: ClassVar[dict[str, str]] = {"image": "image"}

    image: str = Field(description="The image to upscale: a data: URI, or a URL of a file this server holds.")
    scale: int = Field(
        default=4, ge=1, le=8, description="Output size over input size; at most the model's native factor."
    )
    tile_size: int = Field(
        default=256,
        ge=0,
        description="Tile edge in input pixels (0 = the whole image in one pass). Memory grows with the tile's area.",
    )
    tile_overlap: int = Field(
        default=16, ge=0, le=256, description="Input pixels each tile shares with its neighbours; seams are blended."
    )
    output_format: ImageFormat = Field(default="png", description="png, webp (lossless) or jpeg.")

    @classmethod
    def schema_limits(cls, limits: Limits) -> dict[str, dict[str, object]]:
        return {"scale": {"maximum": limits.max_scale}, "tile_size": {"maximum": limits.max_tile_size}}

    def check_limits(self, limits: Limits) -> None:
        if self.scale > limits.max_scale:
            raise over("scale", self.scale, "max_scale", limits.max_scale)
        if self.tile_size > limits.max_tile_size:
            raise over("tile_size", self.tile_size, "max_tile_size", limits.max_tile_size)
        if self.tile_size and self.tile_size < limits.min_tile_size:
            raise over("tile_size", self.tile_size, "min_tile_size", limits.min_tile_size, under=True)
        if self.tile_size and 2 * self.tile_overlap >= self.tile_size:
            raise over("tile_overlap", self.tile_overlap, "half of tile_size", self.tile_size // 2)
