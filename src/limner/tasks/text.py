"""Text tasks: text-generation (chat or a plain prompt) and image-to-text (captions, questions).

One schema per task, shared by every model of the task: swapping Qwen2.5 for SmolLM2 changes
the model id, not the client's code. ``messages`` follows OpenAI's chat shape (roles system,
user and assistant; content a string or a list of ``text`` / ``image_url`` parts), so the
OpenAI-compatible route passes it through as it is. Text models see text only: an
``image_url`` part sent to a text-generation model is refused, naming it; images go to an
image-to-text model, whose ``image`` is a file field like every other image input.

Limits: ``max_tokens`` against ``limits.max_output_tokens`` and the text against
``limits.max_prompt_chars`` are checked when the API takes the request (422). The exact token
count needs the model's tokenizer, which only the worker has: a prompt over
``limits.max_input_tokens`` fails the job with ``limit_exceeded`` naming that limit (a 422
from the synchronous and OpenAI routes).
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from limner.errors import InvalidInput
from limner.tasks.base import MAX_SEED, Limits, TaskInput, over

Role = Literal["system", "user", "assistant"]
FinishReason = Literal["stop", "length"]
MAX_STOP_STRINGS = 4


class ImageUrl(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(min_length=1, description="A data: URI or an http(s) URL of the image.")
    detail: Literal["auto", "low", "high"] | None = Field(default=None, description="Accepted; models see the image.")


class ContentPart(BaseModel):
    """One part of a message's content, OpenAI's shape."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["text", "image_url"]
    text: str | None = None
    image_url: ImageUrl | None = None

    @model_validator(mode="after")
    def _filled(self) -> ContentPart:
        if self.type == "text" and self.text is None:
            raise ValueError("a text part needs text")
        if self.type == "image_url" and self.image_url is None:
            raise ValueError("an image_url part needs image_url.url")
        return self


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Role
    content: str | list[ContentPart]

    def text(self) -> str:
        """The message's text: its string, or its text parts joined by newlines."""
        if isinstance(self.content, str):
            return self.content
        return "\n".join(part.text or "" for part in self.content if part.type == "text")

    def images(self) -> list[str]:
        if isinstance(self.content, str):
            return []
        return [part.image_url.url for part in self.content if part.type == "image_url" and part.image_url]


class _Sampling(TaskInput):
    """What every text-producing task shares: how long, how random, which seed."""

    limit_fields: ClassVar[frozenset[str]] = frozenset({"max_prompt_chars", "max_input_tokens", "max_output_tokens"})

    max_tokens: int = Field(default=256, ge=1, description="Most tokens to generate (limits.max_output_tokens).")
    temperature: float = Field(
        default=0.7, ge=0, le=2, description="Sampling temperature; 0 picks the likeliest token each time (greedy)."
    )
    top_p: float = Field(default=1.0, gt=0, le=1, description="Nucleus sampling: the smallest set with this mass.")
    seed: int | None = Field(
        default=None,
        ge=0,
        le=MAX_SEED,
        description="Same model, input and seed give the same text. Chosen at random and reported when absent.",
    )

    @classmethod
    def schema_limits(cls, limits: Limits) -> dict[str, dict[str, object]]:
        return {"max_tokens": {"maximum": limits.max_output_tokens}}

    def check_sampling(self, limits: Limits, chars: int, field: str) -> None:
        if self.max_tokens > limits.max_output_tokens:
            raise over("max_tokens", self.max_tokens, "max_output_tokens", limits.max_output_tokens)
        if chars > limits.max_prompt_chars:
            raise over(field, f"<{chars} characters>", "max_prompt_chars", limits.max_prompt_chars)


class TextGenerationInput(_Sampling):
    """A chat (``messages``) or a prompt with an optional system prompt."""

    per_item_fields: ClassVar[frozenset[str]] = frozenset(
        {"messages", "prompt", "system_prompt", "max_tokens", "temperature", "top_p", "stop", "seed"}
    )
    catalog_placeholders: ClassVar[dict[str, Any]] = {"prompt": "x"}

    messages: list[ChatMessage] | None = Field(
        default=None, min_length=1, description="The conversation so far: [{role, content}, …], OpenAI's shape."
    )
    prompt: str | None = Field(default=None, min_length=1, description="A single user turn (instead of messages).")
    system_prompt: str | None = Field(default=None, description="With prompt: the system turn before it.")
    stop: list[str] = Field(
        default_factory=list,
        max_length=MAX_STOP_STRINGS,
        description="Up to 4 strings; generation ends before the first of them (finish_reason stop).",
    )

    @model_validator(mode="after")
    def _one_form(self) -> TextGenerationInput:
        if (self.messages is None) == (self.prompt is None):
            raise ValueError("send either messages or prompt (with an optional system_prompt), not both or neither")
        if self.messages is not None and self.system_prompt is not None:
            raise ValueError("system_prompt goes with prompt; with messages, send a system message")
        if any(not s for s in self.stop):
            raise ValueError("stop strings must not be empty")
        return self

    def chat(self) -> list[dict[str, str]]:
        """The conversation as the chat template takes it: [{role, content}] with text content."""
        if self.messages is not None:
            return [{"role": m.role, "content": m.text()} for m in self.messages]
        turns = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
        return [*turns, {"role": "user", "content": self.prompt or ""}]

    def check_limits(self, limits: Limits) -> None:
        for index, message in enumerate(self.messages or []):
            if message.images():
                raise InvalidInput(
                    f"messages[{index}] holds an image_url part: text-generation models read text only; "
                    "send images to an image-to-text model",
                    loc=("body", "messages", index, "content"),
                )
        chars = sum(len(turn["content"]) for turn in self.chat())
        self.check_sampling(limits, chars, "messages" if self.messages is not None else "prompt")


