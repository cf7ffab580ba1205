"""A workflow submission becomes one workflow job: its inputs checked against the workflow's
input schema, its files stored, and every step that depends on the inputs alone checked
against its model (schema and limits) before the 202, so a bad value is a 422 at submit that
names the field, not a failed step later. The coordinator then starts the steps."""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import ValidationError

from limner.catalog.inputs import body_hash, parse_input
from limner.catalog.loader import Catalog
from limner.errors import InvalidInput, LimitExceeded
from limner.intake.build import JobOptions
from limner.intake.files import store_file_inputs
from limner.net.fetch import FetchPolicy
from limner.storage import Storage
from limner.store.records import NewJob
from limner.tasks import WORKFLOW_TASK
from limner.workflows.refs import INPUT, Missing, parse, resolve
from limner.workflows.spec import WorkflowEntry, WorkflowStep


def workflow_cache_mode(header: str | None) -> str | None:
    """X-Limner-Cache for a workflow: ``off`` turns its steps' cache off, ``exact`` is the default."""
    if header is None or not header.strip():
        return None
    mode = header.strip().lower()
    if mode not in ("off", "exact"):
        raise InvalidInput(
            f"X-Limner-Cache for a workflow is off or exact (got {header!r}): its steps are cached by exact key",
            loc=("header", "x-limner-cache"),
        )
    return mode


def parse_workflow_input(workflow: WorkflowEntry, body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise InvalidInput("the request body must be a JSON object of the workflow's inputs", loc=("body",))
    model = workflow.input_model()
    try:
        parsed = model.model_validate({k: v for k, v in body.items() if v is not None})
    except ValidationError as exc:
        details: list[dict[str, Any]] = [
            {"loc": ["body", *err["loc"]], "msg": err["msg"], "type": err["type"]}
            for err in exc.errors(include_url=False, include_context=False, include_input=False)
        ]
        raise InvalidInput(details[0]["msg"], loc=tuple(details[0]["loc"]), details=details) from None
    return parsed.model_dump(mode="json")


def check_first_steps(workflow: WorkflowEntry, catalog: Catalog, inputs: dict[str, Any]) -> None:
    """Validate every step whose input depends on the workflow's inputs alone."""
    for step in workflow.steps:
        if step.depends_on() or step.for_each is not None:
            continue
        entry = catalog.get(step.model)
        try:
            body = resolve(step.input, {INPUT: inputs})
        except Missing:
            continue
        try:
            parse_input(entry, body).check_limits(entry.limits)
        except (InvalidInput, LimitExceeded) as exc:
            raise _as_input_error(step, exc) from None


def _as_input_error(step: WorkflowStep, exc: InvalidInput) -> InvalidInput:
    """Name the workflow input that fed the bad field, where one did."""
    field = str(exc.loc[1]) if len(exc.loc) > 1 else ""
    ref = parse(step.input[field]) if isinstance(step.input.get(field), str) else None
    loc: tuple[str | int, ...] = (
        ("body", ref.path[0]) if ref is not None and ref.root == INPUT and ref.path else ("body",)
    )
    error = type(exc)(f"step {step.id} ({step.model}): {exc.message}", loc=loc)
    return error


def workflow_job(
    workflow: WorkflowEntry,
    body: Any,
    options: JobOptions,
    catalog: Catalog,
    storage: Storage,
    base: str,
    policy: FetchPolicy | None,
) -> NewJob:
    inputs = parse_workflow_input(workflow, body)
    model = workflow.input_model()
    if model.file_fields:
        stored = store_file_inputs(
            model.model_validate(inputs), workflow.limits, storage, base, options.caller, policy=policy
        )
        inputs = stored.model_dump(mode="json")
    check_first_steps(workflow, catalog, inputs)
    return NewJob(
        id=str(uuid.uuid4()),
        model_id=workflow.id,
        task=WORKFLOW_TASK,
        priority=options.priority,
        input=inputs,
        batch_key=f"workflow:{workflow.id}",
        body_hash=body_hash({"model": workflow.id, "body": body}),
        idempotency_key=options.idempotency_key,
        max_attempts=1,
        webhook_url=options.webhook_url,
        webhook_events=options.webhook_events,
        start_deadline_s=options.start_deadline_s,
        result_ttl_s=options.result_ttl_s,
        api_key_id=options.caller.key_id,
        # The workflow itself is never cached; this is what its steps do: exact hits, or none.
        cache_mode=options.cache_mode or "exact",
        project=options.caller.project,
        batch_id=options.batch_id,
        advance_due=True,  # a coordinator starts its first steps
    )
