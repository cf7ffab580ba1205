"""3D generation tasks: text-to-3d and image-to-3d.

Outputs are meshes (GLB and/or PLY, listed under ``meshes``) plus, on request, a turntable
preview video under ``previews``. One schema per task, shared by every 3D model.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, field_validator

from limner.tasks.base import MAX_SEED, Limits, TaskInput, filled, over

MeshFormat = Literal["glb", "ply"]
MESH_FORMATS: tuple[MeshFormat, ...] = ("glb", "ply")


class _MeshGeneration(TaskInput):
    limit_fields: ClassVar[frozenset[str]] = frozenset(
        {"max_prompt_chars", "max_steps", "max_guidance_scale", "max_mesh_resolution", "max_frames", "max_preview_size"}
    )
    per_item_fields: ClassVar[frozenset[str]] = frozenset(
        {"prompt", "seed", "output_formats", "preview", "preview_frames", "preview_size"}
    )

    num_inference_steps: int = Field(default=64, ge=1, description="Denoising steps.")
    guidance_scale: float = Field(default=15.0, ge=0, description="Classifier-free guidance.")
    seed: int | None = Field(
        default=None,
        ge=0,
        le=MAX_SEED,
        description="Same model, input and seed give the same mesh. Chosen at random and reported when absent.",
    )
    mesh_resolution: int = Field(
        default=128,
        ge=8,
        le=1024,
        description="Marching-cubes grid per side: finer meshes, slower decoding (time grows with its cube).",
    )
    output_formats: list[MeshFormat] = Field(
        default_factory=lambda: list(MESH_FORMATS),
        min_length=1,
        description="Mesh files to write: glb (binary glTF, Y up) and/or ply; both carry vertex colours.",
    )
    preview: bool = Field(default=True, description="Also render a turntable MP4 of the mesh (under previews).")
    preview_frames: int = Field(default=24, ge=2, description="Frames of the turntable (one full turn, 12 fps).")
    preview_size: int = Field(default=256, ge=16, multiple_of=16, description="Turntable width and height in pixels.")

    @field_validator("output_formats")
    @classmethod
    def _distinct(cls, formats: list[str]) -> list[str]:
        if len(set(formats)) != len(formats):
            raise ValueError("output_formats lists a format twice")
        return formats

    @classmethod
    def schema_limits(cls, limits: Limits) -> dict[str, dict[str, object]]:
        return {
            "prompt": {"maxLength": limits.max_prompt_chars},
            "num_inference_steps": {"maximum": limits.max_steps},
            "guidance_scale": {"maximum": limits.max_guidance_scale},
            "mesh_resolution": {"maximum": limits.max_mesh_resolution},
            "preview_frames": {"maximum": limits.max_frames},
            "preview_size": {"maximum": limits.max_preview_size},
        }

    def check_limits(self, limits: Limits) -> None:
        prompt: str | None = getattr(self, "prompt", None)
        if prompt and len(prompt) > limits.max_prompt_chars:
            raise over("prompt", f"<{len(prompt)} characters>", "max_prompt_chars", limits.max_prompt_chars)
        for name, value, limit_name, limit in (
            ("num_inference_steps", self.num_inference_steps, "max_steps", limits.max_steps),
            ("guidance_scale", self.guidance_scale, "max_guidance_scale", limits.max_guidance_scale),
            ("mesh_resolution", self.mesh_resolution, "max_mesh_resolution", limits.max_mesh_resolution),
            ("preview_frames", self.preview_frames, "max_frames", limits.max_frames),
            ("preview_size", self.preview_size, "max_preview_size", limits.max_preview_size),
        ):
            if value > limit:
                raise over(name, value, limit_name, limit)

    def chosen_seed(self) -> int:
        """The seed: the request's, or the one the API chose before storing the job."""
        return int(filled(self, "seed"))


class TextTo3DInput(_MeshGeneration):
    prompt: str = Field(min_length=1, description="The object to make.")


class ImageTo3DInput(_MeshGeneration):
    per_item_fields: ClassVar[frozenset[str]] = _MeshGeneration.per_item_fields | {"image"}
    file_fields: ClassVar[dict[str, str]] = {"image": "image"}

    image: str = Field(
        description="A picture of the object (ideally alone on a plain background): a data: URI, or a URL of a "
        "file this server holds."
    )
