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
       the schema)  3. prepare (prompt or image, seeded generator)  4. call (denoising with
       progress and stop, then mesh decoding; one job per call)  5. encode (GLB/PLY + turntable MP4)
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import torch
import trimesh
from diffusers import ShapEImg2ImgPipeline, ShapEPipeline

from limner.adapters.base import Chunk, FamilyAdapter, JobOutput, LoadedModel, LoadEnv, RunContext, WorkItem
from limner.adapters.diffusers_loading import load_pipeline, loaded, unload_pipeline
from limner.adapters.loading import quiet_runtimes
from limner.adapters.video_steps import generator
from limner.catalog.entry import CatalogEntry
from limner.errors import ModelError
from limner.media.images import MediaFile, open_image
from limner.media.mesh import TURNTABLE_FPS, encode_mesh, render_turntable
from limner.media.video import encode_video
from limner.progress import Stage
from limner.tasks.mesh import ImageTo3DInput, TextTo3DInput

TASK_PIPELINES: dict[str, Any] = {"text-to-3d": ShapEPipeline, "image-to-3d": ShapEImg2ImgPipeline}
Z_UP_TO_Y_UP = trimesh.transformations.rotation_matrix(-np.pi / 2, [1, 0, 0])
MeshInput = TextTo3DInput | ImageTo3DInput


class ShapEAdapter(FamilyAdapter[MeshInput, dict[str, Any], trimesh.Trimesh]):
    rows_per_call = 1

    # -- 1. load ---------------------------------------------------------------------------

    def load(self, entry: CatalogEntry, env: LoadEnv) -> LoadedModel:
        pipe, revision = load_pipeline(TASK_PIPELINES[entry.task], entry, env)
        return loaded(pipe, revision, env)

    def unload(self, model: LoadedModel) -> None:
        unload_pipeline(model)

    # -- 3. prepare: the call's arguments ----------------------------------------------------

    def prepare(
        self, model: LoadedModel, entry: CatalogEntry, items: list[WorkItem[MeshInput]], ctx: RunContext
    ) -> list[list[dict[str, Any]]]:
        return [[call_args(entry, item)] for item in items]

    # -- 4. call: denoising, then decoding the mesh --------------------------------------------

    def call(
        self, model: LoadedModel, entry: CatalogEntry, chunk: Chunk[MeshInput, dict[str, Any]]
    ) -> list[trimesh.Trimesh]:
        pipe = model.handle
        chunk.ctx.stage(Stage.DENOISING)
        pipe.progress_bar = _StepReporter(chunk)
        try:
            with torch.inference_mode():
                latents = pipe(**chunk.rows[0]).images
        finally:
            del pipe.progress_bar  # back to the class's own
        chunk.ctx.stage(Stage.DECODING)
        mesh = decode(pipe, entry, latents, chunk.input.mesh_resolution, model.device)
        chunk.ctx.log(f"decoded a mesh of {len(mesh.vertices)} vertices and {len(mesh.faces)} faces")
        return [mesh]

    # -- 5. encode ---------------------------------------------------------------------------

    def encode(
        self,
        model: LoadedModel,
        entry: CatalogEntry,
        item: WorkItem[MeshInput],
        results: list[trimesh.Trimesh],
        ctx: RunContext,
    ) -> JobOutput:
        return JobOutput(files=encode(results[0], item.input))


def make_adapter() -> ShapEAdapter:
    quiet_runtimes()
    return ShapEAdapter()


# -- preparing and running ----------------------------------------------------------------------


def call_args(entry: CatalogEntry, item: WorkItem[MeshInput]) -> dict[str, Any]:
    """The pipeline's arguments for one job, run to its latents (1, embeddings, width)."""
    spec = item.input
    kwargs: dict[str, Any] = {
        "num_inference_steps": spec.num_inference_steps,
        "guidance_scale": spec.guidance_scale,
        "generator": generator(spec.chosen_seed()),
        **entry.call_args,
        "output_type": "latent",
    }
    if isinstance(spec, ImageTo3DInput):
        kwargs["image"] = open_image(item.files["image"])
    else:
        kwargs["prompt"] = spec.prompt
    return kwargs


class _StepReporter:
    """Stands in for ``DiffusionPipeline.progress_bar``: reports each finished step, which
    raises Stopped when no job of the call still wants its output."""

    def __init__(self, chunk: Chunk[MeshInput, dict[str, Any]]) -> None:
        self.chunk = chunk

    def __call__(self, iterable: Iterable[Any] | None = None, total: int | None = None) -> Iterator[Any]:
        steps = list(iterable) if iterable is not None else []
        for step, value in enumerate(steps):
            yield value
            self.chunk.step(step + 1, len(steps))


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


def encode(mesh: trimesh.Trimesh, spec: MeshInput) -> dict[str, list[MediaFile]]:
    files: dict[str, list[MediaFile]] = {"meshes": [encode_mesh(mesh, fmt) for fmt in spec.output_formats]}
    if spec.preview:
        frames = render_turntable(mesh, spec.preview_frames, spec.preview_size)
        files["previews"] = [encode_video(frames, TURNTABLE_FPS)]
    return files
