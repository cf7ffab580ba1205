"""A workflow as catalog data: inputs, steps that each call a model by id, and an output.

```yaml
workflows:
  - id: limner/product-photo
    inputs:
      image: {type: image, required: true}
      scene: {type: string, default: "on a marble table, soft window light"}
      seed: {type: integer}
    steps:
      - id: cutout
        model: limner/grabcut-background-removal
        input: {image: $input.image}
      - id: scene
        model: limner/tiny-sd-inpaint-ip-adapter
        input: {image: $cutout.images.0.url, prompt: "${input.scene}, product photo", seed: $input.seed}
        retries: 1
    output: {images: $scene.images}
```

Per step: ``for_each`` (fan out over a list), ``retries`` (new attempts after a failure),
``timeout_s`` (the step fails as a timeout past it), ``cache`` (exact-cache hits; on by
default) and ``when`` (run only if a reference is truthy, else the step is skipped). Everything
is checked when the catalog loads, against the models it names (``check_against``): an unknown
model, step, field or output is a catalog error naming the workflow and the step.
"""

from __future__ import annotations

import hashlib
import json
from graphlib import CycleError, TopologicalSorter
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, create_model, field_validator, model_validator

from limner.catalog.entry import MODEL_ID_PATTERN, CatalogEntry
from limner.tasks import TASKS, Limits, TaskInput
from limner.workflows.refs import INDEX, INPUT, ITEM, RESERVED, Ref, refs_in

InputType = Literal["image", "mask", "audio", "string", "integer", "number", "boolean", "list"]
FILE_TYPES = ("image", "mask", "audio")
PYTHON_TYPES: dict[str, Any] = {
    "image": str,
    "mask": str,
    "audio": str,
    "string": str,
    "integer": int,
    "number": float,
    "boolean": bool,
    "list": list[Any],
}
STEP_ID = r"^[a-z][a-z0-9_]{0,39}$"
MAX_RETRIES = 5


