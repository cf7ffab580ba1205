"""Family ``transformers-sam2``: promptable segmentation with SAM 2 (transformers ``Sam2Model``).

Prompts are points (label 1 on the object, 0 off it) and a box, in input-image pixels; at
least one is needed (SAM 2's automatic "segment everything" mode is a different pipeline).
``multimask`` returns the three candidate masks, best predicted IoU first, each with its
``score``.

The preprocessing (resize to the model's square input, ImageNet normalisation, scaling the
prompt coordinates with the image) is written here with PIL and numpy rather than through
``Sam2Processor``: its image processor needs torchvision, which has no CPU build for the pinned
torch on the package registry. The constants come from the checkpoint's
``preprocessor_config.json`` and its config, exactly what the processor would read.

Steps: 1. load (resolve the source, from_pretrained, place)  2. check (prompts inside the image)
       3. prepare (the image's bytes)  4. call (one image: pixels and prompts at model scale,
       forward)  5. encode (masks at input size, mode L PNG, with coverage and score)
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from transformers import Sam2Model

from limner.adapters.base import Chunk, FamilyAdapter, JobOutput, LoadedModel, LoadEnv, RunContext, WorkItem
from limner.adapters.loading import module_bytes, quiet_runtimes, release, resolve_dtype, resolve_source
from limner.catalog.entry import CatalogEntry
from limner.errors import InvalidInput, ModelUnavailable
from limner.media.images import open_image
from limner.media.masks import encode_mask
from limner.progress import Stage
from limner.tasks.segment import SegmentationInput

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class Sam2:
    model: Any
    size: int  # the model's square input edge (1024 for the released checkpoints)
    mean: np.ndarray[Any, Any]
    std: np.ndarray[Any, Any]
    dtype: torch.dtype
    device: str


@dataclass(frozen=True)
class Masks:
    """Masks (float 0/1 at the input size) and their predicted IoU, best first."""

    masks: list[np.ndarray[Any, Any]]
    scores: list[float]


class Sam2Adapter(FamilyAdapter[SegmentationInput, bytes, Masks]):
    stage = Stage.SEGMENTING
    rows_per_call = 1

    # -- 1. load ---------------------------------------------------------------------------

    def load(self, entry: CatalogEntry, env: LoadEnv) -> LoadedModel:
        path, revision = resolve_source(entry, env, marker="config.json")
        dtype = resolve_dtype(entry.runtime.dtype, env.device)
        try:
            model: Any = Sam2Model.from_pretrained(str(path), dtype=dtype, use_safetensors=True)
            model = model.to(env.device).eval()
        except (OSError, ValueError) as exc:
            raise ModelUnavailable(f"cannot load {entry.id} from {path}: {exc}") from exc
        mean, std = _normalisation(path)
        handle = Sam2(model, int(model.config.prompt_encoder_config.image_size), mean, std, dtype, env.device)
        return LoadedModel(handle=handle, revision=revision, size_bytes=module_bytes(model), device=env.device)

    def unload(self, model: LoadedModel) -> None:
        model.handle = None
        release(model.device)

    # -- 2. check ----------------------------------------------------------------------------

    def check(self, model: LoadedModel, entry: CatalogEntry, item: WorkItem[SegmentationInput]) -> None:
        """Prompts must exist and lie inside the image: a point outside it would segment nothing."""
        spec = item.input
        with Image.open(io.BytesIO(item.files["image"])) as probe:  # the header: no decoding
            width, height = probe.size
        if not spec.points and not spec.box:
            needs = f"{entry.id} needs a prompt: points (with point_labels) or a box"
            raise InvalidInput(needs, loc=("body", "points"))
        for x, y in spec.points or []:
            if not (0 <= x <= width and 0 <= y <= height):
                raise InvalidInput(f"point [{x}, {y}] lies outside the {width}x{height} image", loc=("body", "points"))
        box = spec.box
        if box and (min(box[0], box[1]) < 0 or box[2] > width or box[3] > height):
            raise InvalidInput(f"box {list(box)} reaches outside the {width}x{height} image", loc=("body", "box"))

    # -- 3. prepare: decoding waits for the call (one picture at a time) ----------------------

    def prepare(
        self, model: LoadedModel, entry: CatalogEntry, items: list[WorkItem[SegmentationInput]], ctx: RunContext
    ) -> list[list[bytes]]:
        return [[item.files["image"]] for item in items]

    # -- 4. call -----------------------------------------------------------------------------

    def call(self, model: LoadedModel, entry: CatalogEntry, chunk: Chunk[SegmentationInput, bytes]) -> list[Masks]:
        masks = segment(model.handle, open_image(chunk.rows[0], "RGB"), chunk.input)
        chunk.step(1, 1)
        return [masks]

    # -- 5. encode ---------------------------------------------------------------------------

    def encode(
        self,
        model: LoadedModel,
        entry: CatalogEntry,
        item: WorkItem[SegmentationInput],
        results: list[Masks],
        ctx: RunContext,
    ) -> JobOutput:
        [found] = results
        files = [
            encode_mask(mask, binary=True, extra={"score": round(score, 4)})
            for mask, score in zip(found.masks, found.scores, strict=True)
        ]
        return JobOutput(files={"masks": files})


def make_adapter() -> Sam2Adapter:
    quiet_runtimes()
    return Sam2Adapter()


def _normalisation(path: Path) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    config_file = path / "preprocessor_config.json"
    config: dict[str, Any] = json.loads(config_file.read_text()) if config_file.is_file() else {}
    mean = np.asarray(config.get("image_mean", IMAGENET_MEAN), dtype=np.float32)
    std = np.asarray(config.get("image_std", IMAGENET_STD), dtype=np.float32)
    return mean, std


# -- running ---------------------------------------------------------------


def segment(sam: Sam2, image: Image.Image, spec: SegmentationInput) -> Masks:
    """Masks (float 0/1 at the input size) and their predicted IoU, best first."""
    width, height = image.size
    resized = np.asarray(image.resize((sam.size, sam.size), Image.Resampling.BILINEAR), dtype=np.float32) / 255.0
    pixels = torch.from_numpy(((resized - sam.mean) / sam.std).transpose(2, 0, 1)).unsqueeze(0)
    factor = torch.tensor([sam.size / width, sam.size / height])
    inputs: dict[str, Any] = {"pixel_values": pixels.to(sam.device, sam.dtype)}
    if spec.points:
        points = torch.tensor(spec.points, dtype=torch.float32) * factor
        labels = spec.point_labels or [1] * len(spec.points)
        inputs["input_points"] = points.view(1, 1, -1, 2).to(sam.device)
        inputs["input_labels"] = torch.tensor(labels, dtype=torch.long).view(1, 1, -1).to(sam.device)
    if spec.box:
        box = torch.tensor(spec.box, dtype=torch.float32).view(2, 2) * factor
        inputs["input_boxes"] = box.view(1, 1, 4).to(sam.device)
    with torch.inference_mode():
        out = sam.model(**inputs, multimask_output=spec.multimask)
        logits = F.interpolate(out.pred_masks[0].float(), (height, width), mode="bilinear", align_corners=False)[0]
        scores = out.iou_scores[0, 0].float()
    order = torch.argsort(scores, descending=True).tolist()
    masks = [(logits[i] > 0).cpu().numpy().astype(np.float32) for i in order]
    return Masks(masks, [float(scores[i]) for i in order])
