"""Webhook deliveries through the API: every message, every attempt, and replay; and the
signing secret (admin keys only). A member key sees its project's messages only."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from limner.api.context import ApiContext, get_ctx
from limner.api.tenancy import Caller, caller_of, require_admin, visible_job
from limner.errors import Conflict, InvalidInput, NotFound
from limner.store.deliveries import Deliveries, Delivery
from limner.store.outbox import DELIVERY_STATUSES
from limner.webhooks.service import signing_secrets

router = APIRouter(tags=["webhooks"])
Ctx = Annotated[ApiContext, Depends(get_ctx)]


def with_attempts(deliveries: Deliveries, delivery: Delivery) -> dict[str, Any]:
    return {**delivery.as_dict(), "attempt_log": [a.as_dict() for a in deliveries.attempts(delivery.id)]}


def _listing(
    deliveries: Deliveries, job_id: str | None, status: str | None, limit: int, project: str | None
) -> dict[str, Any]:
    found = deliveries.find(job_id=job_id, status=status, limit=limit, project=project)
    return {"deliveries": [with_attempts(deliveries, d) for d in found]}


async def _visible_delivery(ctx: ApiContext, caller: Caller, delivery_id: str) -> Delivery:
    delivery = await run_in_threadpool(ctx.deliveries.get, delivery_id)
    job = await run_in_threadpool(ctx.jobs.get, delivery.job_id) if delivery is not None else None
    if delivery is None or (not caller.admin and (job is None or not caller.sees_project(job.project))):
        raise NotFound(f"no webhook delivery {delivery_id}", loc=("path", "delivery_id"))
    return delivery


@router.get("/v1/queue/{owner}/{name}/requests/{request_id}/webhooks")
async def request_webhooks(owner: str, name: str, request_id: str, request: Request, ctx: Ctx) -> dict[str, Any]:
    """The job's webhook messages (newest first), each with its attempts."""
    job = visible_job(
        caller_of(request), await run_in_threadpool(ctx.jobs.get, request_id), request_id, f"{owner}/{name}"
    )
    body = await run_in_threadpool(_listing, ctx.deliveries, request_id, None, 500, None)
    return {"request_id": request_id, "webhook_url": job.webhook_url, "events": job.webhook_events, **body}


@router.get("/v1/webhooks/deliveries")
async def list_deliveries(
    request: Request,
    ctx: Ctx,
    request_id: Annotated[str | None, Query(description="Only this request's messages.")] = None,
    status: Annotated[str | None, Query(description=f"One of {', '.join(DELIVERY_STATUSES)}.")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> dict[str, Any]:
    """Webhook messages, newest first, each with its attempts."""
    if status is not None and status not in DELIVERY_STATUSES:
        raise InvalidInput(f"status must be one of {', '.join(DELIVERY_STATUSES)}", loc=("query", "status"))
    project = caller_of(request).project_filter
    result: dict[str, Any] = await run_in_threadpool(_listing, ctx.deliveries, request_id, status, limit, project)
    return result


@router.get("/v1/webhooks/deliveries/{delivery_id}")
async def get_delivery(delivery_id: str, request: Request, ctx: Ctx) -> dict[str, Any]:
    delivery = await _visible_delivery(ctx, caller_of(request), delivery_id)
    result: dict[str, Any] = await run_in_threadpool(with_attempts, ctx.deliveries, delivery)
    return result


@router.post("/v1/webhooks/deliveries/{delivery_id}/replay", status_code=202)
async def replay_delivery(delivery_id: str, request: Request, ctx: Ctx) -> JSONResponse:
    """Send the message again now (same webhook-id, a fresh retry schedule)."""
    await _visible_delivery(ctx, caller_of(request), delivery_id)
    replayed = await run_in_threadpool(ctx.deliveries.replay, delivery_id)
    if replayed is None:
        raise Conflict(f"webhook delivery {delivery_id} is being attempted right now", loc=("path", "delivery_id"))
    return JSONResponse(status_code=202, content=replayed.as_dict())


@router.get("/v1/webhooks/secret")
async def webhook_secret(request: Request, ctx: Ctx) -> dict[str, Any]:
    """The signing secret(s) receivers verify with, current first (admin keys only)."""
    require_admin(caller_of(request), "the webhook signing secret")
    secrets = await run_in_threadpool(signing_secrets, ctx.settings, ctx.engines)
    return {"secrets": list(secrets), "source": "LIMNER_WEBHOOK_SECRET" if ctx.settings.webhook_secret else "store"}
