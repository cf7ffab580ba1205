"""Adapter families as data: each family's name, the module that implements it, the tasks it
serves, the quantizations it can load and the input fields it never honours.

The catalog checks entries against this (an unknown family or a task the family does not
serve stops the server at start) and the API refuses refused fields with a 422, all without
importing any family's module: those import torch, and live in workers only
(``limner.adapters.load_adapter``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final

from limner.tasks import TASK_IDS
from limner.tasks.image import CONTROL_FIELDS, IP_ADAPTER_FIELDS, LORA_FIELDS
from limner.tasks.segment import PROMPT_FIELDS

# Stable Video Diffusion's conditioning knobs, which no other video family has.
SVD_FIELDS: Final = frozenset({"motion_bucket_id", "noise_aug_strength"})
DIFFUSERS: Final = ("torch", "diffusers", "transformers")
TRANSFORMERS: Final = ("torch", "transformers")
VIDEO: Final = (*DIFFUSERS, "av")
# What OpenAI's Images API has no field for. Never sent: ControlNet, IP-Adapter, LoRAs, step
# previews. Sent only by an entry with runtime.extra_body (a provider that takes them, such as
# another limner): the knobs OpenAI lacks. Anything else would be dropped without a word.
OPENAI_REFUSED: Final = CONTROL_FIELDS | IP_ADAPTER_FIELDS | LORA_FIELDS | {"preview"}
OPENAI_EXTRA: Final = frozenset({"negative_prompt", "num_inference_steps", "guidance_scale", "seed", "strength"})
# What a fal-queue provider may serve: every task whose result is files or text (input files go
# as data URIs). Not LoRA training (its output is registered here), composite (a local step) or
# prompt enhancement (the worker runs it inside an image request: limner.runtime.enhance).
REMOTE_TASKS: Final = frozenset(TASK_IDS) - {"lora-training", "composite", "prompt-enhancement"}


@dataclass(frozen=True)
class Family:
    name: str
    module: str
    tasks: frozenset[str]
    # Weight quantizations the family can load (catalog runtime.quantization).
    quantization: frozenset[str] = frozenset()
    # Fields of its tasks' schemas this family never honours: every entry of the family refuses
    # them with a 422 (they are merged into the entry's ``unsupported`` list).
    unsupported_fields: frozenset[str] = frozenset()
    # Fields honoured only when an entry turns a runtime option on: (option, fields) pairs. An
    # entry without the option refuses the fields like unsupported ones.
    gated_fields: tuple[tuple[str, frozenset[str]], ...] = ()
    # The tasks those refusals apply to (empty: all of the family's tasks), for a family whose
    # tasks go through different APIs (openai-images: chat completions does send a seed).
    refusing_tasks: frozenset[str] = frozenset()
    # The Python packages (import names) the family's module needs: a worker or API without
    # them lists the family's models as unavailable (catalog.availability), without importing.
    requires: tuple[str, ...] = DIFFUSERS
    # The model repositories ship Python code: entries run only with runtime.trust_remote_code.
    needs_remote_code: bool = False
    # A hosted provider reached over its own protocol (https source, a key from the
    # environment): a worker with no GPU serves it, and a call holds no device slot.
    remote: bool = False

    def refused_fields(self, task: str, runtime: Mapping[str, Any]) -> frozenset[str]:
        """The fields an entry of this task with these runtime options refuses."""
        if self.refusing_tasks and task not in self.refusing_tasks:
            return frozenset()
        gated = [fields for option, fields in self.gated_fields if not runtime.get(option)]
        return self.unsupported_fields.union(*gated)


FAMILIES: Final = MappingProxyType(
    {
        f.name: f
        for f in (
            Family(
                "diffusers-image",
                "limner.adapters.diffusers_image",
                frozenset({"text-to-image", "image-to-image", "inpainting"}),
                quantization=frozenset({"nf4"}),
                unsupported_fields=CONTROL_FIELDS,
                gated_fields=(("ip_adapter", IP_ADAPTER_FIELDS),),
            ),
            Family(
                "diffusers-controlnet",
                "limner.adapters.diffusers_controlnet",
                frozenset({"text-to-image"}),
                gated_fields=(("ip_adapter", IP_ADAPTER_FIELDS),),
            ),
            Family("realesrgan-ncnn", "limner.adapters.realesrgan_ncnn", frozenset({"upscale"}), requires=("ncnn",)),
            Family(
                "mediapipe-selfie",
                "limner.adapters.mediapipe_selfie",
                frozenset({"segmentation", "background-removal"}),
                unsupported_fields=PROMPT_FIELDS,
                requires=("mediapipe", "cv2"),
            ),
            Family("transformers-sam2", "limner.adapters.sam2", frozenset({"segmentation"}), requires=TRANSFORMERS),
            Family(
                "birefnet",
                "limner.adapters.birefnet",
                frozenset({"segmentation", "background-removal"}),
                unsupported_fields=PROMPT_FIELDS,
                requires=TRANSFORMERS,
                needs_remote_code=True,
            ),
            Family(
                "faults",
                "limner.adapters.faults",
                frozenset({"text-to-image"}),
                unsupported_fields=LORA_FIELDS,
                requires=(),
            ),
            # LoRA (DreamBooth) training of SD 1.5, SDXL and FLUX.1 bases, on diffusers + peft.
            Family(
                "lora-trainer",
                "limner.adapters.lora_trainer",
                frozenset({"lora-training"}),
                requires=(*DIFFUSERS, "peft", "safetensors"),
            ),
            Family(
                "grabcut",
                "limner.adapters.grabcut",
                frozenset({"segmentation", "background-removal"}),
                unsupported_fields=PROMPT_FIELDS - {"box"},  # a box is GrabCut's own way to start
                requires=("cv2",),
            ),
            Family("composite", "limner.adapters.composite", frozenset({"composite"}), requires=("PIL",)),
            Family("musicgen", "limner.adapters.musicgen", frozenset({"text-to-audio"}), requires=TRANSFORMERS),
            Family("stable-audio", "limner.adapters.stable_audio", frozenset({"text-to-audio"})),
            Family("piper", "limner.adapters.piper_tts", frozenset({"text-to-speech"}), requires=("piper",)),
            Family(
                "wan",
                "limner.adapters.wan",
                frozenset({"text-to-video", "image-to-video"}),
                unsupported_fields=SVD_FIELDS,
                requires=VIDEO,
            ),
            Family(
                "cogvideox",
                "limner.adapters.cogvideox",
                frozenset({"text-to-video", "image-to-video"}),
                unsupported_fields=SVD_FIELDS,
                requires=VIDEO,
            ),
            Family(
                "stable-video-diffusion",
                "limner.adapters.svd",
                frozenset({"image-to-video"}),
                unsupported_fields=frozenset({"prompt", "negative_prompt"}),  # it animates an image, no text
                requires=VIDEO,
            ),
            Family(
                "animatediff",
                "limner.adapters.animatediff",
                frozenset({"text-to-video"}),
                unsupported_fields=SVD_FIELDS,
                requires=VIDEO,
            ),
            # Hosted providers: fal's queue protocol (fal, or another limner) and OpenAI's API.
            Family("fal-queue", "limner.adapters.fal_queue", REMOTE_TASKS, requires=("httpx",), remote=True),
            Family(
                "openai-images",
                "limner.adapters.openai_images",
                frozenset({"text-to-image", "image-to-image", "inpainting", "text-generation"}),
                unsupported_fields=OPENAI_REFUSED,
                gated_fields=(("extra_body", OPENAI_EXTRA),),
                refusing_tasks=frozenset({"text-to-image", "image-to-image", "inpainting"}),
                requires=("httpx",),
                remote=True,
            ),
            Family(
                "shap-e",
                "limner.adapters.shap_e",
                frozenset({"text-to-3d", "image-to-3d"}),
                requires=(*VIDEO, "trimesh"),
            ),
            # Text: causal language models (chat templates from the tokenizer) and
            # vision-language models (an image and a prompt to text).
            Family(
                "transformers-causal-lm",
                "limner.adapters.transformers_causal_lm",
                frozenset({"text-generation", "prompt-enhancement"}),
                quantization=frozenset({"nf4"}),
                requires=TRANSFORMERS,
            ),
            Family(
                "transformers-vlm",
                "limner.adapters.transformers_vlm",
                frozenset({"image-to-text"}),
                quantization=frozenset({"nf4"}),
                requires=TRANSFORMERS,
            ),
        )
    }
)
