"""One feed of status objects per job, shared by the SSE stream and the WebSocket.

It yields the status body (the same object the status route answers) each time it changes,
ending with the terminal one. While a job is queued it looks again every second even without
a change to the job, because its queue position moves as other jobs are claimed.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from starlette.concurrency import run_in_threadpool

from limner.api.context import ApiContext
from limner.api.views import render_refs, status_body
from limner.runtime.checkpoints import checkpoint_entry
from limner.store.records import Job
from limner.store.states import QUEUED
from limner.tasks import WORKFLOW_TASK
from limner.workflows.coordinator import step_summaries

TRAINING_TASK = "lora-training"
QUEUED_RECHECK_S = 1.0
RUNNING_RECHECK_S = 15.0


async def render_status(ctx: ApiContext, job: Job, base: str, with_logs: bool) -> dict[str, Any]:
    position = await run_in_threadpool(ctx.jobs.queue_position, job) if job.status == QUEUED else 0
    logs = await run_in_threadpool(ctx.jobs.logs, job.id) if with_logs else None
    body = status_body(job, base, position=position, logs=logs)
    if "preview_url" in body["progress"]:  # a step preview: stored, served like any file
        body["progress"]["preview_url"] = render_refs(body["progress"]["preview_url"], ctx.storage, base)
    if job.task == WORKFLOW_TASK:
        body["steps"] = step_summaries(await run_in_threadpool(ctx.jobs.children, job.id))
    if job.task == TRAINING_TASK:  # each checkpoint appears as soon as it is made
        made = await run_in_threadpool(ctx.loras.checkpoints, job.id)
        body["checkpoints"] = render_refs([checkpoint_entry(c) for c in made], ctx.storage, base)
    return body


async def status_updates(ctx: ApiContext, job: Job, base: str, with_logs: bool) -> AsyncIterator[str]:
    """JSON texts of the job's status, one per change, the terminal one last."""
    current: Job | None = job
    last = ""
    while current is not None:
        body = await render_status(ctx, current, base, with_logs)
        text = json.dumps(body, sort_keys=True)
        if text != last:
            last = text
            yield text
        if current.terminal:
            return
        timeout = QUEUED_RECHECK_S if current.status == QUEUED else RUNNING_RECHECK_S
        await ctx.watcher.wait_change(current.id, current.updated_at, timeout)
        current = await run_in_threadpool(ctx.jobs.get, current.id)
