"""Family ``mediapipe-selfie``: person segmentation with MediaPipe's selfie models, on the CPU.

The tflite models ship inside the ``mediapipe`` wheel (0.10.21 is the last release that
bundles them): ``pip://mediapipe/selfie_segmentation`` (general, 256x256) or
``pip://mediapipe/selfie_segmentation_landscape`` (144x256, faster). The model finds people by
itself, so point and box prompts are refused (Family.unsupported_fields), never ignored.

Steps: 1. load (find the model in the wheel, build the solution graph)  2. check (prompts are
       refused at submit: the family declares them)  3. prepare (the image's bytes)
       4. call (one image: decode, the solution's mask)  5. encode (a binary mask; or an RGBA
       cutout and its soft mask)
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import mediapipe as mp
import numpy as np
from PIL import Image

from limner.adapters.base import LoadedModel, LoadEnv
from limner.adapters.mask_steps import OneMaskAdapter
from limner.adapters.packaged import resolve_packaged
from limner.catalog.entry import CatalogEntry
from limner.errors import ModelUnavailable

# The solution's own switch between its two bundled models: model name -> model_selection.
MODEL_SELECTION = {"selfie_segmentation": 0, "selfie_segmentation_landscape": 1}


@dataclass
class Selfie:
    solution: Any
    lock: threading.Lock  # a MediaPipe graph takes one image at a time


class MediapipeSelfieAdapter(OneMaskAdapter):
    # -- 1. load ---------------------------------------------------------------------------

    def load(self, entry: CatalogEntry, env: LoadEnv) -> LoadedModel:
        packaged = resolve_packaged(entry)
        if packaged.name not in MODEL_SELECTION:
            raise ModelUnavailable(
                f"{entry.id}: mediapipe bundles no selfie model {packaged.name!r} (known: {', '.join(MODEL_SELECTION)})"
            )
        tflite = packaged.folder / "modules" / "selfie_segmentation" / f"{packaged.name}.tflite"
        if not tflite.is_file():
            raise ModelUnavailable(
                f"{entry.id}: {tflite} is missing; mediapipe 0.10.21 is the last release that bundles it"
            )
        solution = mp.solutions.selfie_segmentation.SelfieSegmentation(model_selection=MODEL_SELECTION[packaged.name])
        return LoadedModel(
            handle=Selfie(solution, threading.Lock()),
            revision=packaged.revision,
            size_bytes=tflite.stat().st_size,
            device="cpu",
        )

    def unload(self, model: LoadedModel) -> None:
        model.handle.solution.close()
        model.handle = None

    # -- 4. call (3. prepare and 5. encode: mask_steps.OneMaskAdapter) ------------------------

    def foreground(self, model: LoadedModel, image: Image.Image) -> np.ndarray[Any, Any]:
        selfie: Selfie = model.handle
        with selfie.lock:
            result = selfie.solution.process(np.asarray(image))
        return np.asarray(result.segmentation_mask, dtype=np.float32)


def make_adapter() -> MediapipeSelfieAdapter:
    return MediapipeSelfieAdapter()
