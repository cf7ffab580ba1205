"""Compositing: a foreground pasted over a background, its own pixels kept exactly.

The step that keeps a product photo honest: after a scene is generated around a product, the
product's own pixels (an RGBA cutout, or a picture and its mask) go back over the scene, so a
generated image never alters the product. The result has the foreground's size (the background
is fitted to it), so inside the mask every pixel is the foreground's.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from limner.tasks.base import TaskInput


class CompositeInput(TaskInput):
    per_item_fields: ClassVar[frozenset[str]] = frozenset(
        {"image", "overlay", "mask_image", "feather_px", "output_format"}
    )
    file_fields: ClassVar[dict[str, str]] = {"image": "image", "overlay": "image", "mask_image": "mask"}

    image: str = Field(description="The background: a data: URI, or a URL of a file this server holds.")
    overlay: str = Field(
        description="The foreground: an RGBA cutout (its alpha is the mask), or any picture with mask_image."
    )
    mask_image: str | None = Field(
        default=None, description="White where the overlay is kept (instead of the overlay's own alpha)."
    )
    fit: Literal["cover", "stretch"] = Field(
        default="cover",
        description="How the background takes the overlay's size: cover (scaled and cropped, no distortion) "
        "or stretch.",
    )
    feather_px: int = Field(
        default=0, ge=0, le=64, description="Soften the mask's edge over this many pixels (the inside stays exact)."
    )
    output_format: Literal["png", "webp", "jpeg"] = Field(default="png", description="png, webp (lossless) or jpeg.")
