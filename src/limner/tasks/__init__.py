"""Task schemas: the model-agnostic contract. Every model declares exactly one task."""

from __future__ import annotations

from types import MappingProxyType
from typing import Final

from limner.tasks.audio import TextToAudioInput
from limner.tasks.base import Limits, TaskInput, TaskSpec
from limner.tasks.composite import CompositeInput
from limner.tasks.image import ImageToImageInput, InpaintingInput, TextToImageInput
from limner.tasks.mesh import ImageTo3DInput, TextTo3DInput
from limner.tasks.segment import BackgroundRemovalInput, SegmentationInput
from limner.tasks.speech import TextToSpeechInput
from limner.tasks.text import ImageToTextInput, PromptEnhancementInput, TextGenerationInput
from limner.tasks.training import LoraTrainingInput
from limner.tasks.upscale import UpscaleInput
from limner.tasks.video import ImageToVideoInput, TextToVideoInput

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
    "composite",
    "lora-training",
    "text-generation",
    "image-to-text",
    "prompt-enhancement",
)

# A workflow's own job (limner.workflows): not a model's task, so it has no schema of its own;
# each workflow's inputs make its schema, and its steps are jobs of their models' tasks.
WORKFLOW_TASK: Final = "workflow"

TASKS: Final = MappingProxyType(
    {
        spec.id: spec
        for spec in (
            TaskSpec("text-to-image", TextToImageInput, "images", "Text to image", ("control_maps",)),
            TaskSpec("image-to-image", ImageToImageInput, "images", "Image to image"),
            TaskSpec("inpainting", InpaintingInput, "images", "Inpainting"),
            TaskSpec("text-to-audio", TextToAudioInput, "audio", "Text to audio (music and sound)"),
            TaskSpec("text-to-speech", TextToSpeechInput, "audio", "Text to speech"),
            TaskSpec("text-to-video", TextToVideoInput, "videos", "Text to video", ("previews",)),
            TaskSpec("image-to-video", ImageToVideoInput, "videos", "Image to video", ("previews",)),
            TaskSpec("text-to-3d", TextTo3DInput, "meshes", "Text to 3D", ("previews",)),
            TaskSpec("image-to-3d", ImageTo3DInput, "meshes", "Image to 3D", ("previews",)),
            TaskSpec("upscale", UpscaleInput, "images", "Upscale (super-resolution)"),
            TaskSpec("segmentation", SegmentationInput, "masks", "Segmentation"),
            TaskSpec("background-removal", BackgroundRemovalInput, "images", "Background removal", ("masks",)),
            TaskSpec("composite", CompositeInput, "images", "Composite (a foreground over a background)"),
            TaskSpec(
                "lora-training",
                LoraTrainingInput,
                "lora",
                "LoRA training (DreamBooth)",
                ("checkpoints", "loss_curve", "stopped_early", "best_checkpoint"),
            ),
            TaskSpec("text-generation", TextGenerationInput, "output", "Text generation (chat)", ("finish_reason",)),
            TaskSpec(
                "image-to-text", ImageToTextInput, "output", "Image to text (captions, questions)", ("finish_reason",)
            ),
            TaskSpec(
                "prompt-enhancement",
                PromptEnhancementInput,
                "output",
                "Prompt enhancement (a short prompt to a detailed one for a target image family)",
                ("finish_reason", "template"),
            ),
        )
    }
)

__all__ = ["TASKS", "TASK_IDS", "WORKFLOW_TASK", "Limits", "TaskInput", "TaskSpec"]
