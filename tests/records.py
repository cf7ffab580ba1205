"""Store records for store-level tests."""

from __future__ import annotations

import uuid
from typing import Any

from limner.store.records import NewJob


def new_job(**overrides: Any) -> NewJob:
    """A queued text-to-image job of model m/a in batch key k; override any field."""
    fields: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "model_id": "m/a",
        "task": "text-to-image",
        "priority": "normal",
        "input": {"prompt": "p"},
        "batch_key": "k",
        "body_hash": "h",
        "idempotency_key": None,
        "max_attempts": 3,
    }
    return NewJob(**{**fields, **overrides})
