"""``GET /v1/cache``: what the result cache holds and saved; ``DELETE /v1/cache/{owner}/{name}``:
an operator's purge of one model's entries (their files stay with the jobs that made them)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool

from limner.api.context import ApiContext, get_ctx
from limner.api.tenancy import caller_of, require_admin

router = APIRouter(tags=["cache"])
Ctx = Annotated[ApiContext, Depends(get_ctx)]


@router.get("/v1/cache")
async def cache_stats(request: Request, ctx: Ctx) -> dict[str, Any]:
    """Entries, hits and compute seconds saved, per model (admin keys only: it pools projects)."""
    require_admin(caller_of(request), "/v1/cache")
    return {"models": await run_in_threadpool(ctx.cache.stats)}


@router.delete("/v1/cache/{owner}/{name}")
async def purge(owner: str, name: str, request: Request, ctx: Ctx) -> dict[str, Any]:
    """Forget every cached result of a model: later requests run it again (admin keys only)."""
    require_admin(caller_of(request), "purging the cache")
    model_id = f"{owner}/{name}"
    ctx.catalog.get(model_id)
    purged = await run_in_threadpool(ctx.cache.purge, model_id)
    return {"model_id": model_id, "purged": purged}
