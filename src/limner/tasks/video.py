"""Video generation tasks: text-to-video and image-to-video.

One schema per task, shared by every model of that task (Wan, CogVideoX, Stable Video
Diffusion, AnimateDiff, …). A model that cannot honour a field lists it in its catalog entry's
``unsupported`` and the request is refused: nothing is silently ignored. Frame counts, frame
rates, sizes and durations are bounded per model by the catalog ``limits``.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from limner.errors import LimitExceeded
from limner.tasks.base import (
    MAX_SEED,
    SIZE_LIMITS,
    Limits,
    TaskInput,
    check_prompts,
    check_size,
    filled,
    over,
    size_schema,
)

VideoFormat = Literal["mp4"]


class _VideoGeneration(TaskInput):
    """Fields every video task shares."""

    per_item_fields: ClassVar[frozenset[str]] = frozenset({"prompt", "negative_prompt", "seed", "output_format"})
    limit_fields: ClassVar[frozenset[str]] = SIZE_LIMITS | {
        "max_prompt_chars",
        "min_frames",
        "max_frames",
        "frames_multiple",
        "max_fps",
        "max_duration_s",
        "max_steps",
        "max_guidance_scale",
    }

    negative_prompt: str | None = Field(
        default=None, description="What to avoid (models with classifier-free guidance)."
    )
    num_frames: int = Field(default=49, ge=1, description="Frames in the video (see limits.frames_multiple).")
    fps: int = Field(
        default=16,
        ge=1,
        description="Frames per second of the file; models that are conditioned on a frame rate (SVD) get it too.",
    )
    num_inference_steps: int = Field(default=50, ge=1, description="Denoising steps.")
    guidance_scale: float = Field(
        default=5.0, ge=0, description="Classifier-free guidance (for SVD: the guidance reached at the last frame)."
    )
    seed: int | None = Field(
        default=None,
        ge=0,
        le=MAX_SEED,
        description="Same model, input and seed give the same video. Chosen at random and reported when absent.",
    )
    output_format: VideoFormat = Field(default="mp4", description="mp4 (H.264, yuv420p).")

    @classmethod
    def schema_limits(cls, limits: Limits) -> dict[str, dict[str, object]]:
        return {
            "prompt": {"maxLength": limits.max_prompt_chars},
            "negative_prompt": {"maxLength": limits.max_prompt_chars},
            **size_schema(limits),
            "num_frames": {"minimum": limits.min_frames, "maximum": limits.max_frames},
            "fps": {"maximum": limits.max_fps},
            "num_inference_steps": {"maximum": limits.max_steps},
            "guidance_scale": {"maximum": limits.max_guidance_scale},
        }

    def check_limits(self, limits: Limits) -> None:
        check_prompts(self, limits)
        check_size(getattr(self, "width", None), getattr(self, "height", None), limits)
        self._check_frames(limits)
        if self.num_inference_steps > limits.max_steps:
            raise over("num_inference_steps", self.num_inference_steps, "max_steps", limits.max_steps)
        if self.guidance_scale > limits.max_guidance_scale:
            raise over("guidance_scale", self.guidance_scale, "max_guidance_scale", limits.max_guidance_scale)

    def _check_frames(self, limits: Limits) -> None:
        if self.num_frames > limits.max_frames:
            raise over("num_frames", self.num_frames, "max_frames", limits.max_frames)
        if self.num_frames < limits.min_frames:
            raise over("num_frames", self.num_frames, "min_frames", limits.min_frames, under=True)
        if (self.num_frames - 1) % limits.frames_multiple:
            raise LimitExceeded(
                f"num_frames={self.num_frames} must be 1 more than a multiple of {limits.frames_multiple} "
                "(limits.frames_multiple)",
                loc=("body", "num_frames"),
            )
        if self.fps > limits.max_fps:
            raise over("fps", self.fps, "max_fps", limits.max_fps)
        duration = self.num_frames / self.fps
        if duration > limits.max_duration_s:
            raise LimitExceeded(
                f"num_frames / fps = {duration:.2f} s is over this model's limit of {limits.max_duration_s} s "
                "(limits.max_duration_s)",
                loc=("body", "num_frames"),
            )

    def chosen_seed(self) -> int:
        """The seed: the request's, or the one the API chose before storing the job."""
        return int(filled(self, "seed"))

    def output_size(self) -> tuple[int, int]:
        """``(width, height)``: the request's, or the input image's (the API fills it in)."""
        return int(filled(self, "width")), int(filled(self, "height"))


class TextToVideoInput(_VideoGeneration):
    prompt: str = Field(min_length=1, description="What happens in the video.")
    width: int = Field(default=832, ge=1, description="Frame width in pixels.")
    height: int = Field(default=480, ge=1, description="Frame height in pixels.")


class ImageToVideoInput(_VideoGeneration):
    per_item_fields: ClassVar[frozenset[str]] = _VideoGeneration.per_item_fields | {"image"}
    file_fields: ClassVar[dict[str, str]] = {"image": "image"}

    image: str = Field(
        description="The first frame: a data: URI, or a URL of a file this server holds. It is scaled and "
        "centre-cropped to width x height."
    )
    prompt: str | None = Field(
        default=None, description="What happens in the video (models that take text; optional for them)."
    )
    width: int | None = Field(
        default=None,
        ge=1,
        description="Frame width; the model's default, else the input image's width (down to size_multiple).",
    )
    height: int | None = Field(
        default=None,
        ge=1,
        description="Frame height; the model's default, else the input image's height (down to size_multiple).",
    )
    motion_bucket_id: int | None = Field(
        default=None,
        ge=0,
        le=1023,
        description="How much motion (Stable Video Diffusion; higher moves more). The model's default when absent.",
    )
    noise_aug_strength: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="Noise added to the first frame (Stable Video Diffusion; higher strays further from it).",
    )
