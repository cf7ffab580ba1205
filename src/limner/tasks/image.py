"""Image generation tasks: text-to-image, image-to-image and inpainting.

One schema per task, shared by every model of that task: swapping FLUX for SDXL changes the
model id, not the client's code.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

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

ImageFormat = Literal["png", "webp", "jpeg"]

# Conditioning that only some families honour; the others refuse these fields (422) through
# Family.unsupported_fields / gated_fields, so no catalog entry has to list them by hand.
CONTROL_FIELDS: frozenset[str] = frozenset({"control_image", "control_preprocess", "control_scale"})
IP_ADAPTER_FIELDS: frozenset[str] = frozenset({"ip_adapter_image", "ip_adapter_scale"})
LORA_FIELDS: frozenset[str] = frozenset({"loras"})
# A registered LoRA's id (GET /v1/loras): what a training job's result names.
LORA_ID_PATTERN = r"^lora_[a-z0-9]{8,40}$"
SHA256_PATTERN = r"^[0-9a-f]{64}$"


class LoraWeight(BaseModel):
    """One LoRA to apply, fal's shape: ``{path, scale}``. The API resolves ``path`` when it takes
    the request (a registered id to its current file, a URL fetched under the SSRF guard) and
    writes what it resolved to into ``sha256``, ``file`` and ``revision``, so the stored job
    names exactly the weights it ran with (and its cache key changes with them)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str = Field(
        min_length=1,
        max_length=4096,
        description="A registered LoRA id (lora_…, see GET /v1/loras) or an http(s) URL of a .safetensors file. "
        "Never a local path.",
    )
    scale: float = Field(default=1.0, ge=-4, le=4, description="The LoRA's weight (0 = no effect).")
    sha256: str | None = Field(default=None, pattern=SHA256_PATTERN, description="Set by the server.")
    file: str | None = Field(default=None, description="Set by the server: the stored copy the worker loads.")
    revision: int | None = Field(default=None, ge=1, description="Set by the server: a registered LoRA's revision.")


