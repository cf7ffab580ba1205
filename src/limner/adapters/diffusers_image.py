"""Family ``diffusers-image``: text-to-image, image-to-image and inpainting with diffusers.

One loaded pipeline serves all three tasks (``AutoPipelineFor*.from_pipe`` shares the
components), so FLUX text-to-image and FLUX inpainting entries cost one copy of the weights.

Steps: 1. load (resolve the source, from_pretrained, place on the device)
       2. check (inputs this pipeline cannot take)  3. prepare (one row per output image)
       4. call (one forward pass over up to max_batch_size rows: encoding the prompt,
          denoising with progress and stop, decoding)  5. encode (PNG/WebP/JPEG)
"""

from __future__ import annotations

import inspect
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any

import torch
from diffusers import (
    AutoPipelineForImage2Image,
    AutoPipelineForInpainting,
    AutoPipelineForText2Image,
    DiffusionPipeline,
)
from PIL import Image, ImageOps

from limner.adapters import reuse_steps
from limner.adapters.base import Chunk, FamilyAdapter, JobOutput, LoadedModel, LoadEnv, RunContext, WorkItem
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
from limner.adapters.lora_slots import LoraSlots, applied
from limner.adapters.previews import PreviewDecoder, load_decoder, publish_previews
from limner.cache.approximate import ResumePlan
from limner.catalog.entry import CatalogEntry
from limner.errors import InvalidInput, ModelUnavailable
from limner.media.images import encode_image, open_image
from limner.progress import Stage
from limner.tasks.image import ImageGenerationInput, ImageToImageInput, InpaintingInput

TASK_PIPELINES: dict[str, Any] = {
    "text-to-image": AutoPipelineForText2Image,
    "image-to-image": AutoPipelineForImage2Image,
    "inpainting": AutoPipelineForInpainting,
}


@dataclass
class Pipelines:
    base: Any
    by_task: dict[str, Any] = field(default_factory=dict)
    loras: LoraSlots | None = None  # the LoRAs loaded onto base (its components serve every task)
    previews: PreviewDecoder | None = None  # step previews (a tiny autoencoder or a linear map)

    def for_task(self, task: str) -> Any:
        if task not in self.by_task:
            pipe = self.base if task == "text-to-image" and _is_text2image(self.base) else None
            self.by_task[task] = pipe or TASK_PIPELINES[task].from_pipe(self.base)
            self.by_task[task].set_progress_bar_config(disable=True)
        return self.by_task[task]


@dataclass(frozen=True)
class Row:
    """One output image: how to make it."""

    prompt: str
    negative_prompt: str | None
    seed: int
    image: Image.Image | None
    mask: Image.Image | None
    job_id: str = ""
    plan: ResumePlan | None = None  # start from a cached latent (approximate caching)


