"""Accepting a submission: the steps between an HTTP body and a durable job."""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from limner.api.context import ApiContext
from limner.api.job_options import RequestOptions, job_options
from limner.api.tenancy import Caller, caller_of
from limner.cache.modes import HEADER as CACHE_HEADER
from limner.cache.modes import requested_mode
from limner.catalog.enhancers import enhancer_of
from limner.catalog.inputs import finalize_input, parse_input
from limner.errors import InvalidInput
from limner.intake.build import JobOptions, new_job, store_inputs
from limner.intake.fal_names import from_fal
from limner.logs import job_id
from limner.net.fetch import FetchPolicy
from limner.routing.spec import RouteEntry
from limner.routing.submit import BUDGET_HEADER, latency_budget, route_job
from limner.store.records import Submitted
from limner.store.states import PRIORITIES
from limner.tasks import TASKS
from limner.workflows.spec import WorkflowEntry
from limner.workflows.submit import workflow_cache_mode, workflow_job

MAX_IDEMPOTENCY_KEY = 255
# Deepest nesting of a JSON body: model inputs are flat objects with short lists, so this only
# refuses bodies built to exhaust the parser or the store.
MAX_JSON_DEPTH = 32


async def read_json(request: Request) -> Any:
    raw = await request.body()
    if not raw:
        return {}
    try:
        body = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"the request body is not valid JSON: {exc}", loc=("body",)) from None
    except RecursionError:
        raise InvalidInput(f"the request body is nested deeper than {MAX_JSON_DEPTH} levels", loc=("body",)) from None
    check_json(body)
    return body


def check_json(value: Any, loc: tuple[str | int, ...] = ("body",), depth: int = 0) -> None:
    """Refuse (422, naming where) bodies nested deeper than MAX_JSON_DEPTH, and strings with a
    NUL character, which no store column can hold (PostgreSQL's JSONB refuses \\u0000)."""
    if depth > MAX_JSON_DEPTH:
        raise InvalidInput(f"the request body is nested deeper than {MAX_JSON_DEPTH} levels", loc=loc)
    if isinstance(value, str):
        if "\x00" in value:
            raise InvalidInput("text may not contain NUL characters (\\u0000)", loc=loc)
    elif isinstance(value, dict):
        for key, item in value.items():
            if "\x00" in key:
                raise InvalidInput("field names may not contain NUL characters (\\u0000)", loc=loc)
            check_json(item, (*loc, key), depth + 1)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            check_json(item, (*loc, index), depth + 1)


def parse_priority(value: str | None) -> str:
    if value is None or value == "":
        return "normal"
    priority = value.strip().lower()
    if priority not in PRIORITIES:
        raise InvalidInput(
            f"X-Limner-Priority must be one of high, normal, low (got {value!r})", loc=("header", "x-limner-priority")
        )
    return priority


def check_idempotency_key(value: str | None) -> str | None:
    if value is None:
        return None
    if not value or len(value) > MAX_IDEMPOTENCY_KEY:
        raise InvalidInput(
            f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} characters", loc=("header", "idempotency-key")
        )
    return value


async def accept(ctx: ApiContext, request: Request, model_id: str, body: Any = None) -> Submitted:
    """Validate, store file inputs, and commit the job; returns once it is on disk. ``body``:
    the model's input when a route made it itself (the OpenAI-compatible ones), else the
    request's JSON body. A workflow id makes a workflow job (its steps follow)."""
    target = ctx.catalog.callable(model_id)
    # fal clients name the priority (normal, low) in their own header.
    priority = parse_priority(request.headers.get("x-limner-priority") or request.headers.get("x-fal-queue-priority"))
    key = check_idempotency_key(request.headers.get("idempotency-key"))
    extra = await job_options(request, ctx.settings)
    if body is None:  # the queue and run routes: fal's protocol, so fal's field names too
        body = await read_json(request)
        if not isinstance(target, WorkflowEntry):
            body = from_fal(body, frozenset(TASKS[target.task].input_model.model_fields))
    else:
        check_json(body)
    caller = caller_of(request)
    if ctx.quotas.active:
        await run_in_threadpool(ctx.quotas.check, caller.key_id)
    if isinstance(target, RouteEntry):
        budget = latency_budget(request.headers.get(BUDGET_HEADER))
        options = _options(ctx, caller, priority, key, extra, "off", 1)
        job = await run_in_threadpool(route_job, target, body, options, ctx.catalog, budget)
        job_id.set(job.id)
        submitted = await ctx.submitter.submit(job)
        if submitted.created:  # its first attempt starts now, not at the next coordinator sweep
            await run_in_threadpool(ctx.routes.advance_soon, submitted.job_id)
        return submitted
    if isinstance(target, WorkflowEntry):
        mode = workflow_cache_mode(request.headers.get(CACHE_HEADER))
        options = _options(ctx, caller, priority, key, extra, mode, target.max_attempts)
        job = await run_in_threadpool(
            workflow_job, target, body, options, ctx.catalog, ctx.storage, ctx.base_url(request), _policy(ctx)
        )
        job_id.set(job.id)
        return await ctx.submitter.submit(job)
    entry = target
    options = _options(ctx, caller, priority, key, extra, requested_mode(entry, request.headers.get(CACHE_HEADER)))
    parsed = parse_input(entry, body)
    enhancer_of(ctx.catalog, getattr(parsed, "enhance_prompt", None))  # an unknown enhance model: 422 now
    parsed = await run_in_threadpool(
        store_inputs, parsed, entry, ctx.storage, ctx.base_url(request), caller, _policy(ctx), ctx.loras
    )
    job = new_job(entry, finalize_input(entry, parsed), body, options)
    seeded = body.get("seed") is not None
    lookup = job.cache_mode == "semantic" or (seeded and job.cache_mode == "exact")
    if lookup and key is None and ctx.submit_cache.may_answer(entry):
        # With an Idempotency-Key the worker looks instead (the key must map to one job).
        served = await run_in_threadpool(ctx.submit_cache.answer, entry, job)
        if served is not None:
            return served
    job_id.set(job.id)  # later log lines of this request name its job
    return await ctx.submitter.submit(job)


def _policy(ctx: ApiContext) -> FetchPolicy:
    return FetchPolicy.create(ctx.settings.fetch_allow_hosts, ctx.settings.fetch_timeout_s)


def _options(
    ctx: ApiContext,
    caller: Caller,
    priority: str,
    key: str | None,
    extra: RequestOptions,
    cache_mode: str | None,
    max_attempts: int | None = None,
) -> JobOptions:
    return JobOptions(
        caller=caller,
        priority=priority,
        idempotency_key=key,
        cache_mode=cache_mode,
        webhook_url=extra.webhook_url,
        webhook_events=extra.webhook_events,
        start_deadline_s=extra.start_deadline_s,
        result_ttl_s=extra.result_ttl_s,
        max_attempts=max_attempts or ctx.settings.max_attempts,
    )
