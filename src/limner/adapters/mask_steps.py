"""The steps the one-mask families share (MediaPipe selfie, BiRefNet): models that find their
object by themselves and give one soft mask per image.

Prompts are refused at submit (Family.unsupported_fields). A family supplies its load and
``foreground`` (the model's call on one decoded picture); the rest is here: the image's bytes
as the row (decoded in the call, one picture at a time), and the outputs of the task: a
binary mask for segmentation, or an RGBA cutout and its soft mask for background removal.
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from limner.adapters.base import Chunk, FamilyAdapter, JobOutput, LoadedModel, RunContext, WorkItem
from limner.catalog.entry import CatalogEntry
from limner.media.images import open_image
from limner.media.masks import outputs_for
from limner.progress import Stage
from limner.tasks.segment import BackgroundRemovalInput, SegmentationInput

MaskInput = SegmentationInput | BackgroundRemovalInput


@dataclass(frozen=True)
class Segmented:
    """A picture and the model's foreground probability (HxW float in [0, 1]) at its size."""

    image: Image.Image
    probability: np.ndarray[Any, Any]


class OneMaskAdapter(FamilyAdapter[MaskInput, bytes, Segmented]):
    stage = Stage.SEGMENTING
    rows_per_call = 1

    @abstractmethod
    def foreground(self, model: LoadedModel, image: Image.Image) -> np.ndarray[Any, Any]:
        """The model's foreground probability for one RGB picture, at the picture's size."""

    # -- 3. prepare: decoding waits for the call (one picture at a time) ----------------------

    def prepare(
        self, model: LoadedModel, entry: CatalogEntry, items: list[WorkItem[MaskInput]], ctx: RunContext
    ) -> list[list[bytes]]:
        return [[item.files["image"]] for item in items]

    # -- 4. call -----------------------------------------------------------------------------

    def call(self, model: LoadedModel, entry: CatalogEntry, chunk: Chunk[MaskInput, bytes]) -> list[Segmented]:
        image = open_image(chunk.rows[0], "RGB")
        probability = self.foreground(model, image)
        chunk.step(1, 1)
        return [Segmented(image, probability)]

    # -- 5. encode ---------------------------------------------------------------------------

    def encode(
        self,
        model: LoadedModel,
        entry: CatalogEntry,
        item: WorkItem[MaskInput],
        results: list[Segmented],
        ctx: RunContext,
    ) -> JobOutput:
        [segmented] = results
        spec = item.input
        fmt = spec.output_format if isinstance(spec, BackgroundRemovalInput) else "png"
        return JobOutput(files=outputs_for(entry.task, segmented.image, segmented.probability, fmt))
