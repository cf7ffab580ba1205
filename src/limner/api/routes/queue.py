"""The queue protocol (fal's): submit, status, status stream, result, cancel."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from sse_starlette import EventSourceResponse
from starlette.concurrency import run_in_threadpool

from limner.api.accept import accept
from limner.api.context import ApiContext, get_ctx
from limner.api.job_options import OPTIONS_DOC
from limner.api.status_feed import render_status, status_updates
from limner.api.tenancy import caller_of, visible_job
from limner.api.views import expired, failure, queue_urls, render_refs
from limner.errors import NotReady, RequestNotFound
from limner.store.records import Job
from limner.store.states import SUCCEEDED

router = APIRouter(tags=["queue"])
Ctx = Annotated[ApiContext, Depends(get_ctx)]

SUBMIT_DOC: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "description": "The model's input; GET /v1/models/{owner}/{name} gives its JSON Schema.",
                }
            }
        },
    },
    "parameters": [
        {
            "name": "Idempotency-Key",
            "in": "header",
            "required": False,
            "schema": {"type": "string", "maxLength": 255},
            "description": "Same key and body return the same request; same key, different body is 409.",
        },
        {
            "name": "X-Limner-Priority",
            "in": "header",
            "required": False,
            "schema": {"type": "string", "enum": ["high", "normal", "low"]},
        },
        *OPTIONS_DOC,
    ],
}


@router.post("/v1/queue/{owner}/{name}", status_code=202, openapi_extra=SUBMIT_DOC)
async def submit(owner: str, name: str, request: Request, ctx: Ctx) -> JSONResponse:
    """Queue a job; answers once it is durable, with the URLs to follow it."""
    model_id = f"{owner}/{name}"
    submitted = await accept(ctx, request, model_id)
    body = queue_urls(ctx.base_url(request), submitted.job_id, model_id)
    return JSONResponse(status_code=202, content=body, headers={"X-Limner-Request-Id": submitted.job_id})


async def load_job(ctx: ApiContext, request: Request, owner: str, name: str, request_id: str) -> Job:
    """The job, if it is this model's and the caller's project may see it; else a 404."""
    job = await run_in_threadpool(ctx.jobs.get, request_id)
    return visible_job(caller_of(request), job, request_id, f"{owner}/{name}")


@router.get("/v1/queue/{owner}/{name}/requests/{request_id}/status")
async def status(
    owner: str,
    name: str,
    request_id: str,
    request: Request,
    ctx: Ctx,
    logs: Annotated[bool, Query(description="Include the job's log lines.")] = False,
) -> JSONResponse:
    """202 while queued or running, 200 once finished (succeeded, failed or canceled)."""
    job = await load_job(ctx, request, owner, name, request_id)
    body = await render_status(ctx, job, ctx.base_url(request), logs)
    return JSONResponse(status_code=200 if job.terminal else 202, content=body)


@router.get("/v1/queue/{owner}/{name}/requests/{request_id}/status/stream")
async def status_stream(
    owner: str,
    name: str,
    request_id: str,
    request: Request,
    ctx: Ctx,
    logs: Annotated[bool, Query(description="Include the job's log lines.")] = False,
) -> EventSourceResponse:
    """Server-Sent Events: one status object per change, closing after the terminal one."""
    job = await load_job(ctx, request, owner, name, request_id)
    base = ctx.base_url(request)

    async def events() -> AsyncIterator[dict[str, str]]:
        async for text in status_updates(ctx, job, base, logs):
            yield {"data": text}

    return EventSourceResponse(events(), ping=15)


@router.get("/v1/queue/{owner}/{name}/requests/{request_id}")
async def result(owner: str, name: str, request_id: str, request: Request, ctx: Ctx) -> JSONResponse:
    """The job's result once it succeeded; its error once it failed; 400 before that."""
    job = await load_job(ctx, request, owner, name, request_id)
    return result_response(ctx, job, ctx.base_url(request))


def result_response(ctx: ApiContext, job: Job, base: str) -> JSONResponse:
    if not job.terminal:
        raise NotReady(f"request {job.id} is still {job.status}; its result is not ready", loc=("request_id",))
    if job.expired(time.time()):
        raise expired(job)
    if job.status != SUCCEEDED:
        raise failure(job)
    body = render_refs(job.result or {}, ctx.storage, base)
    return JSONResponse(content=body, headers={"X-Limner-Request-Id": job.id})


@router.put("/v1/queue/{owner}/{name}/requests/{request_id}/cancel")
async def cancel(owner: str, name: str, request_id: str, request: Request, ctx: Ctx) -> JSONResponse:
    """A queued job never runs; a running one stops at its next step."""
    await load_job(ctx, request, owner, name, request_id)
    outcome = await run_in_threadpool(ctx.jobs.cancel, request_id)
    if outcome is None:
        raise RequestNotFound(f"no request {request_id}", loc=("path", "request_id"))
    code = 202 if outcome == "CANCELLATION_REQUESTED" else 400
    return JSONResponse(status_code=code, content={"status": outcome})