class ImageToTextInput(_Sampling):
    """An image and, optionally, what to say about it (a question, or "describe in detail")."""

    per_item_fields: ClassVar[frozenset[str]] = frozenset({"image", "prompt", "max_tokens", "temperature", "seed"})
    file_fields: ClassVar[dict[str, str]] = {"image": "image"}

    image: str = Field(description="The image: a data: URI, or a URL of a file this server holds.")
    prompt: str | None = Field(
        default=None, min_length=1, description="A question or an instruction; the model's caption prompt when absent."
    )
    temperature: float = Field(default=0.0, ge=0, le=2, description="0 (default): greedy, the same text every time.")

    def check_limits(self, limits: Limits) -> None:
        self.check_sampling(limits, len(self.prompt or ""), "prompt")


class TextOutput(BaseModel):
    """What a text job's result adds to the fields every result has (documentation and tests)."""

    output: str
    finish_reason: FinishReason


class PromptTemplate(BaseModel):
    """How an enhance model is asked to rewrite a prompt for one target family, versioned: the
    version is recorded in every result, so a changed template shows in the results it made."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: str = Field(min_length=1, description="Bump it whenever the template's text changes.")
    system: str = Field(description="The system turn: what a good prompt for the target looks like.")
    user: str = Field(
        default="{prompt}",
        description="The user turn; {prompt}, {brief} and {caption} are filled in (empty when not given).",
    )

    @model_validator(mode="after")
    def _placeholders(self) -> PromptTemplate:
        try:
            self.user.format(prompt="", brief="", caption="")
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(
                f"user template: only {{prompt}}, {{brief}} and {{caption}} may be filled in ({exc})"
            ) from exc
        return self


DEFAULT_TEMPLATE = "default"


class PromptEnhancementInput(_Sampling):
    """A short prompt (and, optionally, a brief and a caption of a reference image) to rewrite
    as a detailed prompt for a target image family, with the enhance model's template for it."""

    per_item_fields: ClassVar[frozenset[str]] = frozenset({"prompt", "brief", "caption", "seed"})

    prompt: str = Field(min_length=1, description="The short prompt to enhance.")
    brief: str | None = Field(default=None, description="What the user wants: style, mood, use.")
    caption: str | None = Field(default=None, description="A description of a reference image (image-to-text).")
    target_family: str = Field(
        default=DEFAULT_TEMPLATE,
        description="The image family the prompt is for (diffusers-image, wan, …): picks the template.",
    )
    max_tokens: int = Field(default=120, ge=1, description="Most tokens of the enhanced prompt.")

    def check_limits(self, limits: Limits) -> None:
        chars = len(self.prompt) + len(self.brief or "") + len(self.caption or "")
        self.check_sampling(limits, chars, "prompt")

    def render(self, templates: dict[str, PromptTemplate]) -> tuple[str, PromptTemplate, TextGenerationInput]:
        """(template key, template, the chat it makes) for this input's target family."""
        key = self.target_family if self.target_family in templates else DEFAULT_TEMPLATE
        template = templates.get(key)
        if template is None:
            raise InvalidInput(
                f"target_family={self.target_family!r}: this enhance model has no template for it and no "
                f"{DEFAULT_TEMPLATE!r} one (templates: {', '.join(sorted(templates)) or 'none'})",
                loc=("body", "target_family"),
            )
        user = template.user.format(prompt=self.prompt, brief=self.brief or "", caption=self.caption or "")
        chat = TextGenerationInput(
            prompt=user.strip() or self.prompt,
            system_prompt=template.system,
            max_tokens=self.max_tokens,
            temperature=self.temperature,
            top_p=self.top_p,
            seed=self.seed,
        )
        return key, template, chat
