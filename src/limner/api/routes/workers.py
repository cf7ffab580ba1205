"""``GET /v1/workers``: the workers attached to this store, what they hold and what they run."""

from __future__ import annotations

import dataclasses
import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool

from limner.api.context import ApiContext, get_ctx
from limner.api.tenancy import caller_of, require_admin

router = APIRouter(tags=["workers"])


@router.get("/v1/workers")
async def list_workers(request: Request, ctx: Annotated[ApiContext, Depends(get_ctx)]) -> dict[str, Any]:
    """The workers, their devices, models and current jobs (admin keys only)."""
    require_admin(caller_of(request), "/v1/workers")
    window = max(3 * min(ctx.settings.heartbeat_s, ctx.settings.lease_s / 3), 1.0)
    workers = await run_in_threadpool(ctx.workers.active, window)
    now = time.time()
    return {"workers": [{**dataclasses.asdict(w), "heartbeat_age_s": round(now - w.heartbeat_at, 3)} for w in workers]}
