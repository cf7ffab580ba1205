"""``GET /v1/requests``: recent jobs, newest first, filterable, with cursor pagination."""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from starlette.concurrency import run_in_threadpool

from limner.api.context import ApiContext, get_ctx
from limner.api.tenancy import caller_of
from limner.api.views import summary
from limner.errors import InvalidInput
from limner.store.jobs import JobFilter
from limner.store.states import PRIORITIES, STATUSES
from limner.tasks import TASK_IDS, WORKFLOW_TASK

router = APIRouter(tags=["requests"])
FAL_STATUSES = {"IN_QUEUE": ("queued",), "IN_PROGRESS": ("running",), "COMPLETED": ("succeeded", "failed", "canceled")}


def encode_cursor(created_at: float, job_id: str) -> str:
    return base64.urlsafe_b64encode(f"{created_at!r}|{job_id}".encode()).decode()


def decode_cursor(cursor: str) -> tuple[float, str]:
    try:
        stamp, job_id = base64.urlsafe_b64decode(cursor.encode()).decode().split("|", 1)
        return float(stamp), job_id
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidInput("cursor is not one this server gave out", loc=("query", "cursor")) from None


@router.get("/v1/requests")
async def list_requests(
    request: Request,
    ctx: Annotated[ApiContext, Depends(get_ctx)],
    status: Annotated[
        str | None, Query(description="queued, running, succeeded, failed, canceled or a fal status")
    ] = None,
    model: Annotated[str | None, Query(description="A model id, owner/name.")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(description="next_cursor from the previous page.")] = None,
    created_after: Annotated[float | None, Query(description="Only jobs created at or after (unix time).")] = None,
    created_before: Annotated[float | None, Query(description="Only jobs created before (unix time).")] = None,
    priority: Annotated[str | None, Query(description="high, normal or low.")] = None,
    task: Annotated[str | None, Query(description="A task id, e.g. text-to-image.")] = None,
    key: Annotated[str | None, Query(description="Only jobs submitted with this API key id.")] = None,
    parent: Annotated[str | None, Query(description="Only the step jobs of this workflow request.")] = None,
    top_level: Annotated[bool, Query(description="Leave out workflow steps' jobs.")] = False,
    batch: Annotated[str | None, Query(description="Only the jobs of this batch's rows.")] = None,
) -> dict[str, Any]:
    statuses: tuple[str, ...] | None = None
    if status:
        if status in STATUSES:
            statuses = (status,)
        elif status.upper() in FAL_STATUSES:
            statuses = FAL_STATUSES[status.upper()]
        else:
            raise InvalidInput(
                f"status must be one of {', '.join(STATUSES)} or IN_QUEUE, IN_PROGRESS, COMPLETED",
                loc=("query", "status"),
            )
    if priority is not None and priority not in PRIORITIES:
        raise InvalidInput("priority must be one of high, normal, low", loc=("query", "priority"))
    if task is not None and task not in (*TASK_IDS, WORKFLOW_TASK):
        raise InvalidInput(f"task must be one of {', '.join(TASK_IDS)}", loc=("query", "task"))
    filters = JobFilter(
        created_after=created_after,
        created_before=created_before,
        priority=priority,
        task=task,
        api_key_id=key,
        project=caller_of(request).project_filter,
        parent_id=parent,
        top_level=top_level,
        batch_id=batch,
    )
    after = decode_cursor(cursor) if cursor else None
    page = await run_in_threadpool(
        ctx.jobs.list_jobs, statuses=statuses, model_id=model, limit=limit + 1, before=after, filters=filters
    )
    base = ctx.base_url(request)
    more = len(page) > limit
    page = page[:limit]
    return {
        "requests": [summary(job, base) for job in page],
        "next_cursor": encode_cursor(page[-1].created_at, page[-1].id) if more and page else None,
    }
