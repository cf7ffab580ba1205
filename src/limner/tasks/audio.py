"""Audio generation: text-to-audio (music and sound effects).

One schema for MusicGen, Stable Audio Open and whatever comes next: swapping a music model for
a sound-effects model changes the model id, not the client's code. Fields a family cannot honour
(MusicGen has no negative prompt and no denoising steps; only MusicGen Melody takes a melody)
are listed in its catalog entry's ``unsupported`` and refused with a 422.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from limner.tasks.base import MAX_SEED, Limits, TaskInput, check_prompts, filled, over

AudioFormat = Literal["wav", "flac", "mp3"]


class AudioOutput(TaskInput):
    """How audio outputs are written: shared by text-to-audio and text-to-speech."""

    output_format: AudioFormat = Field(
        default="wav", description="wav or flac (16-bit PCM), or mp3 where the server has an MP3 encoder."
    )
    sample_rate: int | None = Field(
        default=None,
        ge=8000,
        le=192000,
        description="Resample the output to this rate in Hz; the model's own rate when absent.",
    )

    def check_output(self) -> None:
        # Imported here: the media module loads libsndfile only when an MP3 is asked for.
        from limner.media.audio import check_output_format

        check_output_format(self.output_format, self.sample_rate)


class TextToAudioInput(AudioOutput):
    per_item_fields: ClassVar[frozenset[str]] = frozenset(
        {"prompt", "negative_prompt", "seed", "num_outputs", "output_format", "sample_rate", "melody"}
    )
    file_fields: ClassVar[dict[str, str]] = {"melody": "audio"}
    limit_fields: ClassVar[frozenset[str]] = frozenset(
        {"max_prompt_chars", "max_duration_s", "max_steps", "max_outputs", "max_guidance_scale"}
    )

    prompt: str = Field(min_length=1, description="The music or sound to make.")
    negative_prompt: str | None = Field(default=None, description="What to avoid (diffusion models).")
    duration_s: float = Field(default=10.0, gt=0, description="Length of each output in seconds.")
    num_inference_steps: int | None = Field(
        default=None, ge=1, description="Denoising steps (diffusion models); the model's default when absent."
    )
    guidance_scale: float = Field(default=3.0, ge=0, description="Classifier-free guidance (1 or less: none).")
    seed: int | None = Field(
        default=None,
        ge=0,
        le=MAX_SEED,
        description="Same model, input and seed give the same audio. Chosen at random and reported when absent.",
    )
    num_outputs: int = Field(default=1, ge=1, description="Outputs to generate (seeds seed, seed+1, …).")
    melody: str | None = Field(
        default=None,
        description="A melody to follow (MusicGen Melody): WAV, FLAC, OGG or MP3 as a data: URI, or a URL of "
        "a file this server holds.",
    )

    @classmethod
    def schema_limits(cls, limits: Limits) -> dict[str, dict[str, object]]:
        return {
            "prompt": {"maxLength": limits.max_prompt_chars},
            "negative_prompt": {"maxLength": limits.max_prompt_chars},
            "duration_s": {"maximum": limits.max_duration_s},
            "num_inference_steps": {"maximum": limits.max_steps},
            "num_outputs": {"maximum": limits.max_outputs},
            "guidance_scale": {"maximum": limits.max_guidance_scale},
        }

    def check_limits(self, limits: Limits) -> None:
        check_prompts(self, limits)
        if self.duration_s > limits.max_duration_s:
            raise over("duration_s", self.duration_s, "max_duration_s", limits.max_duration_s)
        if self.num_inference_steps is not None and self.num_inference_steps > limits.max_steps:
            raise over("num_inference_steps", self.num_inference_steps, "max_steps", limits.max_steps)
        if self.num_outputs > limits.max_outputs:
            raise over("num_outputs", self.num_outputs, "max_outputs", limits.max_outputs)
        if self.guidance_scale > limits.max_guidance_scale:
            raise over("guidance_scale", self.guidance_scale, "max_guidance_scale", limits.max_guidance_scale)
        self.check_output()

    def chosen_seed(self) -> int:
        """The seed: the request's, or the one the API chose before storing the job."""
        return int(filled(self, "seed"))
