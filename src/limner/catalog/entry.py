"""A catalog entry: one model as data, bound to a task and an adapter family."""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from limner.catalog.families import FAMILIES
from limner.catalog.options import CacheOptions, QualityOptions
from limner.errors import LimitExceeded
from limner.tasks import TASK_IDS, TASKS, Limits
from limner.tasks.text import PromptTemplate

MODEL_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$"
# pip://<distribution>[/<model>]: model files shipped inside an installed Python package (piper
# voices, Real-ESRGAN ncnn models, mediapipe tflite models; see limner.adapters.packaged).
SOURCE_SCHEMES = ("hf://", "file://", "tiny://", "pip://", "builtin://", "https://")


ControlType = Literal["canny", "depth", "pose"]


class IPAdapterOptions(BaseModel):
    """Where an IP-Adapter's weights are (diffusers' ``load_ip_adapter`` layout)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: str = Field(description="hf://owner/repo, file:///path or tiny://name of the adapter repository.")
    subfolder: str = Field(default="models", description="Folder of the weight file inside the repository.")
    weight_name: str = Field(
        pattern=r"\.safetensors$",
        description="The adapter's safetensors file, e.g. ip-adapter_sd15.safetensors (never a pickled .bin).",
    )
    image_encoder_folder: str = Field(
        default="image_encoder",
        description="The CLIP image encoder: a folder under subfolder (SD, SDXL), or a repository id (FLUX).",
    )


class TrainingOptions(BaseModel):
    """The memory levers of a LoRA trainer (family lora-trainer)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    gradient_checkpointing: bool = Field(
        default=False, description="Recompute activations in the backward pass: less memory, ~30% slower steps."
    )
    cache_latents: bool = Field(
        default=True, description="Encode every training image once with the VAE, then free the encoder's work."
    )
    optimizer: Literal["adamw", "adamw8bit"] = Field(
        default="adamw", description="adamw8bit: 8-bit AdamW states through bitsandbytes (CUDA only)."
    )
    validation_steps: int = Field(default=20, ge=1, le=200, description="Denoising steps of validation images.")
    validation_guidance: float = Field(default=5.0, ge=0, description="Guidance scale of validation images.")


