"""``GET /v1/cache``: what the result cache holds and saved; ``DELETE /v1/cache/{owner}/{name}``:
an operator's purge of one model's entries (their files stay with the jobs that made them)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from starlette.concurrency import run_in_threadpool

from limner.api.context import ApiContext, get_ctx

router = APIRouter(tags=["cache"])
Ctx = Annotated[ApiContext, Depends(get_ctx)]


@router.get("/v1/cache")
async def cache_stats(ctx: Ctx) -> dict[str, Any]:
    """Entries, hits and compute seconds saved, per model."""
    return {"models": await run_in_threadpool(ctx.obs.cache.stats)}


@router.delete("/v1/cache/{owner}/{name}")
async def purge(owner: str, name: str, ctx: Ctx) -> dict[str, Any]:
    """Forget every cached result of a model: later requests run it again."""
    model_id = f"{owner}/{name}"
    ctx.catalog.get(model_id)
    purged = await run_in_threadpool(ctx.obs.cache.purge, model_id)
    return {"model_id": model_id, "purged": purged}
