"""``GET /v1/usage`` (jobs, outputs, compute, cost and cache savings by model, key and day) and
``POST /v1/estimate/{owner}/{name}`` (what a request would cost, from recent runs)."""

from __future__ import annotations

import functools
import statistics
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from starlette.concurrency import run_in_threadpool

from limner.api.accept import read_json
from limner.api.context import ApiContext, get_ctx
from limner.api.tenancy import caller_of
from limner.cache import keys
from limner.catalog.inputs import parse_input
from limner.errors import InvalidInput
from limner.store.usage import GROUPS

router = APIRouter(tags=["usage"])
Ctx = Annotated[ApiContext, Depends(get_ctx)]


@router.get("/v1/usage")
async def usage(
    request: Request,
    ctx: Ctx,
    group_by: Annotated[str, Query(description="Comma-separated: model, key, day, project.")] = "model,day",
    since: Annotated[float | None, Query(description="Jobs finished at or after (epoch seconds).")] = None,
    until: Annotated[float | None, Query(description="Jobs finished before (epoch seconds).")] = None,
    model: Annotated[str | None, Query(description="Only this model.")] = None,
    key: Annotated[str | None, Query(description="Only this API key id.")] = None,
) -> dict[str, Any]:
    """Totals per group: jobs (succeeded, failed, canceled), outputs, compute seconds, cost in
    USD, cache hits and the compute seconds and USD they saved. A member key sees its own
    project's usage only."""
    groups = [g.strip() for g in group_by.split(",") if g.strip()]
    unknown = [g for g in groups if g not in GROUPS]
    if unknown:
        raise InvalidInput(
            f"group_by takes model, key, day and project (got {unknown[0]!r})", loc=("query", "group_by")
        )
    await run_in_threadpool(ctx.usage.record_new)
    filters: dict[str, Any] = {
        "since": since,
        "until": until,
        "model_id": model,
        "api_key_id": key,
        "project": caller_of(request).project_filter,
    }
    rows = await run_in_threadpool(ctx.usage.aggregate, groups, **filters)
    totals = await run_in_threadpool(ctx.usage.aggregate, [], **filters)
    return {"group_by": groups, "usage": rows, "totals": totals[0] if totals else {}}


@router.post("/v1/estimate/{owner}/{name}")
async def estimate(owner: str, name: str, request: Request, ctx: Ctx) -> dict[str, Any]:
    """Compute seconds and cost of a request, from recent runs of this model: the median of
    runs at the same size and steps, else scaled by pixels x steps from the others."""
    entry = ctx.catalog.get(f"{owner}/{name}")
    body = await read_json(request)
    parsed = parse_input(entry, body).model_dump(mode="json")
    width, height, steps = parsed.get("width"), parsed.get("height"), parsed.get("num_inference_steps")
    outputs = int(parsed.get("num_outputs") or 1)
    caller = caller_of(request)
    await run_in_threadpool(ctx.usage.record_new)
    runs = await run_in_threadpool(ctx.usage.recent_runs, entry.id, 200, caller.project_filter)
    answer: dict[str, Any] = {"model_id": entry.id, "outputs": outputs, "samples": 0}
    if parsed.get("seed") is not None and entry.cache.mode != "off":
        hit = await run_in_threadpool(
            functools.partial(
                ctx.cache.find,
                entry.id,
                keys.revision_key(entry),
                scope=keys.scope_of(entry, caller.project),
                exact_key=keys.exact_key(entry, parsed),
            )
        )
        if hit is not None:
            return {**answer, "compute_s": 0.0, "cost_usd": 0.0, "basis": "exact cache hit", "cache_hit": True}
    per_output, basis, samples = _per_output(runs, width, height, steps)
    prices = [r["cost_usd"] / r["compute_s"] * 3600 for r in runs if r["compute_s"] > 0]
    price = statistics.median(prices) if prices else ctx.settings.price_for("*")
    if entry.runtime.usd_per_gpu_hour is not None:
        price = entry.runtime.usd_per_gpu_hour
    if per_output is None:
        return {**answer, "compute_s": None, "cost_usd": None, "basis": "no runs of this model yet"}
    compute = per_output * outputs
    return {
        **answer,
        "samples": samples,
        "compute_s": round(compute, 4),
        "compute_s_per_output": round(per_output, 4),
        "usd_per_gpu_hour": price,
        "cost_usd": round(compute * price / 3600, 6),
        "basis": basis,
    }


def _per_output(runs: list[dict[str, Any]], width: Any, height: Any, steps: Any) -> tuple[float | None, str, int]:
    pixels = width * height if isinstance(width, int) and isinstance(height, int) else None
    same = [r["compute_s"] / r["outputs"] for r in runs if r["pixels"] == pixels and r["steps"] == steps]
    if same:
        return statistics.median(same), "median of recent runs at the same size and steps", len(same)
    scalable = [r for r in runs if r["pixels"] and r["steps"]]
    if pixels and isinstance(steps, int) and scalable:
        rates = [r["compute_s"] / r["outputs"] / (r["pixels"] * r["steps"]) for r in scalable]
        return statistics.median(rates) * pixels * steps, "recent runs scaled by pixels x steps", len(scalable)
    if runs:
        return statistics.median(r["compute_s"] / r["outputs"] for r in runs), "median of recent runs", len(runs)
    return None, "", 0
