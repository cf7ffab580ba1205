"""``POST /v1/run/{owner}/{name}``: the same job as the queue route, waited for."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from limner.api.accept import accept
from limner.api.context import ApiContext, get_ctx
from limner.api.routes.queue import SUBMIT_DOC, result_response
from limner.api.views import queue_urls
from limner.errors import JobTimeout, RequestNotFound

router = APIRouter(tags=["run"])


@router.post("/v1/run/{owner}/{name}", openapi_extra=SUBMIT_DOC)
async def run(owner: str, name: str, request: Request, ctx: Annotated[ApiContext, Depends(get_ctx)]) -> JSONResponse:
    """Submit and wait (up to run_timeout_s). The job is durable like a queued one: if this
    call times out or the client goes away, the X-Limner-Request-Id header and the queue
    routes still lead to its result."""
    model_id = f"{owner}/{name}"
    submitted = await accept(ctx, request, model_id)
    deadline = time.monotonic() + ctx.settings.run_timeout_s
    base = ctx.base_url(request)
    while True:
        job = await run_in_threadpool(ctx.jobs.get, submitted.job_id)
        if job is None:
            raise RequestNotFound(f"request {submitted.job_id} vanished")
        if job.terminal:
            return result_response(ctx, job, base)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            urls = queue_urls(base, job.id, model_id)
            raise JobTimeout(
                f"request {job.id} is still {job.status} after {ctx.settings.run_timeout_s:g} s; "
                f"follow it at {urls['status_url']}",
                loc=("request_id",),
            )
        await ctx.watcher.wait_change(job.id, job.updated_at, min(remaining, 15.0))