class DiffusersImageAdapter(FamilyAdapter[ImageGenerationInput, Row, Image.Image]):
    # -- 1. load ---------------------------------------------------------------------------

    def load(self, entry: CatalogEntry, env: LoadEnv) -> LoadedModel:
        # Levers the hardware cannot pull are refused before any weights are fetched.
        dtype = resolve_dtype(entry.runtime.dtype, env.device)
        require_quantization_support(entry, env.device)
        path, revision = resolve_source(entry, env, download=_download)
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
            revision += "+ip-adapter-" + attach_ip_adapter(pipe, entry, env)
        place(pipe, entry, env.device)
        pipe.set_progress_bar_config(disable=True)
        size = pipeline_bytes(pipe)
        slots = LoraSlots(pipe, size, entry.runtime.max_loaded_loras, entry.runtime.lora_hotswap_rank)
        handle = Pipelines(base=pipe, loras=slots, previews=load_decoder(entry, env, dtype))
        return LoadedModel(handle=handle, revision=revision, size_bytes=size, device=env.device)

    def shed_lora(self, model: LoadedModel) -> bool:
        """Unload one idle LoRA (the residency asks, to stay under its memory budget)."""
        pipes: Pipelines | None = model.handle
        return bool(pipes is not None and pipes.loras is not None and pipes.loras.shed(model))

    def unload(self, model: LoadedModel) -> None:
        pipes: Pipelines = model.handle
        if hasattr(pipes.base, "remove_all_hooks"):
            pipes.base.remove_all_hooks()
        pipes.by_task.clear()
        model.handle = None
        release(model.device)

    # -- 2. check ----------------------------------------------------------------------------

    def check(self, model: LoadedModel, entry: CatalogEntry, item: WorkItem[ImageGenerationInput]) -> None:
        if item.input.negative_prompt and "negative_prompt" not in accepted(model.handle.for_task(entry.task)):
            raise InvalidInput(f"{entry.id} does not take a negative_prompt", loc=("body", "negative_prompt"))

    # -- 3. prepare --------------------------------------------------------------------------

    def prepare(
        self, model: LoadedModel, entry: CatalogEntry, items: list[WorkItem[ImageGenerationInput]], ctx: RunContext
    ) -> list[list[Row]]:
        pipe = model.handle.for_task(entry.task)
        return [
            rows_of(item, reuse_steps.plan_for(ctx, pipe, item.job_id, entry.task, item.input.num_outputs))
            for item in items
        ]

    def call_key(self, row: Row) -> Hashable:
        return reuse_steps.call_key(row.job_id, row.plan)

    # -- 4. call -----------------------------------------------------------------------------

    def call(
        self, model: LoadedModel, entry: CatalogEntry, chunk: Chunk[ImageGenerationInput, Row]
    ) -> list[Image.Image]:
        """One forward pass over the chunk's rows (their shared parameters, plus IP-Adapter
        arguments: a batch shares its reference image), reporting every step."""
        pipe = model.handle.for_task(entry.task)
        taken = accepted(pipe)
        spec, rows = chunk.input, chunk.rows
        if model.handle.loras is not None:  # the batch's LoRAs (all its jobs name the same ones)
            model.handle.loras.apply(spec.loras, chunk.items[0].files, model)
        kwargs: dict[str, Any] = {
            "prompt": [r.prompt for r in rows],
            "num_inference_steps": spec.num_inference_steps,
            "guidance_scale": spec.guidance_scale,
            "num_images_per_prompt": 1,
            "output_type": "pil",
            # One generator per image: an image depends on its own seed, not on its batch.
            "generator": [torch.Generator(device="cpu").manual_seed(r.seed) for r in rows],
        }
        kwargs.update(entry.call_args)
        kwargs.update(ip_adapter_call_args(pipe, entry, chunk.items[0]))
        width, height = spec.output_size()
        if "width" in taken:
            kwargs["width"], kwargs["height"] = width, height
        if any(r.negative_prompt for r in rows):
            kwargs["negative_prompt"] = [r.negative_prompt or "" for r in rows]
        if isinstance(spec, ImageToImageInput):
            kwargs["image"] = [r.image for r in rows]
            kwargs["strength"] = spec.strength
        if isinstance(spec, InpaintingInput):
            kwargs["mask_image"] = [r.mask for r in rows]

        keeper = reuse_steps.StepKeeper(
            reuse_steps.reuse_of(chunk.ctx), [r.job_id for r in rows], spec.num_inference_steps, rows[0].plan
        )
        if keeper.plan is not None:  # steps K+1..N from the cached latent, not N from noise
            kwargs.pop("num_inference_steps")
            kwargs.update(keeper.arguments(pipe))

        # The pipeline encodes the prompt, then denoises (reporting each step), then decodes the
        # latents; the step callback marks where one phase ends and the next begins.
        def on_step(p: Any, step: int, _timestep: Any, tensors: dict[str, Any]) -> dict[str, Any]:
            total = int(getattr(p, "num_timesteps", 0) or spec.num_inference_steps)
            if step == 0:
                chunk.ctx.stage(Stage.DENOISING)
            chunk.step(step + 1, total)
            if model.handle.previews is not None:
                publish_previews(model.handle.previews, pipe, entry, chunk, step + 1, total, tensors, (width, height))
            if step + 1 >= total:
                chunk.ctx.stage(Stage.DECODING)
            return tensors

        if "callback_on_step_end" in taken:
            kwargs["callback_on_step_end"] = keeper.callback(on_step)
        chunk.ctx.stage(Stage.ENCODING_PROMPT)
        with torch.inference_mode():
            result = pipe(**{k: v for k, v in kwargs.items() if k in taken})
        keeper.save()
        images: list[Image.Image] = list(result.images)
        return images

    # -- 5. encode ---------------------------------------------------------------------------

    def encode(
        self,
        model: LoadedModel,
        entry: CatalogEntry,
        item: WorkItem[ImageGenerationInput],
        results: list[Image.Image],
        ctx: RunContext,
    ) -> JobOutput:
        extra = reuse_steps.cache_record(ctx, item.job_id)
        if item.input.loras:
            extra = {**extra, "loras": [applied(w) for w in item.input.loras]}
        files = {"images": [encode_image(image, item.input.output_format) for image in results]}
        return JobOutput(files=files, extra=extra)


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


def accepted(pipe: Any) -> set[str]:
    """The keyword arguments the pipeline's call takes."""
    return set(inspect.signature(pipe.__call__).parameters)


def rows_of(item: WorkItem[ImageGenerationInput], plan: ResumePlan | None = None) -> list[Row]:
    """One row per output image (seeds seed, seed+1, ...), with the input image and mask at
    the output size for image-to-image and inpainting."""
    spec = item.input
    size = spec.output_size()
    image = (
        open_image(item.files["image"]).resize(size, Image.Resampling.LANCZOS)
        if isinstance(spec, ImageToImageInput)
        else None
    )
    mask = (
        open_image(item.files["mask_image"], "L").resize(size, Image.Resampling.NEAREST)
        if isinstance(spec, InpaintingInput)
        else None
    )
    if mask is not None and isinstance(spec, InpaintingInput) and spec.invert_mask:
        mask = ImageOps.invert(mask)
    seed = spec.chosen_seed()
    return [
        Row(spec.prompt, spec.negative_prompt, seed + k, image, mask, item.job_id, plan)
        for k in range(spec.num_outputs)
    ]
