"""Task schemas: the model-agnostic contract. Every model declares exactly one task."""

from __future__ import annotations

from types import MappingProxyType
from typing import Final

from limner.tasks.base import Limits, TaskInput, TaskSpec
from limner.tasks.image import ImageToImageInput, InpaintingInput, TextToImageInput
from limner.tasks.segment import BackgroundRemovalInput, SegmentationInput
from limner.tasks.upscale import UpscaleInput

TASK_IDS: Final[tuple[str, ...]] = (
    "text-to-image",
    "image-to-image",
    "inpainting",
    "upscale",
    "segmentation",
    "background-removal",
    "text-to-video",
    "image-to-video",
    "text-to-audio",
    "text-to-speech",
    "text-to-3d",
    "image-to-3d",
)

TASKS: Final = MappingProxyType(
    {
        spec.id: spec
        for spec in (
            TaskSpec("text-to-image", TextToImageInput, "images", "Text to image"),
            TaskSpec("image-to-image", ImageToImageInput, "images", "Image to image"),
            TaskSpec("inpainting", InpaintingInput, "images", "Inpainting"),
            TaskSpec("upscale", UpscaleInput, "images", "Upscale (super-resolution)"),
            TaskSpec("segmentation", SegmentationInput, "masks", "Segmentation"),
            TaskSpec("background-removal", BackgroundRemovalInput, "images", "Background removal"),
        )
    }
)

__all__ = ["TASKS", "TASK_IDS", "Limits", "TaskInput", "TaskSpec"]