class WorkflowInput(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    type: InputType
    required: bool = False
    default: Any = None
    description: str = ""
    enum: tuple[Any, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    max_length: int | None = Field(default=None, ge=1, description="Longest string, or most list items.")


class WorkflowStep(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=STEP_ID)
    model: str = Field(pattern=MODEL_ID_PATTERN)
    input: dict[str, Any] = Field(default_factory=dict)
    for_each: str | None = Field(default=None, description="A reference to a list: one run of the step per item.")
    retries: int = Field(default=0, ge=0, le=MAX_RETRIES, description="Further attempts after a failed run.")
    timeout_s: float | None = Field(default=None, gt=0, description="The step fails as a timeout past this.")
    cache: bool = Field(default=True, description="Exact cache hits answer the step's runs.")
    when: str | None = Field(default=None, description="A reference: the step runs only if it is truthy.")

    @field_validator("id")
    @classmethod
    def _not_reserved(cls, value: str) -> str:
        if value in RESERVED:
            raise ValueError(f"step id {value!r} is reserved ({', '.join(sorted(RESERVED))})")
        return value

    def references(self) -> list[Ref]:
        extra = [self.for_each, self.when]
        return [*refs_in(self.input), *refs_in([e for e in extra if e is not None])]

    def depends_on(self) -> set[str]:
        return {r.root for r in self.references() if r.root not in RESERVED}


class WorkflowEntry(BaseModel):
    """A workflow, called exactly like a model (its task is ``workflow``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    task: ClassVar[str] = "workflow"
    family: ClassVar[str] = "workflow"

    id: str = Field(pattern=MODEL_ID_PATTERN)
    title: str = ""
    description: str = ""
    license: str | None = None
    tags: tuple[str, ...] = ()
    inputs: dict[str, WorkflowInput] = Field(default_factory=dict)
    steps: tuple[WorkflowStep, ...] = Field(min_length=1)
    output: dict[str, Any] = Field(min_length=1)
    limits: Limits = Field(default_factory=Limits, description="File-input limits of the workflow's own inputs.")
    max_attempts: int | None = Field(default=None, ge=1, le=100)
    _input_model: type[TaskInput] | None = PrivateAttr(default=None)

    @field_validator("inputs")
    @classmethod
    def _input_names(cls, value: dict[str, WorkflowInput]) -> dict[str, WorkflowInput]:
        for name in value:
            if not name.isidentifier():
                raise ValueError(f"input name {name!r} must be an identifier")
        return value

    @model_validator(mode="after")
    def _graph(self) -> WorkflowEntry:
        ids = [s.id for s in self.steps]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"step ids must be unique: {', '.join(dupes)}")
        known = set(ids)
        for step in self.steps:
            for ref in step.references():
                self._check_ref(ref, f"step {step.id}", known, fan_out=step.for_each is not None, own=step.id)
        for ref in refs_in(self.output):
            self._check_ref(ref, "output", known, fan_out=False, own=None)
        try:
            tuple(TopologicalSorter({s.id: s.depends_on() for s in self.steps}).static_order())
        except CycleError as exc:
            raise ValueError(f"steps depend on each other in a cycle: {' -> '.join(exc.args[1])}") from None
        return self

    def _check_ref(self, ref: Ref, where: str, steps: set[str], *, fan_out: bool, own: str | None) -> None:
        if ref.root == INPUT:
            if not ref.path or ref.path[0] not in self.inputs:
                name = ref.path[0] if ref.path else ""
                raise ValueError(f"{where}: {ref} names no input {name!r} (inputs: {', '.join(self.inputs) or 'none'})")
        elif ref.root in (ITEM, INDEX):
            if not fan_out:
                raise ValueError(f"{where}: {ref} is only available in a step with for_each")
        elif ref.root == own:
            raise ValueError(f"{where}: {ref} refers to the step itself")
        elif ref.root not in steps:
            raise ValueError(f"{where}: {ref} names no step {ref.root!r} (steps: {', '.join(sorted(steps))})")

    # -- against the models it calls -------------------------------------------------------

    def check_against(self, models: dict[str, CatalogEntry]) -> None:
        """Every step's model exists and takes the fields the step gives it; every reference to
        a step's result names a key that step's task produces."""
        by_id = {s.id: s for s in self.steps}
        for step in self.steps:
            entry = models.get(step.model)
            if entry is None:
                raise ValueError(f"step {step.id}: no model {step.model!r} in the catalog")
            fields = TASKS[entry.task].input_model.model_fields
            for name in step.input:
                if name not in fields:
                    raise ValueError(
                        f"step {step.id}: {step.model} ({entry.task}) has no input field {name!r} "
                        f"(fields: {', '.join(sorted(fields))})"
                    )
                if name in entry.unsupported:
                    raise ValueError(f"step {step.id}: {step.model} does not take {name!r}")
            missing = [
                n for n, f in fields.items() if f.is_required() and n not in step.input and n not in entry.defaults
            ]
            if missing:
                raise ValueError(f"step {step.id}: {step.model} needs {', '.join(missing)}")
        for where, value in [*((f"step {s.id}", s.input) for s in self.steps), ("output", self.output)]:
            for ref in refs_in(value):
                if ref.root in by_id and ref.path:
                    target = models[by_id[ref.root].model]
                    keys = TASKS[target.task].result_keys
                    head = ref.path[1] if ref.path[0].isdigit() and len(ref.path) > 1 else ref.path[0]
                    if head not in keys and not head.isdigit():
                        raise ValueError(
                            f"{where}: {ref}: a {target.task} result has no {head!r} (it has {', '.join(sorted(keys))})"
                        )

    # -- as a model ------------------------------------------------------------------------

    @property
    def owner(self) -> str:
        return self.id.split("/", 1)[0]

    @property
    def name(self) -> str:
        return self.id.split("/", 1)[1]

    @property
    def revision(self) -> str:
        """A digest of the definition: a changed workflow is a new revision in its results."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return "wf-" + hashlib.sha256(canonical.encode()).hexdigest()[:12]

    def input_model(self) -> type[TaskInput]:
        """A TaskInput subclass for the workflow's inputs: the API validates, stores file inputs
        and renders the JSON Schema with it exactly as for a model (made once per entry)."""
        if self._input_model is None:
            self._input_model = self._make_input_model()
        return self._input_model

    def _make_input_model(self) -> type[TaskInput]:
        fields: dict[str, Any] = {}
        for name, spec in self.inputs.items():
            kind = PYTHON_TYPES[spec.type]
            constraints: dict[str, Any] = {"description": spec.description or None}
            if spec.minimum is not None:
                constraints["ge"] = spec.minimum
            if spec.maximum is not None:
                constraints["le"] = spec.maximum
            if spec.max_length is not None:
                constraints["max_length"] = spec.max_length
            if spec.enum is not None:
                kind = Literal[spec.enum]
            if spec.required:
                fields[name] = (kind, Field(**constraints))
            else:
                fields[name] = (kind | None, Field(default=spec.default, **constraints))
        model: type[TaskInput] = create_model(
            "".join(part.title() for part in self.name.replace("-", "_").split("_")) + "Input",
            __base__=TaskInput,
            **fields,
        )
        model.file_fields = {n: s.type for n, s in self.inputs.items() if s.type in FILE_TYPES}
        model.per_item_fields = frozenset(self.inputs)
        return model

    def input_schema(self) -> dict[str, Any]:
        schema = self.input_model().model_json_schema()
        for name, spec in self.inputs.items():
            prop = schema.get("properties", {}).get(name)
            if prop is not None and spec.type in FILE_TYPES:
                prop["format"] = "uri"
                prop["contentMediaType"] = f"{'audio' if spec.type == 'audio' else 'image'}/*"
        return schema

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "task": self.task,
            "family": self.family,
            "source": f"workflow://{self.id}",
            "revision": self.revision,
            "title": self.title,
            "description": self.description,
            "license": self.license,
            "tags": list(self.tags),
            "steps": [
                {
                    "id": s.id,
                    "model": s.model,
                    "needs": sorted(s.depends_on()),
                    "for_each": s.for_each,
                    "retries": s.retries,
                    "timeout_s": s.timeout_s,
                    "cache": s.cache,
                    "when": s.when,
                }
                for s in self.steps
            ],
            "limits": {name: getattr(self.limits, name) for name in self.input_model().limit_names()},
        }
