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

from limner.tasks.image import CONTROL_FIELDS, IP_ADAPTER_FIELDS
from limner.tasks.segment import PROMPT_FIELDS

# Stable Video Diffusion's conditioning knobs, which no other video family has.
SVD_FIELDS: Final = frozenset({"motion_bucket_id", "noise_aug_strength"})


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

    def refused_fields(self, runtime: Mapping[str, Any]) -> frozenset[str]:
        """The fields an entry with these runtime options refuses."""
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
            Family("realesrgan-ncnn", "limner.adapters.realesrgan_ncnn", frozenset({"upscale"})),
            Family(
                "mediapipe-selfie",
                "limner.adapters.mediapipe_selfie",
                frozenset({"segmentation", "background-removal"}),
                unsupported_fields=PROMPT_FIELDS,
            ),
            Family("transformers-sam2", "limner.adapters.sam2", frozenset({"segmentation"})),
            Family(
                "birefnet",
                "limner.adapters.birefnet",
                frozenset({"segmentation", "background-removal"}),
                unsupported_fields=PROMPT_FIELDS,
            ),
            Family("faults", "limner.adapters.faults", frozenset({"text-to-image"})),
            Family("musicgen", "limner.adapters.musicgen", frozenset({"text-to-audio"})),
            Family("stable-audio", "limner.adapters.stable_audio", frozenset({"text-to-audio"})),
            Family("piper", "limner.adapters.piper_tts", frozenset({"text-to-speech"})),
            Family(
                "wan",
                "limner.adapters.wan",
                frozenset({"text-to-video", "image-to-video"}),
                unsupported_fields=SVD_FIELDS,
            ),
            Family(
                "cogvideox",
                "limner.adapters.cogvideox",
                frozenset({"text-to-video", "image-to-video"}),
                unsupported_fields=SVD_FIELDS,
            ),
            Family(
                "stable-video-diffusion",
                "limner.adapters.svd",
                frozenset({"image-to-video"}),
                unsupported_fields=frozenset({"prompt", "negative_prompt"}),  # it animates an image, no text
            ),
            Family(
                "animatediff",
                "limner.adapters.animatediff",
                frozenset({"text-to-video"}),
                unsupported_fields=SVD_FIELDS,
            ),
            Family("shap-e", "limner.adapters.shap_e", frozenset({"text-to-3d", "image-to-3d"})),
        )
    }
)
