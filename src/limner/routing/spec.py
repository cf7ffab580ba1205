"""A route as catalog data: one callable id over several targets, and how to choose among them.

```yaml
routes:
  - id: acme/product-image
    task: text-to-image
    strategy: fallback          # fallback | lowest-cost | lowest-latency | least-busy
    targets:
      - model: black-forest-labs/flux.1-schnell
      - model: fal/flux-schnell
        when: {priority: [high]}      # optional: hybrid lanes
    retry_on: [model_unavailable, timeout, overloaded, server_error]
    cooldown: {failures: 3, seconds: 30}
    latency_budget_s: 20
    params: strict              # strict | coerce
```

Checked when the catalog loads against the models it names (``check_against``): every target
must exist and serve the route's task.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from limner.catalog.entry import MODEL_ID_PATTERN, CatalogEntry, _apply
from limner.store.states import PRIORITIES
from limner.tasks import TASKS, Limits

Strategy = Literal["fallback", "lowest-cost", "lowest-latency", "least-busy"]
RETRYABLE = ("model_unavailable", "timeout", "overloaded", "server_error", "out_of_memory", "worker_lost")
ROUTE_FAMILY = "route"
# The batch key of a route's own job (never claimed by a worker: a coordinator runs it).
ROUTE_KEY_PREFIX = "route:"


class TargetWhen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    priority: tuple[str, ...] = Field(default=(), description="Only jobs of these priorities (empty: any).")

    @model_validator(mode="after")
    def _check(self) -> TargetWhen:
        unknown = [p for p in self.priority if p not in PRIORITIES]
        if unknown:
            raise ValueError(f"when.priority {unknown[0]!r} is not one of {', '.join(PRIORITIES)}")
        return self


class RouteTarget(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field(pattern=MODEL_ID_PATTERN)
    when: TargetWhen = Field(default_factory=TargetWhen)


class Cooldown(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    failures: int = Field(default=3, ge=1, le=1000, description="Retryable failures in a row that start it.")
    seconds: float = Field(default=30.0, gt=0, le=86_400, description="How long a target is skipped.")


class RouteEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=MODEL_ID_PATTERN)
    task: str
    title: str = ""
    description: str = ""
    strategy: Strategy = "fallback"
    targets: tuple[RouteTarget, ...] = Field(min_length=1, max_length=16)
    retry_on: tuple[str, ...] = RETRYABLE[:4]
    cooldown: Cooldown = Field(default_factory=Cooldown)
    latency_budget_s: float | None = Field(default=None, gt=0, le=86_400)
    params: Literal["strict", "coerce"] = "strict"

    @model_validator(mode="after")
    def _check(self) -> RouteEntry:
        if self.task not in TASKS:
            raise ValueError(f"task {self.task!r} has no schema in this version of limner")
        models = [t.model for t in self.targets]
        if len(set(models)) != len(models):
            raise ValueError("a route names each target once")
        if "invalid_input" in self.retry_on or "limit_exceeded" in self.retry_on:
            raise ValueError("retry_on may not name invalid_input or limit_exceeded: bad input never falls back")
        return self

    def check_against(self, models: dict[str, CatalogEntry]) -> None:
        for target in self.targets:
            entry = models.get(target.model)
            if entry is None:
                raise ValueError(f"target {target.model} is not a model in the catalog")
            if entry.task != self.task:
                raise ValueError(f"target {target.model} serves {entry.task}, not {self.task}")

    @property
    def family(self) -> str:
        return ROUTE_FAMILY

    @property
    def revision(self) -> str:
        return "route"

    def limits(self, entries: list[CatalogEntry]) -> Limits:
        """The limits every target honours (strict), or the widest any honours (coerce:
        the others are mapped into their own)."""
        strict = self.params == "strict"
        values: dict[str, Any] = {}
        for name, info in Limits.model_fields.items():
            got = [getattr(e.limits, name) for e in entries]
            if name.startswith("max_") and all(isinstance(v, int | float) for v in got):
                values[name] = min(got) if strict else max(got)
            elif name.startswith("min_") or name.endswith("_multiple"):
                values[name] = max(got) if strict else min(got)
            else:
                values[name] = getattr(entries[0].limits, name) if got else info.default
        return Limits.model_validate(values)

    def input_schema_for(self, entries: list[CatalogEntry]) -> dict[str, Any]:
        """The task's JSON Schema narrowed to what every target can honour."""
        model = TASKS[self.task].input_model
        schema = model.model_json_schema()
        props: dict[str, Any] = schema.get("properties", {})
        refused = {name for e in entries for name in e.unsupported}
        if self.params == "strict":
            for name in refused:
                props.pop(name, None)
        for name, keywords in model.schema_limits(self.limits(entries)).items():
            if name in props:
                _apply(props[name], keywords)
        shared = set.intersection(*(set(e.defaults) for e in entries)) if entries else set()
        schema["required"] = [n for n in schema.get("required", []) if n not in shared]
        return schema

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "task": self.task,
            "family": ROUTE_FAMILY,
            "kind": "route",
            "title": self.title,
            "description": self.description,
            "strategy": self.strategy,
            "targets": [{"model": t.model, "when": t.when.model_dump()} for t in self.targets],
            "retry_on": list(self.retry_on),
            "cooldown": self.cooldown.model_dump(),
            "latency_budget_s": self.latency_budget_s,
            "params": self.params,
        }
