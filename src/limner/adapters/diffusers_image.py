"""Family ``diffusers-image``: text-to-image, image-to-image and inpainting with diffusers.

One loaded pipeline serves all three tasks (``AutoPipelineFor*.from_pipe`` shares the
components), so FLUX text-to-image and FLUX inpainting entries cost one copy of the weights.

Steps: 1. load (resolve the source, from_pretrained, place on the device)
       2. check (inputs this pipeline cannot take)  3. prepare (one row per output image)
       4. run (in chunks of max_batch_size, with progress and cancel)  5. encode (PNG/WebP/JPEG)
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any

import torch
from diffusers import (
    AutoPipelineForImage2Image,
    AutoPipelineForInpainting,
    AutoPipelineForText2Image,
    DiffusionPipeline,
)
from PIL import Image

from limner import progress
from limner.adapters.base import JobOutput, LoadedModel, LoadEnv, RunContext, WorkItem
from limner.adapters.ip_adapter import attach_ip_adapter, ip_adapter_call_args
from limner.adapters.loading import (
    diffusers_quantization,
    pipeline_bytes,
    place,
    quiet_runtimes,
    release,
    require_quantization_support,
    resolve_dtype,
    resolve_source,
)
from limner.catalog.entry import CatalogEntry
from limner.errors import InvalidInput, ModelUnavailable
from limner.media.images import encode_image, open_image

TASK_PIPELINES: dict[str, Any] = {
    "text-to-image": AutoPipelineForText2Image,
    "image-to-image": AutoPipelineForImage2Image,
    "inpainting": AutoPipelineForInpainting,
}


@dataclass
class Pipelines:
    base: Any
    by_task: dict[str, Any] = field(default_factory=dict)

    def for_task(self, task: str) -> Any:
        if task not in self.by_task:
            pipe = self.base if task == "text-to-image" and _is_text2image(self.base) else None
            self.by_task[task] = pipe or TASK_PIPELINES[task].from_pipe(self.base)
            self.by_task[task].set_progress_bar_config(disable=True)
        return self.by_task[task]


@dataclass(frozen=True)
class Row:
    """One output image: which item it belongs to and how to make it."""

    item: int
    prompt: str
    negative_prompt: str | None
    seed: int
    image: Image.Image | None
    mask: Image.Image | None


class DiffusersImageAdapter:
    # -- 1. load ---------------------------------------------------------------------------

    def load(self, entry: CatalogEntry, env: LoadEnv) -> LoadedModel:
        # Levers the hardware cannot pull are refused before any weights are fetched.
        dtype = resolve_dtype(entry.runtime.dtype, env.device)
        require_quantization_support(entry, env.device)
        path, revision = resolve_source(entry, env.models_dir, download=_download)
        kwargs: dict[str, Any] = {"dtype": dtype, "use_safetensors": True}  # never pickled weights
        if entry.variant:
            kwargs["variant"] = entry.variant
        quantization = diffusers_quantization(entry, path, dtype)
        if quantization is not None:
            kwargs["quantization_config"] = quantization
        try:
            pipe = DiffusionPipeline.from_pretrained(str(path), **kwargs)
        except (OSError, ValueError) as exc:
            raise ModelUnavailable(f"cannot load {entry.id} from {path}: {exc}") from exc
        if entry.runtime.ip_adapter:
            revision += "+ip-adapter-" + attach_ip_adapter(pipe, entry, env.models_dir)
        place(pipe, entry, env.device)
        pipe.set_progress_bar_config(disable=True)
        return LoadedModel(
            handle=Pipelines(base=pipe), revision=revision, size_bytes=pipeline_bytes(pipe), device=env.device
        )

    def unload(self, model: LoadedModel) -> None:
        pipes: Pipelines = model.handle
        if hasattr(pipes.base, "remove_all_hooks"):
            pipes.base.remove_all_hooks()
        pipes.by_task.clear()
        model.handle = None
        release(model.device)

    # -- 2. to 5. run a batch -----------------------------------------------------------------

    def run(self, model: LoadedModel, entry: CatalogEntry, items: list[WorkItem], ctx: RunContext) -> list[JobOutput]:
        pipe = model.handle.for_task(entry.task)
        accepted = set(inspect.signature(pipe.__call__).parameters)
        check(entry, items, accepted)
        rows = prepare(entry.task, items)
        chunk = max(1, entry.runtime.max_batch_size)
        chunks = [rows[i : i + chunk] for i in range(0, len(rows), chunk)]
        images: list[Image.Image | None] = []
        extra = ip_adapter_call_args(pipe, entry, items[0])  # a batch shares its reference image
        for index, part in enumerate(chunks):
            if all(ctx.is_canceled(items[r.item].job_id) for r in part):
                images.extend([None] * len(part))
                continue
            spec = items[part[0].item].input
            images.extend(call(pipe, entry, spec, part, accepted, ctx, index, len(chunks), extra))
        ctx.stage(progress.ENCODING_MEDIA)
        outputs = [JobOutput(files={"images": []}) for _ in items]
        for row, image in zip(rows, images, strict=True):
            if image is not None and not ctx.is_canceled(items[row.item].job_id):
                fmt = items[row.item].input.get("output_format", "png")
                outputs[row.item].files["images"].append(encode_image(image, fmt))
        return outputs


def make_adapter() -> DiffusersImageAdapter:
    quiet_runtimes()
    return DiffusersImageAdapter()


def _download(repo: str, revision: str | None, variant: str | None) -> str:
    """Only the files a diffusers pipeline needs (one weight variant, no duplicates)."""
    folder: str = DiffusionPipeline.download(repo, revision=revision, variant=variant)
    return folder


def _is_text2image(pipe: Any) -> bool:
    name = type(pipe).__name__
    return not any(part in name for part in ("Img2Img", "Inpaint", "Image2Image"))


# -- checking and preparing ------------------------------------------------------------------


def check(entry: CatalogEntry, items: list[WorkItem], accepted: set[str]) -> None:
    for item in items:
        if item.input.get("negative_prompt") and "negative_prompt" not in accepted:
            raise InvalidInput(f"{entry.id} does not take a negative_prompt", loc=("body", "negative_prompt"))


def prepare(task: str, items: list[WorkItem]) -> list[Row]:
    rows: list[Row] = []
    for index, item in enumerate(items):
        spec = item.input
        size = (spec["width"], spec["height"])
        image = (
            open_image(item.files["image"]).resize(size, Image.Resampling.LANCZOS) if task != "text-to-image" else None
        )
        mask = (
            open_image(item.files["mask_image"], "L").resize(size, Image.Resampling.NEAREST)
            if task == "inpainting"
            else None
        )
        for k in range(spec.get("num_outputs", 1)):
            rows.append(Row(index, spec["prompt"], spec.get("negative_prompt"), spec["seed"] + k, image, mask))
    return rows


# -- running ---------------------------------------------------------------------------------


def call(
    pipe: Any,
    entry: CatalogEntry,
    spec: dict[str, Any],
    rows: list[Row],
    accepted: set[str],
    ctx: RunContext,
    chunk: int,
    chunks: int,
    extra: dict[str, Any] | None = None,
) -> list[Image.Image]:
    """One forward pass over ``rows`` (same shared parameters, plus ``extra`` call arguments
    such as an IP-Adapter image), reporting every step."""
    kwargs: dict[str, Any] = {
        "prompt": [r.prompt for r in rows],
        "num_inference_steps": spec["num_inference_steps"],
        "guidance_scale": spec["guidance_scale"],
        "num_images_per_prompt": 1,
        "output_type": "pil",
        # One generator per image: an image depends on its own seed, not on its batch.
        "generator": [torch.Generator(device="cpu").manual_seed(r.seed) for r in rows],
    }
    kwargs.update(entry.call_args)
    kwargs.update(extra or {})
    if "width" in accepted:
        kwargs["width"], kwargs["height"] = spec["width"], spec["height"]
    if any(r.negative_prompt for r in rows):
        kwargs["negative_prompt"] = [r.negative_prompt or "" for r in rows]
    if entry.task != "text-to-image":
        kwargs["image"] = [r.image for r in rows]
        kwargs["strength"] = spec["strength"]
    if entry.task == "inpainting":
        kwargs["mask_image"] = [r.mask for r in rows]

    # The pipeline encodes the prompt, then denoises (reporting each step), then decodes the
    # latents; the step callback marks where one phase ends and the next begins.
    def on_step(p: Any, step: int, _timestep: Any, tensors: dict[str, Any]) -> dict[str, Any]:
        total = int(getattr(p, "num_timesteps", 0) or spec["num_inference_steps"])
        if step == 0:
            ctx.stage(progress.DENOISING)
        ctx.step(chunk * total + step + 1, chunks * total)
        if step + 1 >= total:
            ctx.stage(progress.DECODING)
        if ctx.should_stop():
            p._interrupt = True
        return tensors

    if "callback_on_step_end" in accepted:
        kwargs["callback_on_step_end"] = on_step
    ctx.stage(progress.ENCODING_PROMPT)
    with torch.inference_mode():
        result = pipe(**{k: v for k, v in kwargs.items() if k in accepted})
    images: list[Image.Image] = list(result.images)
    return images