class RuntimeOptions(BaseModel):
    """How a worker loads and runs the model: its memory levers, batching and retries."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dtype: Literal["auto", "float32", "float16", "bfloat16"] = Field(
        default="auto", description="Weight dtype; auto is float16 on a GPU, float32 on the CPU."
    )
    offload: Literal["none", "model", "sequential"] = Field(
        default="none", description="CPU offload on CUDA: whole models (model) or layer by layer (sequential)."
    )
    vae_tiling: bool = Field(default=False, description="Decode latents in tiles (large images in less memory).")
    vae_slicing: bool = Field(default=False, description="Decode a batch one image at a time.")
    quantization: Literal["none", "nf4"] = Field(
        default="none",
        description="nf4: 4-bit NormalFloat denoiser and text encoders through bitsandbytes (CUDA only).",
    )
    max_batch_size: int = Field(default=1, ge=1, le=64, description="Jobs that may share one forward pass.")
    batch_wait_ms: int = Field(default=0, ge=0, le=10_000, description="How long to wait to fill a batch.")
    memory_mb: int | None = Field(default=None, ge=1, description="Resident size estimate before the first load.")
    max_attempts: int | None = Field(default=None, ge=1, le=100)
    timeout_s: float | None = Field(default=None, gt=0, description="A batch running longer fails as timeout.")
    usd_per_gpu_hour: float | None = Field(
        default=None, ge=0, description="Price of an hour of this model's device time (else the worker's setting)."
    )
    num_gpus: float = Field(
        default=0, ge=0, le=64, description="GPUs Ray reserves for each replica serving this model (executor ray)."
    )
    trust_remote_code: bool = Field(
        default=False,
        description="Run Python code shipped in the model's repository (transformers' trust_remote_code). "
        "Off unless the operator turns it on for this entry, after reading that code.",
    )
    controlnet: str | None = Field(default=None, description="ControlNet weights: hf://, file:// or tiny:// source.")
    control_type: ControlType | None = Field(default=None, description="The kind of control map the ControlNet reads.")
    control_preprocessor: str | None = Field(
        default=None,
        description="Model that turns a picture into a control map (depth: hf://…, pose: pip://mediapipe/…); "
        "canny needs none.",
    )
    ip_adapter: IPAdapterOptions | None = Field(default=None, description="Load an IP-Adapter for reference images.")
    training: TrainingOptions | None = Field(default=None, description="A LoRA trainer's memory levers.")
    max_loaded_loras: int = Field(
        default=8, ge=1, le=256, description="LoRAs kept loaded on this model (least recently used first out)."
    )
    lora_hotswap_rank: int | None = Field(
        default=None,
        ge=1,
        le=1024,
        description="Swap LoRAs in place (diffusers' hotswap) with this fixed maximum rank, as a compiled "
        "pipeline needs; off: LoRAs are loaded and deleted by name.",
    )
    preview_every: int = Field(
        default=0,
        ge=0,
        le=1000,
        description="Diffusion families: a step preview every N steps for every job (0: off; a request's "
        "preview: true turns them on, every N steps or every 4).",
    )
    realtime: bool = Field(
        default=False,
        description="Serve WebSocket /v1/realtime/{id}: each worker keeps a warm copy of this model for the "
        "real-time lane (besides its queue), one frame at a time, latest input wins.",
    )
    preview_decoder: str | None = Field(
        default=None,
        description="The tiny autoencoder (diffusers AutoencoderTiny) that decodes step previews: hf://madebyollin/"
        "taesd, taesdxl, taef1, or tiny://taesd; none: a linear latent-to-RGB map (4-channel latents).",
    )
    # Hosted providers (remote families): the key's environment variable, never the key itself.
    api_key_env: str | None = Field(
        default=None,
        pattern=r"^[A-Z_][A-Z0-9_]*$",
        description="A remote family's provider key: the name of the environment variable that holds it.",
    )
    max_concurrency: int = Field(
        default=4, ge=1, le=256, description="A remote family's calls in flight at once, per provider and worker."
    )
    usd_per_output: float | None = Field(
        default=None, ge=0, description="A remote family's price of one output file (goes to usage)."
    )
    usd_per_second: float | None = Field(
        default=None, ge=0, description="A remote family's price of a second of the provider's run (goes to usage)."
    )
    extra_body: bool = Field(
        default=False,
        description="openai-images: send the image fields OpenAI's API lacks (seed, negative_prompt, "
        "num_inference_steps, guidance_scale, strength) as extra fields, for a provider that takes them (another "
        "limner); off: a request that sets one is refused.",
    )
    input_names: Literal["limner", "fal"] | None = Field(
        default=None,
        description="fal-queue: the provider's field names: limner's own (another limner), or fal's "
        "(image_size, num_images, image_url…). Default: fal's when the source's host is fal's (…fal.run).",
    )


class CatalogEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=MODEL_ID_PATTERN)
    task: str
    family: str
    source: str = Field(
        description="hf://owner/repo, file:///path, tiny://name, pip://distribution[/model] or builtin://name"
    )
    revision: str | None = None
    variant: str | None = Field(default=None, description="Weight file variant, e.g. fp16.")
    title: str = ""
    description: str = ""
    license: str | None = None
    tags: tuple[str, ...] = ()
    defaults: dict[str, Any] = Field(default_factory=dict)
    limits: Limits = Field(default_factory=Limits)
    runtime: RuntimeOptions = Field(default_factory=RuntimeOptions)
    unsupported: tuple[str, ...] = Field(default=(), description="Input fields this model cannot honour (refused).")
    call_args: dict[str, Any] = Field(
        default_factory=dict, description="Fixed keyword arguments for the pipeline call (e.g. max_sequence_length)."
    )
    components: dict[str, str] = Field(
        default_factory=dict,
        description="Extra pipeline parts published on their own, by the name the family loads them under "
        "(e.g. motion_adapter for AnimateDiff); each a source like `source`.",
    )
    cache: CacheOptions = Field(default_factory=CacheOptions)
    quality: QualityOptions = Field(default_factory=QualityOptions)
    prompt_templates: dict[str, PromptTemplate] = Field(
        default_factory=dict,
        description="prompt-enhancement models: a versioned template per target family (and a default one).",
    )

    @model_validator(mode="before")
    @classmethod
    def _family_refusals(cls, data: Any) -> Any:
        """Write the fields the entry's family cannot honour into ``unsupported``, so every
        entry refuses them (422) without listing them by hand."""
        if not isinstance(data, dict) or data.get("family") not in FAMILIES or data.get("task") not in TASKS:
            return data
        runtime = data.get("runtime") or {}
        options = runtime.model_dump() if isinstance(runtime, BaseModel) else dict(runtime)
        fields = TASKS[data["task"]].input_model.model_fields
        refused = sorted(f for f in FAMILIES[data["family"]].refused_fields(data["task"], options) if f in fields)
        declared = list(data.get("unsupported") or ())
        return {**data, "unsupported": tuple(dict.fromkeys([*declared, *refused]))}

    @model_validator(mode="after")
    def _check(self) -> CatalogEntry:
        if self.task not in TASK_IDS:
            raise ValueError(f"task {self.task!r} is not one of {', '.join(TASK_IDS)}")
        if self.task not in TASKS:
            raise ValueError(f"task {self.task!r} has no schema in this version of limner")
        family = FAMILIES.get(self.family)
        if family is None:
            raise ValueError(f"family {self.family!r} is not one of {', '.join(FAMILIES)}")
        if self.task not in family.tasks:
            raise ValueError(f"family {self.family!r} does not serve task {self.task!r}")
        quantization = self.runtime.quantization
        if quantization != "none" and quantization not in family.quantization:
            able = sorted(f.name for f in FAMILIES.values() if quantization in f.quantization)
            raise ValueError(
                f"runtime.quantization {quantization} is not supported by family {self.family!r} "
                f"(families that support it: {', '.join(able) or 'none'})"
            )
        for name, source in {"source": self.source, **self.components}.items():
            if not source.startswith(SOURCE_SCHEMES):
                raise ValueError(f"{name} {source!r} must start with one of {', '.join(SOURCE_SCHEMES)}")
        if family.remote != self.source.startswith("https://"):
            kind = "a hosted provider: its source is an https:// URL" if family.remote else "local"
            raise ValueError(f"family {self.family!r} is {kind} (source {self.source!r})")
        if family.remote and self.runtime.api_key_env is None:
            raise ValueError(f"family {self.family!r} needs runtime.api_key_env (the variable that holds the key)")
        pip_parts = self.source.removeprefix("pip://").split("/")
        if self.source.startswith("pip://") and (len(pip_parts) > 2 or not all(pip_parts)):
            raise ValueError(f"source {self.source!r} must look like pip://<distribution>[/<model>]")
        if self.task == "prompt-enhancement" and "default" not in self.prompt_templates:
            raise ValueError("a prompt-enhancement entry needs prompt_templates with a 'default' template")
        if self.prompt_templates and self.task != "prompt-enhancement":
            raise ValueError("prompt_templates belong to prompt-enhancement entries")
        self._check_defaults()
        return self

    def _check_defaults(self) -> None:
        model = TASKS[self.task].input_model
        unknown = set(self.defaults) - set(model.model_fields)
        if unknown:
            raise ValueError(f"defaults name unknown fields: {', '.join(sorted(unknown))}")
        not_fields = set(self.unsupported) - set(model.model_fields)
        if not_fields:
            raise ValueError(f"unsupported names fields the {self.task} schema lacks: {', '.join(sorted(not_fields))}")
        placeholders = {
            name: "x" for name, field in model.model_fields.items() if field.is_required() and name not in self.defaults
        }
        placeholders.update({k: v for k, v in model.catalog_placeholders.items() if k not in self.defaults})
        try:
            parsed = model.model_validate({**placeholders, **self.defaults})
        except ValidationError as exc:
            raise ValueError(f"defaults do not fit the {self.task} schema: {exc}") from exc
        try:
            parsed.check_limits(self.limits)
        except LimitExceeded as exc:
            raise ValueError(f"defaults break the entry's own limits: {exc.message}") from exc

    @property
    def remote(self) -> bool:
        """Served by a hosted provider (a remote family): no device, no weights here."""
        return FAMILIES[self.family].remote

    @property
    def owner(self) -> str:
        return self.id.split("/", 1)[0]

    @property
    def name(self) -> str:
        return self.id.split("/", 1)[1]

    @property
    def residency_key(self) -> str:
        """Entries with the same key share one loaded copy of the weights."""
        parts = {
            "family": self.family,
            "source": self.source,
            "revision": self.revision,
            "variant": self.variant,
            "components": self.components,
            "runtime": self.runtime.model_dump(
                exclude={
                    "max_batch_size",
                    "batch_wait_ms",
                    "max_attempts",
                    "timeout_s",
                    "usd_per_gpu_hour",
                    "num_gpus",
                    "max_loaded_loras",
                }
            ),
        }
        return json.dumps(parts, sort_keys=True)

    def levers(self) -> list[str]:
        """The memory levers this entry pulls, in words (empty: full precision, on the device)."""
        runtime = self.runtime
        names = {"model": "model CPU offload", "sequential": "sequential CPU offload"}
        levers = [f"dtype {runtime.dtype}"] if runtime.dtype != "auto" else []
        levers += [names[runtime.offload]] if runtime.offload != "none" else []
        levers += ["VAE tiling"] if runtime.vae_tiling else []
        levers += ["VAE slicing"] if runtime.vae_slicing else []
        levers += ["4-bit NF4 weights (bitsandbytes)"] if runtime.quantization == "nf4" else []
        training = runtime.training
        if training is not None:
            levers += ["gradient checkpointing"] if training.gradient_checkpointing else []
            levers += ["cached latents"] if training.cache_latents else []
            levers += ["8-bit AdamW (bitsandbytes)"] if training.optimizer == "adamw8bit" else []
        return levers

    def input_schema(self) -> dict[str, Any]:
        """The task's JSON Schema with this model's defaults and limits written in."""
        model = TASKS[self.task].input_model
        schema = model.model_json_schema()
        props: dict[str, Any] = schema.get("properties", {})
        for name in self.unsupported:
            props.pop(name, None)
        for name, value in self.defaults.items():
            if name in props:
                props[name]["default"] = value
        for name, keywords in model.schema_limits(self.limits).items():
            if name in props:
                _apply(props[name], keywords)
        schema["required"] = [n for n in schema.get("required", []) if n not in self.defaults]
        return schema

    def public(self) -> dict[str, Any]:
        """What /v1/models shows about this entry."""
        return {
            "id": self.id,
            "task": self.task,
            "family": self.family,
            "source": self.source,
            "revision": self.revision,
            "title": self.title,
            "description": self.description,
            "license": self.license,
            "tags": list(self.tags),
            "defaults": self.defaults,
            # Only the limits of the model's task: a background-removal model has no voices.
            "limits": {
                name: getattr(self.limits, name)
                for name in TASKS[self.task].input_model.limit_names(refused=self.unsupported)
            },
            "runtime": self.runtime.model_dump(),
            "levers": self.levers(),
            "unsupported": list(self.unsupported),
            "call_args": self.call_args,
            "components": self.components,
            "cache": self.cache.model_dump(),
            "quality": self.quality.model_dump(),
        }


def _apply(prop: dict[str, Any], keywords: dict[str, object]) -> None:
    """Write limits into a property schema, also inside ``anyOf`` (optional fields)."""
    targets = [p for p in prop.get("anyOf", []) if p.get("type") not in (None, "null")] or [prop]
    string_keys = {"maxLength", "minLength", "enum", "pattern"}
    for target in targets:
        for key, value in keywords.items():
            kinds = {"maxItems": ("array",), "minItems": ("array",)}.get(
                key, ("string",) if key in string_keys else ("integer", "number")
            )
            if target.get("type") not in kinds:
                continue
            target[key] = value
