"""Segmentation and background removal: an image in, masks (and a cutout) out.

``segmentation`` takes optional prompts the way SAM 2 does: points on (label 1) or off
(label 0) the object, and a box. Models that segment one kind of thing by themselves (a person,
the salient object) refuse prompts rather than ignore them. Masks are single-channel PNGs,
255 on the object. ``background-removal`` returns the input as an RGBA cutout whose alpha is
the model's (soft) mask, plus that mask.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, ValidationInfo, field_validator

from limner.tasks.base import Limits, TaskInput, over

# Prompts that models which segment one kind of thing by themselves refuse (Family.unsupported_fields).
PROMPT_FIELDS: frozenset[str] = frozenset({"points", "point_labels", "box", "multimask"})

Point = tuple[float, float]
Box = tuple[float, float, float, float]


def ordered_box(box: Box | None) -> Box | None:
    if box is not None and not (box[0] < box[2] and box[1] < box[3]):
        raise ValueError("box must be [x0, y0, x1, y1] with x0 < x1 and y0 < y1")
    return box


class SegmentationInput(TaskInput):
    per_item_fields: ClassVar[frozenset[str]] = frozenset({"image", "points", "point_labels", "box"})
    limit_fields: ClassVar[frozenset[str]] = frozenset({"max_points"})
    file_fields: ClassVar[dict[str, str]] = {"image": "image"}

    image: str = Field(description="The image to segment: a data: URI, or a URL of a file this server holds.")
    points: list[Point] | None = Field(
        default=None, min_length=1, description="Prompt points [[x, y], …] in input-image pixels."
    )
    point_labels: list[Literal[0, 1]] | None = Field(
        default=None, description="One label per point: 1 = on the object, 0 = not on it. All 1 when absent."
    )
    box: Box | None = Field(default=None, description="Prompt box [x0, y0, x1, y1] in input-image pixels.")
    multimask: bool = Field(
        default=False, description="Return up to three candidate masks, best first (for ambiguous prompts)."
    )

    @field_validator("point_labels")
    @classmethod
    def _labels_match_points(cls, labels: list[int] | None, info: ValidationInfo) -> list[int] | None:
        points = info.data.get("points")
        if labels is not None and (points is None or len(labels) != len(points)):
            count = 0 if points is None else len(points)
            raise ValueError(f"point_labels needs one label per point ({len(labels)} labels for {count} points)")
        return labels

    @field_validator("box")
    @classmethod
    def _box_is_ordered(cls, box: Box | None) -> Box | None:
        return ordered_box(box)

    @classmethod
    def schema_limits(cls, limits: Limits) -> dict[str, dict[str, object]]:
        return {"points": {"maxItems": limits.max_points}}

    def check_limits(self, limits: Limits) -> None:
        if self.points is not None and len(self.points) > limits.max_points:
            raise over("points", f"<{len(self.points)} points>", "max_points", limits.max_points)


class BackgroundRemovalInput(TaskInput):
    per_item_fields: ClassVar[frozenset[str]] = frozenset({"image", "output_format", "box"})
    file_fields: ClassVar[dict[str, str]] = {"image": "image"}

    image: str = Field(description="The image to cut out: a data: URI, or a URL of a file this server holds.")
    box: Box | None = Field(
        default=None,
        description="Models that take one (GrabCut): [x0, y0, x1, y1] around the object, in input-image "
        "pixels; found by itself when absent.",
    )

    @field_validator("box")
    @classmethod
    def _box_is_ordered(cls, box: Box | None) -> Box | None:
        return ordered_box(box)

    output_format: Literal["png", "webp"] = Field(
        default="png", description="png or webp (lossless): formats that keep the alpha channel."
    )
