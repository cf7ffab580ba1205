"""What the OpenAI-compatible routes share: model names, running a job to its end, its files.

OpenAI's routes answer with the finished output, so these submit an ordinary limner job (it is
durable, listed, and has a request id like any other: the ``X-Limner-Request-Id`` header) and
wait for it, up to ``run_timeout_s``.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from limner.api.accept import accept
from limner.api.context import ApiContext
from limner.api.views import failure
from limner.catalog import CatalogEntry
from limner.errors import InvalidInput, JobTimeout, RequestNotFound, UnknownModel
from limner.storage.base import key_of
from limner.store.records import Job
from limner.store.states import SUCCEEDED


def resolve_model(ctx: ApiContext, model: str | None, tasks: tuple[str, ...], param: str = "model") -> CatalogEntry:
    """The catalog entry a request's ``model`` names (a model id or an alias from
    LIMNER_MODEL_ALIASES), which must serve one of ``tasks``."""
    fitting = sorted(e.id for e in ctx.catalog if e.task in tasks)
    if not model:
        raise InvalidInput(
            f"{param} is required: a limner model id ({', '.join(fitting[:6])}…) or an alias (LIMNER_MODEL_ALIASES)",
            loc=("body", param),
        )
    model_id = ctx.settings.aliases.get(model, model)
    try:
        entry = ctx.catalog.get(model_id)
    except UnknownModel:
        raise InvalidInput(
            f"{param}={model!r} is neither a model of this server nor an alias; models for this route: "
            f"{', '.join(fitting) or 'none'}",
            loc=("body", param),
        ) from None
    if entry.task not in tasks:
        raise InvalidInput(
            f"{param}={model!r} is a {entry.task} model; this route needs {' or '.join(tasks)}: "
            f"{', '.join(fitting) or 'none'}",
            loc=("body", param),
        )
    return entry


async def run_job(ctx: ApiContext, request: Request, entry: CatalogEntry, body: dict[str, Any]) -> Job:
    """Submit ``body`` as ``entry``'s input and wait for the job's end; its result or its error."""
    submitted = await accept(ctx, request, entry.id, body)
    deadline = time.monotonic() + ctx.settings.run_timeout_s
    while True:
        job = await run_in_threadpool(ctx.jobs.get, submitted.job_id)
        if job is None:
            raise RequestNotFound(f"request {submitted.job_id} vanished")
        if job.terminal:
            if job.status != SUCCEEDED:
                raise failure(job)
            return job
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise JobTimeout(
                f"request {job.id} is still {job.status} after {ctx.settings.run_timeout_s:g} s; "
                f"its result will be at /v1/queue/{entry.id}/requests/{job.id}",
                loc=("request_id",),
            )
        await ctx.watcher.wait_change(job.id, job.updated_at, min(remaining, 15.0))


def output_keys(job: Job, output: str) -> list[tuple[str, dict[str, Any]]]:
    """(storage key, file entry) of each file under ``output`` in the job's result."""
    out: list[tuple[str, dict[str, Any]]] = []
    for item in (job.result or {}).get(output, []):
        key = key_of(item["url"]) if isinstance(item, dict) and isinstance(item.get("url"), str) else None
        if key:
            out.append((key, item))
    return out
