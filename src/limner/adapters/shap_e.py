"""Family ``shap-e``: text to 3D (``ShapEPipeline``) and image to 3D (``ShapEImg2ImgPipeline``).

The pipeline is run to its latents (``output_type="latent"``); the mesh is then decoded with
the pipeline's own renderer (``shap_e_renderer.decode_to_mesh``, exactly what
``output_type="mesh"`` calls) so that the request's ``mesh_resolution`` reaches the
marching-cubes grid, which the pipeline call fixes at 128. Shap-E's meshes are Z-up; the files
are turned Y-up, glTF's convention, so viewers show them standing. Vertex colours come from the
renderer's colour head.

Shap-E pipelines take no step callback, so progress and stopping hook the one per-step
iterator they do have: ``progress_bar`` (see ``_StepReporter``).

Steps: 1. load (the task's pipeline class, from_pretrained, place)  2. check (nothing beyond
       the schema)  3. prepare (prompt or image, seeded generator)  4. run (denoising with
       progress and stop, then mesh decoding)  5. encode (GLB/PLY + turntable MP4)
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import torch
import trimesh
from diffusers import ShapEImg2ImgPipeline, ShapEPipeline

from limner.adapters.base import JobOutput, LoadedModel, LoadEnv, RunContext, WorkItem
from limner.adapters.diffusers_loading import load_pipeline, loaded, unload_pipeline
from limner.adapters.loading import quiet_runtimes
from limner.adapters.video_steps import Stopped, generator
from limner.catalog.entry import CatalogEntry
from limner.errors import ModelError
from limner.media.images import MediaFile, open_image
from limner.media.mesh import TURNTABLE_FPS, encode_mesh, render_turntable
from limner.media.video import encode_video

TASK_PIPELINES: dict[str, Any] = {"text-to-3d": ShapEPipeline, "image-to-3d": ShapEImg2ImgPipeline}
Z_UP_TO_Y_UP = trimesh.transformations.rotation_matrix(-np.pi / 2, [1, 0, 0])


class ShapEAdapter:
    # -- 1. load ---------------------------------------------------------------------------

    def load(self, entry: CatalogEntry, env: LoadEnv) -> LoadedModel:
        pipe, revision = load_pipeline(TASK_PIPELINES[entry.task], entry, env)
        return loaded(pipe, revision, env)

    def unload(self, model: LoadedModel) -> None:
        unload_pipeline(model)

    # -- 2. to 5. ------------------------------------------------------------------------------

    def run(self, model: LoadedModel, entry: CatalogEntry, items: list[WorkItem], ctx: RunContext) -> list[JobOutput]:
        pipe = model.handle
        outputs: list[JobOutput] = []
        for index, item in enumerate(items):
            if ctx.is_canceled(item.job_id):
                outputs.append(JobOutput(files={}))
                continue
            latents = denoise(pipe, entry, item, ctx, index, len(items))
            if latents is None or ctx.is_canceled(item.job_id):
                outputs.append(JobOutput(files={}))
                continue
            ctx.stage("decoding")
            mesh = decode(pipe, entry, latents, item.input["mesh_resolution"], model.device)
            ctx.log(f"decoded a mesh of {len(mesh.vertices)} vertices and {len(mesh.faces)} faces")
            ctx.stage("encoding media")
            outputs.append(JobOutput(files=encode(mesh, item.input)))
        return outputs


def make_adapter() -> ShapEAdapter:
    quiet_runtimes()
    return ShapEAdapter()


# -- preparing and running ----------------------------------------------------------------------


def denoise(pipe: Any, entry: CatalogEntry, item: WorkItem, ctx: RunContext, index: int, count: int) -> Any:
    """The job's latents (1, embeddings, width), or None when the batch was stopped."""
    spec = item.input
    kwargs: dict[str, Any] = {
        "num_inference_steps": spec["num_inference_steps"],
        "guidance_scale": spec["guidance_scale"],
        "generator": generator(spec["seed"]),
        **entry.call_args,
        "output_type": "latent",
    }
    if entry.task == "image-to-3d":
        kwargs["image"] = open_image(item.files["image"])
    else:
        kwargs["prompt"] = spec["prompt"]
    ctx.stage("denoising")
    pipe.progress_bar = _StepReporter(ctx, index, count)
    try:
        with torch.inference_mode():
            return pipe(**kwargs).images
    except Stopped:
        return None
    finally:
        del pipe.progress_bar  # back to the class's own


class _StepReporter:
    """Stands in for ``DiffusionPipeline.progress_bar``: reports each finished step and raises
    Stopped before the next one when no job of the batch still wants its output."""

    def __init__(self, ctx: RunContext, index: int, count: int) -> None:
        self.ctx, self.index, self.count = ctx, index, count

    def __call__(self, iterable: Iterable[Any] | None = None, total: int | None = None) -> Iterator[Any]:
        steps = list(iterable) if iterable is not None else []
        for step, value in enumerate(steps):
            if self.ctx.should_stop():
                raise Stopped
            yield value
            self.ctx.step(self.index * len(steps) + step + 1, self.count * len(steps))


def decode(pipe: Any, entry: CatalogEntry, latents: Any, resolution: int, device: str) -> trimesh.Trimesh:
    """Marching cubes over the renderer's signed distance field, with vertex colours, Y-up."""
    with torch.inference_mode():
        raw = pipe.shap_e_renderer.decode_to_mesh(latents[0][None], device, grid_size=resolution)
    faces = raw.faces.detach().cpu().numpy()
    if not len(faces):
        raise ModelError(f"{entry.id} produced an empty mesh: its field crosses zero nowhere in the volume")
    vertices = raw.verts.detach().cpu().float().numpy()
    rgb = torch.stack([raw.vertex_channels[c] for c in ("R", "G", "B")], dim=1).detach().cpu().float().numpy()
    rgba = np.concatenate([np.clip(rgb * 255.0, 0, 255), np.full((len(rgb), 1), 255.0)], axis=1).astype(np.uint8)
    mesh = trimesh.Trimesh(vertices=vertices, faces=faces, vertex_colors=rgba, process=False)
    mesh.apply_transform(Z_UP_TO_Y_UP)
    return mesh


def encode(mesh: trimesh.Trimesh, spec: dict[str, Any]) -> dict[str, list[MediaFile]]:
    files: dict[str, list[MediaFile]] = {"meshes": [encode_mesh(mesh, fmt) for fmt in spec["output_formats"]]}
    if spec["preview"]:
        frames = render_turntable(mesh, spec["preview_frames"], spec["preview_size"])
        files["previews"] = [encode_video(frames, TURNTABLE_FPS)]
    return files
