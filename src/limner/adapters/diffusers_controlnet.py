"""Family ``diffusers-controlnet``: text-to-image steered by a control map (ControlNet).

An entry names a base pipeline (``source``) and ControlNet weights (``runtime.controlnet``);
``AutoPipelineForText2Image.from_pretrained(base, controlnet=…)`` picks the matching pipeline
(Stable Diffusion, SDXL, SD3 or FLUX ControlNet) and ``diffusers.AutoModel`` the ControlNet
class from its config. ``control_image`` is a picture turned into the map the ControlNet was
trained on (``runtime.control_type``: canny, depth, pose; see control_maps), or the map itself
with ``control_preprocess: false``. The map used is returned as ``control_maps``. An entry with
``runtime.ip_adapter`` also takes a reference image.

Steps: 1. load (base + ControlNet + IP-Adapter, place)  2. check (a control image is required)
       3. prepare (the control map, one row per output image)  4. run (chunks, progress, cancel)
       5. encode (images and the control map)
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

import torch
from diffusers import AutoModel, AutoPipelineForText2Image, DiffusionPipeline
from PIL import Image

from limner import progress
from limner.adapters.base import JobOutput, LoadedModel, LoadEnv, RunContext, WorkItem
from limner.adapters.control_maps import ControlMaps
from limner.adapters.ip_adapter import attach_ip_adapter, ip_adapter_call_args
from limner.adapters.loading import pipeline_bytes, place, quiet_runtimes, release, resolve_dtype, resolve_source
from limner.catalog.entry import CatalogEntry
from limner.errors import InvalidInput, ModelUnavailable
from limner.media.images import encode_image, open_image

DEFAULT_CONTROL_SCALE = 1.0


@dataclass
class ControlledPipeline:
    pipe: Any
    maps: ControlMaps


class DiffusersControlNetAdapter:
    # -- 1. load ---------------------------------------------------------------------------

    def load(self, entry: CatalogEntry, env: LoadEnv) -> LoadedModel:
        if not entry.runtime.controlnet:
            raise ModelUnavailable(f"{entry.id}: a diffusers-controlnet entry needs runtime.controlnet (its weights)")
        path, revision = resolve_source(entry, env.models_dir, download=_download)
        shadow = entry.model_copy(update={"source": entry.runtime.controlnet, "variant": None, "revision": None})
        controlnet_path, controlnet_revision = resolve_source(shadow, env.models_dir, marker="config.json")
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
            revision += "+ip-adapter-" + attach_ip_adapter(pipe, entry, env.models_dir)
        place(pipe, entry, env.device)
        pipe.set_progress_bar_config(disable=True)
        handle = ControlledPipeline(pipe, ControlMaps(entry, env.models_dir))
        return LoadedModel(handle=handle, revision=revision, size_bytes=pipeline_bytes(pipe), device=env.device)

    def unload(self, model: LoadedModel) -> None:
        handle: ControlledPipeline = model.handle
        if hasattr(handle.pipe, "remove_all_hooks"):
            handle.pipe.remove_all_hooks()
        handle.maps.close()
        model.handle = None
        release(model.device)

    # -- 2. to 5. run a batch -----------------------------------------------------------------

    def run(self, model: LoadedModel, entry: CatalogEntry, items: list[WorkItem], ctx: RunContext) -> list[JobOutput]:
        handle: ControlledPipeline = model.handle
        pipe = handle.pipe
        accepted = set(inspect.signature(pipe.__call__).parameters)
        check(entry, items, accepted)
        # control_image, control_preprocess and control_scale are batch fields: one map per batch.
        spec = items[0].input
        ctx.stage("making the control map")
        control = control_map(handle.maps, items[0], (spec["width"], spec["height"]))
        extra = ip_adapter_call_args(pipe, entry, items[0])
        rows = [
            (index, item.input["seed"] + k)
            for index, item in enumerate(items)
            for k in range(item.input["num_outputs"])
        ]
        chunk = max(1, entry.runtime.max_batch_size)
        chunks = [rows[i : i + chunk] for i in range(0, len(rows), chunk)]
        images: list[Image.Image | None] = []
        ctx.stage(progress.DENOISING)
        for number, part in enumerate(chunks):
            if all(ctx.is_canceled(items[i].job_id) for i, _ in part):
                images.extend([None] * len(part))
                continue
            images.extend(call(pipe, entry, items, part, control, extra, accepted, ctx, (number, len(chunks))))
        ctx.stage(progress.ENCODING_MEDIA)
        outputs = [JobOutput(files={"images": [], "control_maps": [encode_image(control, "png")]}) for _ in items]
        for (index, _seed), image in zip(rows, images, strict=True):
            if image is not None and not ctx.is_canceled(items[index].job_id):
                outputs[index].files["images"].append(encode_image(image, items[index].input["output_format"]))
        return outputs


def make_adapter() -> DiffusersControlNetAdapter:
    quiet_runtimes()
    return DiffusersControlNetAdapter()


def _download(repo: str, revision: str | None, variant: str | None) -> str:
    folder: str = DiffusionPipeline.download(repo, revision=revision, variant=variant)
    return folder


# -- checking and preparing ------------------------------------------------------------------


def check(entry: CatalogEntry, items: list[WorkItem], accepted: set[str]) -> None:
    for item in items:
        if "control_image" not in item.files:
            raise InvalidInput(f"{entry.id} needs a control_image", loc=("body", "control_image"))
        if item.input.get("negative_prompt") and "negative_prompt" not in accepted:
            raise InvalidInput(f"{entry.id} does not take a negative_prompt", loc=("body", "negative_prompt"))


def control_map(maps: ControlMaps, item: WorkItem, size: tuple[int, int]) -> Image.Image:
    """The control map at the output size: made from the picture, or given as is."""
    picture = open_image(item.files["control_image"], "RGB")
    if item.input.get("control_preprocess") is not False:
        picture = maps.make(picture)
    return picture.resize(size, Image.Resampling.BILINEAR) if picture.size != size else picture


# -- running ---------------------------------------------------------------------------------


def call(
    pipe: Any,
    entry: CatalogEntry,
    items: list[WorkItem],
    rows: list[tuple[int, int]],
    control: Image.Image,
    extra: dict[str, Any],
    accepted: set[str],
    ctx: RunContext,
    position: tuple[int, int],
) -> list[Image.Image]:
    """One forward pass over ``rows`` (item index, seed), reporting every step."""
    spec = items[rows[0][0]].input
    scale = spec.get("control_scale")
    kwargs: dict[str, Any] = {
        "prompt": [items[i].input["prompt"] for i, _ in rows],
        "num_inference_steps": spec["num_inference_steps"],
        "guidance_scale": spec["guidance_scale"],
        "width": spec["width"],
        "height": spec["height"],
        "num_images_per_prompt": 1,
        "output_type": "pil",
        "generator": [torch.Generator(device="cpu").manual_seed(seed) for _, seed in rows],
        "controlnet_conditioning_scale": DEFAULT_CONTROL_SCALE if scale is None else scale,
        # SD/SDXL pipelines call the map ``image``; FLUX and SD3 ControlNet pipelines ``control_image``.
        ("control_image" if "control_image" in accepted else "image"): control,
        **entry.call_args,
        **extra,
    }
    if any(items[i].input.get("negative_prompt") for i, _ in rows):
        kwargs["negative_prompt"] = [items[i].input.get("negative_prompt") or "" for i, _ in rows]
    chunk, chunks = position

    def on_step(p: Any, step: int, _timestep: Any, tensors: dict[str, Any]) -> dict[str, Any]:
        total = int(getattr(p, "num_timesteps", 0) or spec["num_inference_steps"])
        ctx.step(chunk * total + step + 1, chunks * total)
        if ctx.should_stop():
            p._interrupt = True
        return tensors

    if "callback_on_step_end" in accepted:
        kwargs["callback_on_step_end"] = on_step
    with torch.inference_mode():
        result = pipe(**{k: v for k, v in kwargs.items() if k in accepted})
    images: list[Image.Image] = list(result.images)
    return images
