"""What every task schema shares: the input base class, limits, and the task spec."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from limner.errors import InvalidInput, LimitExceeded

MAX_SEED = 2**32 - 1


class Limits(BaseModel):
    """Per-model limits; a catalog entry narrows these defaults.

    Requests over a limit get a 422 that names the field and the limit.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_prompt_chars: int = Field(default=2000, ge=1)
    min_width: int = Field(default=64, ge=1)
    min_height: int = Field(default=64, ge=1)
    max_width: int = Field(default=2048, ge=1)
    max_height: int = Field(default=2048, ge=1)
    max_pixels: int = Field(default=2048 * 2048, ge=1)
    size_multiple: int = Field(default=8, ge=1)
    max_steps: int = Field(default=100, ge=1)
    max_outputs: int = Field(default=4, ge=1)
    max_guidance_scale: float = Field(default=50.0, ge=0)
    max_input_bytes: int = Field(default=20 * 1024 * 1024, ge=1)
    max_input_pixels: int = Field(default=4096 * 4096, ge=1)
    # Audio and speech. A model's own ceiling goes in its catalog entry (Stable Audio Open: 47 s).
    max_duration_s: float = Field(
        default=300.0, gt=0, description="Longest output in seconds: audio, or video (num_frames / fps)."
    )
    max_input_audio_s: float = Field(default=600.0, gt=0, description="Longest input audio (e.g. a melody).")
    max_text_chars: int = Field(default=5000, ge=1, description="Longest text to speak.")
    voices: tuple[str, ...] = Field(default=(), description="The voice names a speech model knows (empty: any).")
    # Video (and the turntable previews of 3D outputs).
    min_frames: int = Field(default=1, ge=1, description="Fewest frames a video may have.")
    max_frames: int = Field(default=257, ge=1, description="Most frames a video may have.")
    frames_multiple: int = Field(
        default=1,
        ge=1,
        description="num_frames - 1 must be a multiple of this (4 for VAEs that compress time 4x, e.g. Wan).",
    )
    max_fps: int = Field(default=60, ge=1, description="Highest frame rate.")
    # 3D.
    max_mesh_resolution: int = Field(default=256, ge=8, description="Finest marching-cubes grid (per side).")
    max_preview_size: int = Field(default=512, ge=16, description="Largest turntable preview (pixels per side).")
    # upscale: the largest output/input factor, and tile edges (input pixels) a request may ask for.
    max_scale: int = Field(default=4, ge=1)
    min_tile_size: int = Field(default=32, ge=1)
    max_tile_size: int = Field(default=1024, ge=1)
    # segmentation prompts: at most this many points per request.
    max_points: int = Field(default=16, ge=1)
    # LoRA training (max_steps bounds its training steps) and LoRAs at inference.
    max_images: int = Field(default=50, ge=1, description="Most training images a LoRA training job may take.")
    max_rank: int = Field(default=64, ge=1, description="Highest LoRA rank a training job may ask for.")
    max_resolution: int = Field(default=1024, ge=16, description="Largest training resolution (pixels per side).")
    max_class_images: int = Field(default=200, ge=0, description="Most prior-preservation class images.")
    max_validation_prompts: int = Field(default=4, ge=0, description="Most validation prompts per checkpoint.")
    max_archive_bytes: int = Field(
        default=200 * 1024 * 1024, ge=1, description="Largest uncompressed size of a zip of training images."
    )
    max_loras: int = Field(default=4, ge=0, description="Most LoRAs one image request may apply at once.")
    max_lora_bytes: int = Field(default=512 * 1024 * 1024, ge=1, description="Largest LoRA file a request may name.")
    # Text generation and image-to-text (tokens of the model's own tokenizer).
    max_input_tokens: int = Field(default=4096, ge=1, description="Longest prompt, chat template included (tokens).")
    max_output_tokens: int = Field(default=1024, ge=1, description="Most tokens one request may generate.")


# The limits a file input of each kind is checked against (bytes, and pixels or duration).
FILE_LIMITS: dict[str, frozenset[str]] = {
    "image": frozenset({"max_input_bytes", "max_input_pixels"}),
    "mask": frozenset({"max_input_bytes", "max_input_pixels"}),
    "audio": frozenset({"max_input_bytes", "max_input_audio_s"}),
    # A zip of training images: its bytes, its images (pixels each) and its uncompressed size.
    "archive": frozenset({"max_input_bytes", "max_input_pixels", "max_images", "max_archive_bytes"}),
}
SIZE_LIMITS = frozenset({"min_width", "min_height", "max_width", "max_height", "max_pixels", "size_multiple"})


