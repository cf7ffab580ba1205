"""``GET /metrics`` (Prometheus text format) and ``GET /v1/quality`` (quality windows)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.concurrency import run_in_threadpool

from limner.api.context import ApiContext, get_ctx
from limner.api.metrics import StoreCollector
from limner.api.tenancy import caller_of, require_admin
from limner.routing.metrics import RouteCollector

router = APIRouter(tags=["metrics"])
Ctx = Annotated[ApiContext, Depends(get_ctx)]


def registry_of(request: Request, ctx: ApiContext) -> CollectorRegistry:
    """One registry per app (never prometheus-client's global one), made on first scrape."""
    registry: CollectorRegistry | None = getattr(request.app.state, "metrics_registry", None)
    if registry is None:
        registry = CollectorRegistry()
        registry.register(StoreCollector(ctx))
        registry.register(RouteCollector(ctx.engines, ctx.catalog))
        request.app.state.metrics_registry = registry
    return registry


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request, ctx: Ctx) -> Response:
    """Server-wide figures across every project: admin keys only (while keys are on)."""
    require_admin(caller_of(request), "/metrics")
    registry = registry_of(request, ctx)
    body = await run_in_threadpool(generate_latest, registry)
    return Response(content=body, media_type=CONTENT_TYPE_LATEST)


@router.get("/v1/quality")
async def quality(
    request: Request,
    ctx: Ctx,
    model: Annotated[str | None, Query(description="Only this model.")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
) -> dict[str, Any]:
    """Quality windows, newest first: samples, mean CLIP score, FID, drift alert. They pool every
    project's outputs, so they are for admin keys only."""
    require_admin(caller_of(request), "/v1/quality")
    return {"windows": await run_in_threadpool(ctx.quality.windows, model, limit)}
