"""Task schemas: the model-agnostic contract. Every model declares exactly one task."""

from __future__ import annotations

from types import MappingProxyType
from typing import Final

from limner.tasks.audio import TextToAudioInput
from limner.tasks.base import Limits, TaskInput, TaskSpec
from limner.tasks.image import ImageToImageInput, InpaintingInput, TextToImageInput
from limner.tasks.speech import TextToSpeechInput

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
            TaskSpec("text-to-audio", TextToAudioInput, "audio", "Text to audio (music and sound)"),
            TaskSpec("text-to-speech", TextToSpeechInput, "audio", "Text to speech"),
        )
    }
)

__all__ = ["TASKS", "TASK_IDS", "Limits", "TaskInput", "TaskSpec"]
