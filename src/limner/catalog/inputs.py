"""Turning a request body into a model's validated input: defaults, schema, limits, seed."""

from __future__ import annotations

import hashlib
import json
import secrets
from typing import Any

from pydantic import ValidationError

from limner.catalog.entry import CatalogEntry
from limner.errors import InvalidInput
from limner.tasks import TASKS, TaskInput
from limner.tasks.base import MAX_SEED


def parse_input(entry: CatalogEntry, body: Any) -> TaskInput:
    """Validate ``body`` against the task schema with ``entry``'s defaults filled in.

    Raises InvalidInput naming the field. Limits are checked by :func:`finalize_input`, after
    file inputs are resolved (an input image decides the default output size).
    """
    if not isinstance(body, dict):
        raise InvalidInput("the request body must be a JSON object of input fields", loc=("body",))
    refused = [name for name in entry.unsupported if body.get(name) is not None]
    if refused:
        raise InvalidInput(f"{refused[0]} is not supported by model {entry.id}", loc=("body", refused[0]))
    model = TASKS[entry.task].input_model
    merged = {**entry.defaults, **{k: v for k, v in body.items() if v is not None}}
    try:
        parsed = model.model_validate(merged)
    except ValidationError as exc:
        details: list[dict[str, Any]] = [
            {"loc": ["body", *err["loc"]], "msg": err["msg"], "type": err["type"]}
            for err in exc.errors(include_url=False, include_context=False, include_input=False)
        ]
        raise InvalidInput(details[0]["msg"], loc=tuple(details[0]["loc"]), details=details) from None
    return parsed


def finalize_input(entry: CatalogEntry, parsed: TaskInput) -> TaskInput:
    """Check ``entry``'s limits and choose a seed when none was given."""
    parsed.check_limits(entry.limits)
    model = type(parsed)
    # A model that takes no seed (it is refused) gets none: none is reported as used.
    seeded = "seed" in model.model_fields and "seed" not in entry.unsupported
    if seeded and getattr(parsed, "seed", 0) is None:
        parsed = parsed.model_copy(update={"seed": secrets.randbelow(MAX_SEED + 1)})
    return parsed


def body_hash(body: Any) -> str:
    """A stable hash of a request body (for Idempotency-Key checks)."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def batch_key(entry: CatalogEntry, parsed: TaskInput) -> str:
    """Jobs of one model with equal keys can share a batch."""
    shared = {"model": entry.id, "task": entry.task, **parsed.batch_fields()}
    canonical = json.dumps(shared, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]
