"""``GET /v1/routes``: every route, its targets, their health and cooldowns, recent p50 run
time and queue. Server-wide operational figures (they pool every project's jobs, as
``/metrics`` does), so admin keys only while keys are on."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool

from limner.api.context import ApiContext, get_ctx
from limner.api.tenancy import caller_of, require_admin
from limner.routing.view import routes_view

router = APIRouter(tags=["routes"])
Ctx = Annotated[ApiContext, Depends(get_ctx)]


@router.get("/v1/routes")
async def list_routes(request: Request, ctx: Ctx) -> dict[str, Any]:
    require_admin(caller_of(request), "/v1/routes")
    return {"routes": await run_in_threadpool(routes_view, ctx.engines, ctx.catalog)}
