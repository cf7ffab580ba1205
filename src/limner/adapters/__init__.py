"""Adapter families: one module per model family, imported only inside workers.

This module names the families and the tasks each can serve without importing any of them,
so the catalog can be checked (and the API can run) without torch.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from limner.adapters.base import Adapter


@dataclass(frozen=True)
class Family:
    name: str
    module: str
    tasks: frozenset[str]
    # Weight quantizations the family can load (catalog runtime.quantization).
    quantization: frozenset[str] = frozenset()


FAMILIES: Final = MappingProxyType(
    {
        f.name: f
        for f in (
            Family(
                "diffusers-image",
                "limner.adapters.diffusers_image",
                frozenset({"text-to-image", "image-to-image", "inpainting"}),
                quantization=frozenset({"nf4"}),
            ),
            Family("faults", "limner.adapters.faults", frozenset({"text-to-image"})),
            Family("musicgen", "limner.adapters.musicgen", frozenset({"text-to-audio"})),
            Family("stable-audio", "limner.adapters.stable_audio", frozenset({"text-to-audio"})),
            Family("piper", "limner.adapters.piper_tts", frozenset({"text-to-speech"})),
            Family("wan", "limner.adapters.wan", frozenset({"text-to-video", "image-to-video"})),
            Family("cogvideox", "limner.adapters.cogvideox", frozenset({"text-to-video", "image-to-video"})),
            Family("stable-video-diffusion", "limner.adapters.svd", frozenset({"image-to-video"})),
            Family("animatediff", "limner.adapters.animatediff", frozenset({"text-to-video"})),
            Family("shap-e", "limner.adapters.shap_e", frozenset({"text-to-3d", "image-to-3d"})),
        )
    }
)


def load_adapter(family: str) -> Adapter:
    """Import a family's module and make its adapter (worker processes only)."""
    module = importlib.import_module(FAMILIES[family].module)
    adapter: Adapter = module.make_adapter()
    return adapter