class _Generation(TaskInput):
    """Fields every diffusion image task shares."""

    per_item_fields: ClassVar[frozenset[str]] = frozenset(
        {"prompt", "negative_prompt", "seed", "num_outputs", "output_format", "preview"}
    )
    file_fields: ClassVar[dict[str, str]] = {"control_image": "image", "ip_adapter_image": "image"}
    limit_fields: ClassVar[frozenset[str]] = SIZE_LIMITS | {
        "max_prompt_chars",
        "max_steps",
        "max_outputs",
        "max_guidance_scale",
        "max_loras",
        "max_lora_bytes",
    }

    prompt: str = Field(min_length=1, description="What to draw.")
    negative_prompt: str | None = Field(
        default=None, description="What to avoid (models with classifier-free guidance)."
    )
    num_inference_steps: int = Field(default=28, ge=1, description="Denoising steps.")
    guidance_scale: float = Field(default=3.5, ge=0, description="Classifier-free (or distilled) guidance.")
    seed: int | None = Field(
        default=None,
        ge=0,
        le=MAX_SEED,
        description="Same model, input and seed give the same image. Chosen at random and reported when absent.",
    )
    num_outputs: int = Field(default=1, ge=1, description="Images to generate (seeds seed, seed+1, …).")
    output_format: ImageFormat = Field(default="png", description="png, webp (lossless) or jpeg.")
    control_image: str | None = Field(
        default=None,
        description="ControlNet models: the picture that guides the layout (data: URI or a URL this server holds).",
    )
    control_preprocess: bool | None = Field(
        default=None,
        description="true (default): turn control_image into the model's control map (canny edges, depth, pose) "
        "first; false: control_image already is such a map.",
    )
    control_scale: float | None = Field(
        default=None, ge=0, le=2, description="ControlNet models: how strongly the control map steers (default 1)."
    )
    ip_adapter_image: str | None = Field(
        default=None, description="IP-Adapter models: a reference image whose content and style the output follows."
    )
    ip_adapter_scale: float | None = Field(
        default=None, ge=0, le=2, description="IP-Adapter models: how strongly the reference image steers."
    )
    preview: bool | None = Field(
        default=None,
        description="Step previews while denoising (progress.preview_url): true turns them on (every "
        "runtime.preview_every steps, or 4), false off; absent: the model's default.",
    )
    enhance_prompt: bool | str | None = Field(
        default=None,
        description="Rewrite the prompt with an enhance model first: true (the default one) or a "
        "prompt-enhancement model id. The result's prompt_used is the prompt the image was made from.",
    )
    loras: list[LoraWeight] = Field(
        default_factory=list,
        max_length=16,
        description="LoRAs to apply, each {path, scale}: a registered LoRA id or a URL of a .safetensors file. "
        "Jobs share a batch only with jobs that apply the same LoRAs.",
    )

    @classmethod
    def schema_limits(cls, limits: Limits) -> dict[str, dict[str, object]]:
        return {
            "prompt": {"maxLength": limits.max_prompt_chars},
            "negative_prompt": {"maxLength": limits.max_prompt_chars},
            **size_schema(limits),
            "num_inference_steps": {"maximum": limits.max_steps},
            "num_outputs": {"maximum": limits.max_outputs},
            "guidance_scale": {"maximum": limits.max_guidance_scale},
            "loras": {"maxItems": limits.max_loras},
        }

    def check_limits(self, limits: Limits) -> None:
        check_prompts(self, limits)
        check_size(getattr(self, "width", None), getattr(self, "height", None), limits)
        if self.num_inference_steps > limits.max_steps:
            raise over("num_inference_steps", self.num_inference_steps, "max_steps", limits.max_steps)
        if self.num_outputs > limits.max_outputs:
            raise over("num_outputs", self.num_outputs, "max_outputs", limits.max_outputs)
        if self.guidance_scale > limits.max_guidance_scale:
            raise over("guidance_scale", self.guidance_scale, "max_guidance_scale", limits.max_guidance_scale)
        if len(self.loras) > limits.max_loras:
            raise over("loras", f"<{len(self.loras)} LoRAs>", "max_loras", limits.max_loras)

    @classmethod
    def stored_refs(cls, fields: Mapping[str, Any]) -> dict[str, str]:
        """File fields, plus each LoRA's stored copy as ``lora:<sha256>``."""
        out = super().stored_refs(fields)
        for weight in fields.get("loras") or ():
            if isinstance(weight, dict) and weight.get("file") and weight.get("sha256"):
                out[f"lora:{weight['sha256']}"] = str(weight["file"])
        return out

    def chosen_seed(self) -> int:
        """The seed: the request's, or the one the API chose before storing the job."""
        return int(filled(self, "seed"))

    def output_size(self) -> tuple[int, int]:
        """``(width, height)``: the request's, or the input image's (the API fills it in)."""
        return int(filled(self, "width")), int(filled(self, "height"))


class TextToImageInput(_Generation):
    width: int = Field(default=1024, ge=1, description="Output width in pixels.")
    height: int = Field(default=1024, ge=1, description="Output height in pixels.")


class ImageToImageInput(_Generation):
    per_item_fields: ClassVar[frozenset[str]] = _Generation.per_item_fields | {"image"}
    file_fields: ClassVar[dict[str, str]] = {**_Generation.file_fields, "image": "image"}

    image: str = Field(description="The starting image: a data: URI, or a URL of a file this server holds.")
    strength: float = Field(
        default=0.8, gt=0, le=1, description="How far from the input image to move (1 = ignore it)."
    )
    width: int | None = Field(
        default=None, ge=1, description="Output width; the input image's width (down to size_multiple) when absent."
    )
    height: int | None = Field(
        default=None, ge=1, description="Output height; the input image's height (down to size_multiple) when absent."
    )


class InpaintingInput(ImageToImageInput):
    per_item_fields: ClassVar[frozenset[str]] = ImageToImageInput.per_item_fields | {"mask_image", "invert_mask"}
    file_fields: ClassVar[dict[str, str]] = {**ImageToImageInput.file_fields, "mask_image": "mask"}

    mask_image: str = Field(description="White where the image is repainted, black where it is kept.")
    invert_mask: bool = Field(
        default=False,
        description="true: repaint where the mask is black and keep what is white (e.g. a product's mask "
        "from background removal: the scene around it is made new).",
    )
    strength: float = Field(default=1.0, gt=0, le=1, description="How much of the masked area to repaint.")


# The input of any image generation task (what the diffusers image families take).
ImageGenerationInput = TextToImageInput | ImageToImageInput | InpaintingInput
