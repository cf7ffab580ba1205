"""Family ``composite``: a foreground pasted over a background with Pillow (no model, no torch).

The output has the foreground's size: the background is fitted to it (``cover``: scaled to
fill and cropped, or ``stretch``), then the foreground goes over it through its mask (its own
alpha, or ``mask_image``). Where the mask is fully on, every output pixel is the foreground's
own, byte for byte; ``feather_px`` softens only the edge.

Steps: 1. load (nothing)  2. check (schema)  3. prepare (the three files' bytes)
       4. call (fit, mask, paste)  5. encode (PNG/WebP/JPEG)
"""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image, ImageFilter, ImageOps

from limner.adapters.base import Chunk, FamilyAdapter, JobOutput, LoadedModel, LoadEnv, RunContext, WorkItem
from limner.catalog.entry import CatalogEntry
from limner.media.images import encode_image, open_image
from limner.progress import Stage
from limner.tasks.composite import CompositeInput


@dataclass(frozen=True)
class Layers:
    background: bytes
    overlay: bytes
    mask: bytes | None


def fit(background: Image.Image, size: tuple[int, int], how: str) -> Image.Image:
    if how == "stretch":
        return background.resize(size, Image.Resampling.LANCZOS)
    return ImageOps.fit(background, size, Image.Resampling.LANCZOS)


def paste(layers: Layers, how: str, feather_px: int) -> Image.Image:
    overlay = open_image(layers.overlay, "RGBA")
    mask = (
        open_image(layers.mask, "L").resize(overlay.size, Image.Resampling.NEAREST)
        if layers.mask
        else overlay.getchannel("A")
    )
    if feather_px:
        # Soften the edge only: where the mask is fully on it stays on (those pixels stay exact).
        mask = Image.composite(
            mask, mask.filter(ImageFilter.GaussianBlur(feather_px)), mask.point(lambda v: 255 if v == 255 else 0)
        )
    out = fit(open_image(layers.background, "RGB"), overlay.size, how)
    out.paste(overlay.convert("RGB"), (0, 0), mask)
    return out


class CompositeAdapter(FamilyAdapter[CompositeInput, Layers, Image.Image]):
    stage = Stage.COMPOSITING
    rows_per_call = 1

    def load(self, entry: CatalogEntry, env: LoadEnv) -> LoadedModel:
        return LoadedModel(handle=None, revision="pillow-composite-1", size_bytes=0, device="cpu")

    def unload(self, model: LoadedModel) -> None:
        model.handle = None

    def prepare(
        self, model: LoadedModel, entry: CatalogEntry, items: list[WorkItem[CompositeInput]], ctx: RunContext
    ) -> list[list[Layers]]:
        return [[Layers(i.files["image"], i.files["overlay"], i.files.get("mask_image"))] for i in items]

    def call(self, model: LoadedModel, entry: CatalogEntry, chunk: Chunk[CompositeInput, Layers]) -> list[Image.Image]:
        spec = chunk.input
        image = paste(chunk.rows[0], spec.fit, spec.feather_px)
        chunk.step(1, 1)
        return [image]

    def encode(
        self,
        model: LoadedModel,
        entry: CatalogEntry,
        item: WorkItem[CompositeInput],
        results: list[Image.Image],
        ctx: RunContext,
    ) -> JobOutput:
        return JobOutput(files={"images": [encode_image(results[0], item.input.output_format)]})


def make_adapter() -> CompositeAdapter:
    return CompositeAdapter()
