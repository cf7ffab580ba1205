"""Reproducing and comparing requests.

``POST /v1/requests/{id}/replay`` runs a request again with exactly its resolved input (the
seed it was given or chosen, its stored input files, its LoRAs), with the cache off so the
model really runs, and, once it is done, reports whether the outputs are identical.
``GET /v1/requests/{a}/diff/{b}`` lists every difference between two requests in input,
model and environment (their results' provenance), and compares their outputs.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from limner.api.compare import compare_outputs, differences, record_of
from limner.api.context import ApiContext, get_ctx
from limner.api.tenancy import caller_of, visible_job
from limner.api.views import queue_urls
from limner.catalog import CatalogEntry
from limner.errors import InvalidInput
from limner.intake.build import JobOptions, new_job
from limner.store.records import Job
from limner.store.states import SUCCEEDED
from limner.tasks import TASKS
from limner.tenancy import member_of

router = APIRouter(tags=["requests"])
Ctx = Annotated[ApiContext, Depends(get_ctx)]


async def _job(ctx: ApiContext, request: Request, request_id: str) -> Job:
    job = await run_in_threadpool(ctx.jobs.get, request_id)
    return visible_job(caller_of(request), job, request_id)


@router.post("/v1/requests/{request_id}/replay")
async def replay(
    request_id: str,
    request: Request,
    ctx: Ctx,
    wait: Annotated[bool, Query(description="Wait (up to run_timeout_s) and compare the outputs.")] = True,
) -> JSONResponse:
    """200 with the comparison once the replay finished; 202 with its handle when not waiting
    (or when it outlived the wait): its ``diff_url`` compares the two later."""
    original = await _job(ctx, request, request_id)
    entry = _replayable(ctx, original)
    caller = caller_of(request)
    if ctx.quotas.active:
        await run_in_threadpool(ctx.quotas.check, caller.key_id)
    try:
        parsed = TASKS[original.task].input_model.model_validate(original.input)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        raise InvalidInput(
            f"request {original.id}'s stored input no longer fits the {original.task} schema: {first['msg']}",
            loc=("path", "request_id"),
        ) from None
    # The replay belongs to the original's project (its input files live there), under the
    # replaying key; the cache is off, or an exact hit would "reproduce" by copying.
    options = JobOptions(
        caller=member_of(original.project, caller.key_id),
        priority=original.priority,
        cache_mode="off",
        max_attempts=ctx.settings.max_attempts,
    )
    submitted = await ctx.submitter.submit(new_job(entry, parsed, original.input, options))
    base = ctx.base_url(request)
    body: dict[str, Any] = {
        **queue_urls(base, submitted.job_id, entry.id),
        "replay_of": original.id,
        "diff_url": f"{base}/v1/requests/{original.id}/diff/{submitted.job_id}",
    }
    job = await _wait(ctx, submitted.job_id) if wait else None
    if job is None or not job.terminal:
        return JSONResponse(status_code=202, content={**body, "status": "IN_QUEUE"})
    body["state"] = job.status
    body["comparison"] = await run_in_threadpool(_outputs, ctx, original, job)
    return JSONResponse(content=body)


@router.get("/v1/requests/{a}/diff/{b}")
async def diff(a: str, b: str, request: Request, ctx: Ctx) -> dict[str, Any]:
    """Every difference in input, model and environment between two requests (``{path, a, b}``,
    paths into their provenance), and whether their outputs are identical (null until both
    succeeded)."""
    first = await _job(ctx, request, a)
    second = await _job(ctx, request, b)
    return {
        "a": first.id,
        "b": second.id,
        "differences": differences(record_of(first), record_of(second)),
        "outputs": await run_in_threadpool(_outputs, ctx, first, second),
    }


def _replayable(ctx: ApiContext, job: Job) -> CatalogEntry:
    if job.model_id in ctx.catalog:
        return ctx.catalog.get(job.model_id)
    what = "a workflow" if job.task not in TASKS else f"model {job.model_id}, which this server no longer serves"
    raise InvalidInput(
        f"request {job.id} is of {what}: only model requests can be replayed", loc=("path", "request_id")
    )


def _outputs(ctx: ApiContext, a: Job, b: Job) -> dict[str, Any] | None:
    if a.status != SUCCEEDED or b.status != SUCCEEDED or a.result is None or b.result is None:
        return None
    return compare_outputs(ctx.storage, a.result, b.result)


async def _wait(ctx: ApiContext, job_id: str) -> Job | None:
    deadline = time.monotonic() + ctx.settings.run_timeout_s
    while True:
        job = await run_in_threadpool(ctx.jobs.get, job_id)
        remaining = deadline - time.monotonic()
        if job is None or job.terminal or remaining <= 0:
            return job
        await ctx.watcher.wait_change(job.id, job.updated_at, min(remaining, 15.0))
