"""Webhook deliveries through the API: every message, every attempt, and replay."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from limner.api.context import ApiContext, get_ctx
from limner.errors import Conflict, InvalidInput, NotFound, RequestNotFound
from limner.store.deliveries import Deliveries, Delivery
from limner.store.outbox import DELIVERY_STATUSES

router = APIRouter(tags=["webhooks"])
Ctx = Annotated[ApiContext, Depends(get_ctx)]


def with_attempts(deliveries: Deliveries, delivery: Delivery) -> dict[str, Any]:
    return {**delivery.as_dict(), "attempt_log": [a.as_dict() for a in deliveries.attempts(delivery.id)]}


def _listing(deliveries: Deliveries, job_id: str | None, status: str | None, limit: int) -> dict[str, Any]:
    return {
        "deliveries": [with_attempts(deliveries, d) for d in deliveries.find(job_id=job_id, status=status, limit=limit)]
    }


@router.get("/v1/queue/{owner}/{name}/requests/{request_id}/webhooks")
async def request_webhooks(owner: str, name: str, request_id: str, ctx: Ctx) -> dict[str, Any]:
    """The job's webhook messages (newest first), each with its attempts."""
    job = await run_in_threadpool(ctx.jobs.get, request_id)
    if job is None or job.model_id != f"{owner}/{name}":
        raise RequestNotFound(f"no request {request_id} for model {owner}/{name}", loc=("path", "request_id"))
    body = await run_in_threadpool(_listing, ctx.integration.deliveries, request_id, None, 500)
    return {"request_id": request_id, "webhook_url": job.webhook_url, "events": job.webhook_events, **body}


@router.get("/v1/webhooks/deliveries")
async def list_deliveries(
    ctx: Ctx,
    request_id: Annotated[str | None, Query(description="Only this request's messages.")] = None,
    status: Annotated[str | None, Query(description=f"One of {', '.join(DELIVERY_STATUSES)}.")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> dict[str, Any]:
    """Webhook messages, newest first, each with its attempts."""
    if status is not None and status not in DELIVERY_STATUSES:
        raise InvalidInput(f"status must be one of {', '.join(DELIVERY_STATUSES)}", loc=("query", "status"))
    result: dict[str, Any] = await run_in_threadpool(_listing, ctx.integration.deliveries, request_id, status, limit)
    return result


@router.get("/v1/webhooks/deliveries/{delivery_id}")
async def get_delivery(delivery_id: str, ctx: Ctx) -> dict[str, Any]:
    deliveries = ctx.integration.deliveries
    delivery = await run_in_threadpool(deliveries.get, delivery_id)
    if delivery is None:
        raise NotFound(f"no webhook delivery {delivery_id}", loc=("path", "delivery_id"))
    result: dict[str, Any] = await run_in_threadpool(with_attempts, deliveries, delivery)
    return result


@router.post("/v1/webhooks/deliveries/{delivery_id}/replay", status_code=202)
async def replay_delivery(delivery_id: str, ctx: Ctx) -> JSONResponse:
    """Send the message again now (same webhook-id, a fresh retry schedule)."""
    deliveries = ctx.integration.deliveries
    if await run_in_threadpool(deliveries.get, delivery_id) is None:
        raise NotFound(f"no webhook delivery {delivery_id}", loc=("path", "delivery_id"))
    replayed = await run_in_threadpool(deliveries.replay, delivery_id)
    if replayed is None:
        raise Conflict(f"webhook delivery {delivery_id} is being attempted right now", loc=("path", "delivery_id"))
    return JSONResponse(status_code=202, content=replayed.as_dict())
