"""The ``lora-training`` task: a LoRA (DreamBooth-style) fine-tune of a base model, as a job.

In the spirit of fal's trainers: ``images`` (a zip by URL or upload, or a list of images with
optional captions), a ``trigger_word``, steps, rank, learning rate, resolution, style or
subject, prior preservation with class images, validation prompts, checkpoints and early
stopping. The API turns ``images`` into a list of stored images with their captions before the
job is queued (``limner.intake.training``), so a worker never opens a zip or reaches the network.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from limner.errors import InvalidInput
from limner.tasks.base import MAX_SEED, Limits, TaskInput, filled, over

# The default caption of an image without one (``{trigger}`` is the trigger word).
SUBJECT_CAPTION = "a photo of {trigger}"
STYLE_CAPTION = "an image in the style of {trigger}"
DEFAULT_TRIGGER = "sks"


class TrainingImage(BaseModel):
    """One training image and, optionally, its caption."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = Field(min_length=1, description="A data: URI, an upload's URL, or an http(s) URL.")
    caption: str | None = Field(default=None, max_length=2000, description="What the image shows.")


class EarlyStopping(BaseModel):
    """Stop before ``steps`` when a held-back loss stops improving, or when the loss diverges."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    patience: int = Field(
        default=3, ge=1, le=1000, description="Evaluations of the held-back loss without improvement before stopping."
    )
    min_delta: float = Field(default=0.0, ge=0, description="The least decrease of the held-back loss that counts.")
    eval_every: int | None = Field(
        default=None, ge=1, description="Steps between evaluations of the held-back loss (default: checkpoint_every)."
    )
    divergence: float | None = Field(
        default=5.0,
        gt=1,
        description="Stop when the training loss (a moving average) rises past this many times its lowest value.",
    )


class LoraTrainingInput(TaskInput):
    limit_fields: ClassVar[frozenset[str]] = frozenset(
        {
            "max_prompt_chars",
            "max_steps",
            "max_images",
            "max_rank",
            "max_resolution",
            "max_class_images",
            "max_validation_prompts",
            "size_multiple",
            "max_input_bytes",
            "max_input_pixels",
            "max_archive_bytes",
        }
    )

    images: str | list[TrainingImage | str] = Field(
        description="A zip of images (data: URI, an upload's URL or an http(s) URL; captions from name.txt beside "
        "name.png), or a list of images (URLs or {url, caption}).",
    )
    trigger_word: str | None = Field(
        default=None,
        min_length=1,
        max_length=100,
        description="The token that calls up the subject or style; added to captions that lack it.",
    )
    steps: int = Field(default=1000, ge=1, description="Training steps (one image, plus a class image, per step).")
    rank: int = Field(default=16, ge=1, description="LoRA rank: 16-32 is usually enough for a style, 64+ for faces.")
    learning_rate: float = Field(default=1e-4, gt=0, le=1, description="AdamW learning rate of the LoRA weights.")
    resolution: int = Field(default=512, ge=16, description="Images are resized and center-cropped to this square.")
    is_style: bool = Field(
        default=False, description="A style rather than a subject: default captions say so; no prior preservation."
    )
    prior_preservation: bool = Field(
        default=False, description="DreamBooth's prior preservation: also train on class images the base model makes."
    )
    class_prompt: str | None = Field(
        default=None, max_length=2000, description="What the class images show (e.g. 'a photo of a dog')."
    )
    num_class_images: int = Field(default=0, ge=0, description="Class images to make for prior preservation.")
    prior_loss_weight: float = Field(default=1.0, gt=0, le=10, description="Weight of the class images' loss.")
    validation_prompts: list[str] = Field(
        default_factory=list, description="Prompts drawn at each checkpoint (with the trigger word, if you write it)."
    )
    checkpoint_every: int | None = Field(
        default=None,
        ge=1,
        description="Steps between checkpoints (default: a tenth of steps). A job resumes from its last.",
    )
    early_stopping: EarlyStopping | None = Field(default=None, description="Stop early (see its fields).")
    seed: int | None = Field(
        default=None, ge=0, le=MAX_SEED, description="Same images, settings and seed give the same LoRA."
    )

    @classmethod
    def schema_limits(cls, limits: Limits) -> dict[str, dict[str, object]]:
        return {
            "steps": {"maximum": limits.max_steps},
            "rank": {"maximum": limits.max_rank},
            "resolution": {"maximum": limits.max_resolution, "multipleOf": limits.size_multiple},
            "num_class_images": {"maximum": limits.max_class_images},
            "validation_prompts": {"maxItems": limits.max_validation_prompts},
            "class_prompt": {"maxLength": limits.max_prompt_chars},
        }

    def check_limits(self, limits: Limits) -> None:
        if self.steps > limits.max_steps:
            raise over("steps", self.steps, "max_steps", limits.max_steps)
        if self.rank > limits.max_rank:
            raise over("rank", self.rank, "max_rank", limits.max_rank)
        if self.resolution > limits.max_resolution:
            raise over("resolution", self.resolution, "max_resolution", limits.max_resolution)
        if self.resolution % limits.size_multiple:
            raise over("resolution", self.resolution, "size_multiple (a multiple of)", limits.size_multiple)
        if isinstance(self.images, list) and len(self.images) > limits.max_images:
            raise over("images", f"<{len(self.images)} images>", "max_images", limits.max_images)
        if isinstance(self.images, list) and not self.images:
            raise InvalidInput("images is empty: give at least one image", loc=("body", "images"))
        if self.num_class_images > limits.max_class_images:
            raise over("num_class_images", self.num_class_images, "max_class_images", limits.max_class_images)
        if len(self.validation_prompts) > limits.max_validation_prompts:
            raise over(
                "validation_prompts",
                f"<{len(self.validation_prompts)} prompts>",
                "max_validation_prompts",
                limits.max_validation_prompts,
            )
        for index, prompt in enumerate(self.validation_prompts):
            if len(prompt) > limits.max_prompt_chars:
                raise over(
                    f"validation_prompts.{index}",
                    f"<{len(prompt)} characters>",
                    "max_prompt_chars",
                    limits.max_prompt_chars,
                )
        if self.class_prompt and len(self.class_prompt) > limits.max_prompt_chars:
            raise over(
                "class_prompt", f"<{len(self.class_prompt)} characters>", "max_prompt_chars", limits.max_prompt_chars
            )
        self._check_prior()

    def _check_prior(self) -> None:
        if not self.prior_preservation:
            return
        if self.is_style:
            raise InvalidInput(
                "prior_preservation keeps a subject's class from drifting; a style (is_style) has no class",
                loc=("body", "prior_preservation"),
            )
        if not self.class_prompt:
            raise InvalidInput("prior_preservation needs a class_prompt", loc=("body", "class_prompt"))
        if self.num_class_images < 1:
            raise InvalidInput(
                "prior_preservation needs num_class_images of 1 or more", loc=("body", "num_class_images")
            )

    @classmethod
    def stored_refs(cls, fields: Mapping[str, Any]) -> dict[str, str]:
        """Each stored training image as ``images.<index>``."""
        images = fields.get("images")
        if not isinstance(images, list):
            return {}
        return {f"images.{i}": str(image["url"]) for i, image in enumerate(images) if isinstance(image, dict)}

    # -- what a stored job always has -------------------------------------------------------

    def chosen_seed(self) -> int:
        return int(filled(self, "seed"))

    def stored_images(self) -> list[TrainingImage]:
        """The images as the API stored them: each a ``storage://`` reference with its caption."""
        if isinstance(self.images, str) or any(not isinstance(i, TrainingImage) for i in self.images):
            raise InvalidInput(
                "images is not resolved: this input was not finalized by the API", loc=("body", "images")
            )
        return [i for i in self.images if isinstance(i, TrainingImage)]

    def trigger(self) -> str:
        return self.trigger_word or DEFAULT_TRIGGER

    def caption_for(self, image: TrainingImage) -> str:
        """The image's caption with the trigger word in it, or the default caption."""
        trigger = self.trigger()
        if not image.caption:
            return (STYLE_CAPTION if self.is_style else SUBJECT_CAPTION).format(trigger=trigger)
        if self.trigger_word and self.trigger_word not in image.caption:
            return f"{self.trigger_word}, {image.caption}"
        return image.caption

    def checkpoint_interval(self) -> int:
        return self.checkpoint_every or max(1, -(-self.steps // 10))
