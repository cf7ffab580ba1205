"""A request body and its options become a :class:`NewJob`: validated against the model's task
schema and limits, file inputs checked and stored, a seed chosen. The API's submissions,
workflow steps and batch rows all come through here, so a step or a row is checked exactly as
the same body sent to the model's queue route would be."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from limner.cache.modes import effective_mode
from limner.catalog.entry import CatalogEntry
from limner.catalog.inputs import batch_key, body_hash, finalize_input, parse_input
from limner.intake.files import store_file_inputs
from limner.intake.loras import resolve_loras
from limner.intake.training import store_training_images
from limner.net.fetch import FetchPolicy
from limner.storage import Storage
from limner.store.loras import LoraStore
from limner.store.records import NewJob
from limner.tasks import TaskInput
from limner.tasks.training import LoraTrainingInput
from limner.tenancy import Caller


@dataclass(frozen=True)
class JobOptions:
    """Everything about a job that is not the model's input."""

    caller: Caller
    priority: str = "normal"
    idempotency_key: str | None = None
    cache_mode: str | None = None  # as requested (header, or the model's default); None: the default
    webhook_url: str | None = None
    webhook_events: str | None = None
    start_deadline_s: float | None = None
    result_ttl_s: float | None = None
    max_attempts: int = 3
    # A workflow step's job, a batch row's job.
    parent_id: str | None = None
    step_key: str | None = None
    step_attempt: int | None = None
    deadline_s: float | None = None
    batch_id: str | None = None


def store_inputs(
    parsed: TaskInput,
    entry: CatalogEntry,
    storage: Storage,
    base: str,
    caller: Caller,
    policy: FetchPolicy | None,
    loras: LoraStore | None,
) -> TaskInput:
    """Every file a parsed input names, checked and stored (and replaced by its reference):
    file fields, a training job's images, an image request's LoRAs."""
    if parsed.file_fields:
        parsed = store_file_inputs(parsed, entry, storage, base, caller, policy=policy)
    if isinstance(parsed, LoraTrainingInput):
        parsed = store_training_images(parsed, entry.limits, storage, base, caller, policy)
    weights = getattr(parsed, "loras", None)
    if weights:
        resolved = resolve_loras(weights, entry.limits, storage, base, caller, policy, loras)
        parsed = parsed.model_copy(update={"loras": resolved})
    return parsed


def prepared_input(
    entry: CatalogEntry,
    body: Any,
    storage: Storage,
    base: str,
    caller: Caller,
    policy: FetchPolicy | None,
    loras: LoraStore | None = None,
) -> TaskInput:
    """The body validated, its files stored, its limits checked and its seed chosen."""
    parsed = parse_input(entry, body)
    parsed = store_inputs(parsed, entry, storage, base, caller, policy, loras)
    return finalize_input(entry, parsed)


def new_job(entry: CatalogEntry, parsed: TaskInput, body: dict[str, Any], options: JobOptions) -> NewJob:
    """The job row for an input that passed every check."""
    requested = options.cache_mode or entry.cache.mode
    return NewJob(
        id=str(uuid.uuid4()),
        model_id=entry.id,
        task=entry.task,
        priority=options.priority,
        input=parsed.model_dump(mode="json"),
        batch_key=batch_key(entry, parsed),
        body_hash=body_hash({"model": entry.id, "body": body}),
        idempotency_key=options.idempotency_key,
        max_attempts=entry.runtime.max_attempts or options.max_attempts,
        webhook_url=options.webhook_url,
        webhook_events=options.webhook_events,
        start_deadline_s=options.start_deadline_s,
        result_ttl_s=options.result_ttl_s,
        api_key_id=options.caller.key_id,
        cache_mode=effective_mode(requested, seed_given=body.get("seed") is not None),
        project=options.caller.project,
        parent_id=options.parent_id,
        step_key=options.step_key,
        step_attempt=options.step_attempt,
        deadline_s=options.deadline_s,
        batch_id=options.batch_id,
    )


def build_job(
    entry: CatalogEntry,
    body: dict[str, Any],
    options: JobOptions,
    storage: Storage,
    base: str,
    policy: FetchPolicy | None = None,
    loras: LoraStore | None = None,
) -> NewJob:
    """Raises InvalidInput (naming the field and the limit) when the body does not fit."""
    parsed = prepared_input(entry, body, storage, base, options.caller, policy, loras)
    return new_job(entry, parsed, body, options)