class TaskInput(BaseModel):
    """Base of every task's input. Unknown fields are refused, never ignored."""

    model_config = ConfigDict(extra="forbid")

    # Fields that may differ between jobs that share one batch.
    per_item_fields: ClassVar[frozenset[str]] = frozenset()
    # Fields that hold files, by kind ("image", "mask", "audio"): data URIs or URLs on the way
    # in, storage references once the API has checked and stored them.
    file_fields: ClassVar[dict[str, str]] = {}
    # The Limits this task's checks read (file-input limits follow from file_fields): what
    # /v1/models shows for a model of the task, and nothing else.
    limit_fields: ClassVar[frozenset[str]] = frozenset()
    # Values that make a bare input valid where one of several fields is needed (a text
    # prompt or messages): the catalog checks an entry's defaults with them filled in.
    catalog_placeholders: ClassVar[dict[str, Any]] = {}

    @classmethod
    def limit_names(cls, refused: Iterable[str] = ()) -> tuple[str, ...]:
        """Every limit that applies to this task, in Limits' own order; file-input limits only
        for file fields a model accepts (not in ``refused``)."""
        names = set(cls.limit_fields)
        skip = set(refused)
        for field, kind in cls.file_fields.items():
            if field not in skip:
                names |= FILE_LIMITS.get(kind, frozenset())
        return tuple(name for name in Limits.model_fields if name in names)

    def check_limits(self, limits: Limits) -> None:
        """Raise LimitExceeded naming the first field over one of ``limits``."""

    @classmethod
    def stored_refs(cls, fields: Mapping[str, Any]) -> dict[str, str]:
        """The stored files a stored input names, by the name an adapter reads them under
        (``item.files[name]``): its file fields, and what a task adds (training images, LoRAs)."""
        out: dict[str, str] = {}
        for name in cls.file_fields:
            value = fields.get(name)
            if isinstance(value, str):
                out[name] = value
        return out

    @classmethod
    def schema_limits(cls, limits: Limits) -> dict[str, dict[str, object]]:
        """JSON Schema keywords (maximum, maxLength, …) that show ``limits`` on this task's fields."""
        return {}

    def batch_fields(self) -> dict[str, Any]:
        """The values that must be equal for two jobs to run in one batch."""
        return {k: v for k, v in self.model_dump().items() if k not in self.per_item_fields}


def filled(model: BaseModel, name: str) -> Any:
    """A field of a stored job's input that the API always fills in before storing it: the
    seed it chose (catalog.inputs.finalize_input), a size taken from the input image."""
    value = getattr(model, name, None)
    if value is None:
        raise InvalidInput(f"{name} is not set: this input was not finalized by the API", loc=("body", name))
    return value


def over(field: str, value: object, limit_name: str, limit: object, *, under: bool = False) -> LimitExceeded:
    """A LimitExceeded that says which field, which value and which limit."""
    relation = "under this model's minimum of" if under else "over this model's limit of"
    return LimitExceeded(f"{field}={value!r} is {relation} {limit!r} (limits.{limit_name})", loc=("body", field))


def check_prompts(model: BaseModel, limits: Limits) -> None:
    """``prompt`` and ``negative_prompt`` (where the schema has them) against max_prompt_chars."""
    for name in ("prompt", "negative_prompt"):
        text: str | None = getattr(model, name, None)
        if text and len(text) > limits.max_prompt_chars:
            raise over(name, f"<{len(text)} characters>", "max_prompt_chars", limits.max_prompt_chars)


def size_schema(limits: Limits) -> dict[str, dict[str, object]]:
    """The JSON Schema keywords of a size's ``width`` and ``height`` under these limits."""
    return {
        "width": {"minimum": limits.min_width, "maximum": limits.max_width, "multipleOf": limits.size_multiple},
        "height": {"minimum": limits.min_height, "maximum": limits.max_height, "multipleOf": limits.size_multiple},
    }


def check_size(width: int | None, height: int | None, limits: Limits) -> None:
    """A picture's or a video frame's size against the model's limits (absent sides pass)."""
    for name, value, low, high in (
        ("width", width, limits.min_width, limits.max_width),
        ("height", height, limits.min_height, limits.max_height),
    ):
        if value is None:
            continue
        if value > high:
            raise over(name, value, f"max_{name}", high)
        if value < low:
            raise over(name, value, f"min_{name}", low, under=True)
        if value % limits.size_multiple:
            raise LimitExceeded(
                f"{name}={value} must be a multiple of {limits.size_multiple} (limits.size_multiple)",
                loc=("body", name),
            )
    if width is not None and height is not None and width * height > limits.max_pixels:
        raise over("width", f"{width}x{height}", "max_pixels", limits.max_pixels)


# Fields every result has, whatever its task (see the worker's result).
RESULT_FIELDS: frozenset[str] = frozenset({"seed", "timings", "model", "input", "usage", "cache", "batch_size"})


@dataclass(frozen=True)
class TaskSpec:
    """A task id bound to its input schema, the key its outputs are listed under, and every
    key its results may carry (what a workflow step may reference)."""

    id: str
    input_model: type[TaskInput]
    output_key: str
    title: str
    extra_outputs: tuple[str, ...] = ()

    @property
    def result_keys(self) -> frozenset[str]:
        return RESULT_FIELDS | {self.output_key, *self.extra_outputs}
