"""Family ``diffusers-controlnet``: text-to-image steered by a control map (ControlNet).

An entry names a base pipeline (``source``) and ControlNet weights (``runtime.controlnet``);
``AutoPipelineForText2Image.from_pretrained(base, controlnet=…)`` picks the matching pipeline
(Stable Diffusion, SDXL, SD3 or FLUX ControlNet) and ``diffusers.AutoModel`` the ControlNet
class from its config. ``control_image`` is a picture turned into the map the ControlNet was
trained on (``runtime.control_type``: canny, depth, pose; see control_maps), or the map itself
with ``control_preprocess: false``. The map used is returned as ``control_maps``. An entry with
``runtime.ip_adapter`` also takes a reference image.

Steps: 1. load (base + ControlNet + IP-Adapter, place)  2. check (a control image is required)
       3. prepare (the control map, one row per output image)  4. call (one forward pass over
       up to max_batch_size rows, with progress and stop)  5. encode (images and the control map)
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

import torch
from diffusers import AutoModel, AutoPipelineForText2Image, DiffusionPipeline
from PIL import Image

from limner.adapters.base import Chunk, FamilyAdapter, JobOutput, LoadedModel, LoadEnv, RunContext, WorkItem
from limner.adapters.control_maps import ControlMaps
from limner.adapters.ip_adapter import attach_ip_adapter, ip_adapter_call_args
from limner.adapters.loading import pipeline_bytes, place, quiet_runtimes, release, resolve_dtype, resolve_source
from limner.adapters.lora_slots import LoraSlots, applied
from limner.adapters.previews import PreviewDecoder, load_decoder, publish_previews
from limner.catalog.entry import CatalogEntry
from limner.errors import InvalidInput, ModelUnavailable
from limner.media.images import encode_image, open_image
from limner.progress import Stage
from limner.tasks.image import TextToImageInput

DEFAULT_CONTROL_SCALE = 1.0


@dataclass
class ControlledPipeline:
    pipe: Any
    maps: ControlMaps
    loras: LoraSlots | None = None
    previews: PreviewDecoder | None = None  # step previews (a tiny autoencoder or a linear map)


@dataclass(frozen=True)
class Row:
    """One output image: its prompt and seed, and the batch's control map."""

    prompt: str
    negative_prompt: str | None
    seed: int
    control: Image.Image


@dataclass(frozen=True)
class Drawn:
    """One image, and the control map that steered it."""

    image: Image.Image
    control: Image.Image


