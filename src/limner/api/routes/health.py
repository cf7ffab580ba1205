"""Liveness and readiness."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from limner.api.context import ApiContext, get_ctx

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is up and answering."""
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(ctx: Annotated[ApiContext, Depends(get_ctx)]) -> JSONResponse:
    """Ready when the job store answers and at least one worker sent a recent heartbeat."""
    checks: dict[str, Any] = {}
    ready = True
    try:
        await run_in_threadpool(ctx.jobs.ping)
        checks["store"] = "ok"
    except Exception as exc:
        checks["store"] = f"unreachable: {type(exc).__name__}"
        ready = False
    if checks["store"] == "ok":
        window = max(3 * min(ctx.settings.heartbeat_s, ctx.settings.lease_s / 3), 1.0)
        workers = await run_in_threadpool(ctx.workers.active, window)
        checks["workers"] = len(workers)
        if not workers:
            ready = False
    return JSONResponse(
        status_code=200 if ready else 503, content={"status": "ready" if ready else "not ready", **checks}
    )
