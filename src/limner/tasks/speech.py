"""Speech: text-to-speech.

One schema for every speech family (piper voices today; XTTS-class models that clone a voice
from a reference clip would add their file field here, shared by all). ``voice`` names are
model-specific: a catalog entry lists the ones its model knows in ``limits.voices``.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from limner.errors import LimitExceeded
from limner.tasks.audio import AudioOutput
from limner.tasks.base import Limits, over


class TextToSpeechInput(AudioOutput):
    per_item_fields: ClassVar[frozenset[str]] = frozenset({"text", "voice", "speed", "output_format", "sample_rate"})
    limit_fields: ClassVar[frozenset[str]] = frozenset({"max_text_chars", "voices"})

    text: str = Field(min_length=1, description="What to say. Sentences are spoken one after another.")
    voice: str | None = Field(
        default=None, description="Which voice (names in the model's limits.voices); the model's default when absent."
    )
    speed: float = Field(default=1.0, ge=0.25, le=4.0, description="Speaking rate: 2 is twice as fast as normal.")

    @classmethod
    def schema_limits(cls, limits: Limits) -> dict[str, dict[str, object]]:
        return {"text": {"maxLength": limits.max_text_chars}}

    def check_limits(self, limits: Limits) -> None:
        if len(self.text) > limits.max_text_chars:
            raise over("text", f"<{len(self.text)} characters>", "max_text_chars", limits.max_text_chars)
        if self.voice is not None and limits.voices and self.voice not in limits.voices:
            raise LimitExceeded(
                f"voice={self.voice!r} is not one of this model's voices: {', '.join(limits.voices)} (limits.voices)",
                loc=("body", "voice"),
            )
        self.check_output()