class DiffusersControlNetAdapter(FamilyAdapter[TextToImageInput, Row, Drawn]):
    stage = Stage.DENOISING

    # -- 1. load ---------------------------------------------------------------------------

    def load(self, entry: CatalogEntry, env: LoadEnv) -> LoadedModel:
        if not entry.runtime.controlnet:
            raise ModelUnavailable(f"{entry.id}: a diffusers-controlnet entry needs runtime.controlnet (its weights)")
        path, revision = resolve_source(entry, env, download=_download)
        shadow = entry.model_copy(update={"source": entry.runtime.controlnet, "variant": None, "revision": None})
        controlnet_path, controlnet_revision = resolve_source(shadow, env, marker="config.json")
        dtype = resolve_dtype(entry.runtime.dtype, env.device)
        kwargs: dict[str, Any] = {"dtype": dtype, "use_safetensors": True}  # never pickled weights
        if entry.variant:
            kwargs["variant"] = entry.variant
        try:
            controlnet = AutoModel.from_pretrained(str(controlnet_path), dtype=dtype, use_safetensors=True)
            pipe = AutoPipelineForText2Image.from_pretrained(str(path), controlnet=controlnet, **kwargs)
        except (OSError, ValueError) as exc:
            raise ModelUnavailable(f"cannot load {entry.id} from {path} + {controlnet_path}: {exc}") from exc
        revision = f"{revision}+controlnet-{controlnet_revision}"
        if entry.runtime.ip_adapter:
            revision += "+ip-adapter-" + attach_ip_adapter(pipe, entry, env)
        place(pipe, entry, env.device)
        pipe.set_progress_bar_config(disable=True)
        size = pipeline_bytes(pipe)
        slots = LoraSlots(pipe, size, entry.runtime.max_loaded_loras, entry.runtime.lora_hotswap_rank)
        handle = ControlledPipeline(pipe, ControlMaps(entry, env.models_dir), slots, load_decoder(entry, env, dtype))
        return LoadedModel(handle=handle, revision=revision, size_bytes=size, device=env.device)

    def shed_lora(self, model: LoadedModel) -> bool:
        """Unload one idle LoRA (the residency asks, to stay under its memory budget)."""
        handle: ControlledPipeline | None = model.handle
        return bool(handle is not None and handle.loras is not None and handle.loras.shed(model))

    def unload(self, model: LoadedModel) -> None:
        handle: ControlledPipeline = model.handle
        if hasattr(handle.pipe, "remove_all_hooks"):
            handle.pipe.remove_all_hooks()
        handle.maps.close()
        model.handle = None
        release(model.device)

    # -- 2. check ----------------------------------------------------------------------------

    def check(self, model: LoadedModel, entry: CatalogEntry, item: WorkItem[TextToImageInput]) -> None:
        if "control_image" not in item.files:
            raise InvalidInput(f"{entry.id} needs a control_image", loc=("body", "control_image"))
        if item.input.negative_prompt and "negative_prompt" not in accepted(model.handle.pipe):
            raise InvalidInput(f"{entry.id} does not take a negative_prompt", loc=("body", "negative_prompt"))

    # -- 3. prepare --------------------------------------------------------------------------

    def prepare(
        self, model: LoadedModel, entry: CatalogEntry, items: list[WorkItem[TextToImageInput]], ctx: RunContext
    ) -> list[list[Row]]:
        # control_image, control_preprocess and control_scale are batch fields: one map per batch.
        ctx.stage(Stage.MAKING_CONTROL_MAP)
        control = control_map(model.handle.maps, items[0])
        return [
            [
                Row(i.input.prompt, i.input.negative_prompt, i.input.chosen_seed() + k, control)
                for k in range(i.input.num_outputs)
            ]
            for i in items
        ]

    # -- 4. call -----------------------------------------------------------------------------

    def call(self, model: LoadedModel, entry: CatalogEntry, chunk: Chunk[TextToImageInput, Row]) -> list[Drawn]:
        """One forward pass over the chunk's rows, reporting every step."""
        pipe = model.handle.pipe
        if model.handle.loras is not None:  # the batch's LoRAs (all its jobs name the same ones)
            model.handle.loras.apply(chunk.input.loras, chunk.items[0].files, model)
        taken = accepted(pipe)
        spec, rows = chunk.input, chunk.rows
        control = rows[0].control
        width, height = spec.output_size()
        kwargs: dict[str, Any] = {
            "prompt": [r.prompt for r in rows],
            "num_inference_steps": spec.num_inference_steps,
            "guidance_scale": spec.guidance_scale,
            "width": width,
            "height": height,
            "num_images_per_prompt": 1,
            "output_type": "pil",
            "generator": [torch.Generator(device="cpu").manual_seed(r.seed) for r in rows],
            "controlnet_conditioning_scale": DEFAULT_CONTROL_SCALE
            if spec.control_scale is None
            else spec.control_scale,
            # SD/SDXL pipelines call the map ``image``; FLUX and SD3 ControlNet pipelines ``control_image``.
            ("control_image" if "control_image" in taken else "image"): control,
            **entry.call_args,
            **ip_adapter_call_args(pipe, entry, chunk.items[0]),
        }
        if any(r.negative_prompt for r in rows):
            kwargs["negative_prompt"] = [r.negative_prompt or "" for r in rows]

        def on_step(p: Any, step: int, _timestep: Any, tensors: dict[str, Any]) -> dict[str, Any]:
            total = int(getattr(p, "num_timesteps", 0) or spec.num_inference_steps)
            chunk.step(step + 1, total)
            if model.handle.previews is not None:
                publish_previews(model.handle.previews, pipe, entry, chunk, step + 1, total, tensors, (width, height))
            return tensors

        if "callback_on_step_end" in taken:
            kwargs["callback_on_step_end"] = on_step
        with torch.inference_mode():
            result = pipe(**{k: v for k, v in kwargs.items() if k in taken})
        return [Drawn(image, control) for image in result.images]

    # -- 5. encode ---------------------------------------------------------------------------

    def encode(
        self,
        model: LoadedModel,
        entry: CatalogEntry,
        item: WorkItem[TextToImageInput],
        results: list[Drawn],
        ctx: RunContext,
    ) -> JobOutput:
        images = [encode_image(drawn.image, item.input.output_format) for drawn in results]
        extra = {"loras": [applied(w) for w in item.input.loras]} if item.input.loras else {}
        files = {"images": images, "control_maps": [encode_image(results[0].control, "png")]}
        return JobOutput(files=files, extra=extra)


def make_adapter() -> DiffusersControlNetAdapter:
    quiet_runtimes()
    return DiffusersControlNetAdapter()


def _download(repo: str, revision: str | None, variant: str | None) -> str:
    folder: str = DiffusionPipeline.download(repo, revision=revision, variant=variant)
    return folder


def accepted(pipe: Any) -> set[str]:
    """The keyword arguments the pipeline's call takes."""
    return set(inspect.signature(pipe.__call__).parameters)


def control_map(maps: ControlMaps, item: WorkItem[TextToImageInput]) -> Image.Image:
    """The control map at the output size: made from the picture, or given as is."""
    size = item.input.output_size()
    picture = open_image(item.files["control_image"], "RGB")
    if item.input.control_preprocess is not False:
        picture = maps.make(picture)
    return picture.resize(size, Image.Resampling.BILINEAR) if picture.size != size else picture
