"""The catalog: which models this server offers, with each one's input schema, the limits of
its task, and whether this server can run it (``available``)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from starlette.concurrency import run_in_threadpool

from limner.api.context import ApiContext, get_ctx
from limner.catalog.availability import Availability, availability
from limner.catalog.entry import CatalogEntry
from limner.routing.spec import RouteEntry
from limner.workflows.spec import WorkflowEntry

router = APIRouter(tags=["models"])
Ctx = Annotated[ApiContext, Depends(get_ctx)]


def describe(entry: CatalogEntry | WorkflowEntry, available: Availability) -> dict[str, Any]:
    return {**entry.public(), "available": available.as_dict(), "input_schema": entry.input_schema()}


def describe_route(ctx: ApiContext, route: RouteEntry, models: dict[str, Availability]) -> dict[str, Any]:
    """A route as a model: its task, its targets, and the schema every target can honour."""
    entries = [ctx.catalog.get(t.model) for t in route.targets]
    ok = [t.model for t in route.targets if (a := models.get(t.model)) is None or a.ok]
    reason = f"{len(ok)} of {len(entries)} targets available" if ok else "no target is available"
    available = Availability(bool(ok), reason)
    return {**route.public(), "available": available.as_dict(), "input_schema": route.input_schema_for(entries)}


def workflow_availability(workflow: WorkflowEntry, models: dict[str, Availability]) -> Availability:
    """A workflow runs where every step's model does."""
    for step in workflow.steps:
        model = models.get(step.model)
        if model is not None and not model.ok:
            return Availability(False, f"step {step.id}: {step.model} cannot run here: {model.reason}")
    return Availability(True, f"{len(workflow.steps)} steps, every model available")


def availabilities(ctx: ApiContext, entries: list[CatalogEntry]) -> dict[str, Availability]:
    """Each entry's availability as this server sees it: through its attached workers' own
    reports (their packages, devices, weights) when it has workers, else its own checks."""
    window = max(3 * min(ctx.settings.heartbeat_s, ctx.settings.lease_s / 3), 1.0)
    workers = ctx.workers.active(window)
    devices = [w.device for w in workers]
    reports = [(w.stats or {}).get("unavailable") or {} for w in workers]
    return {
        e.id: availability(e, ctx.hub, ctx.hub_probe, devices, [report.get(e.id) for report in reports])
        for e in entries
    }


@router.get("/v1/models")
async def list_models(
    ctx: Ctx,
    task: Annotated[str | None, Query(description="Only models of this task.")] = None,
    available: Annotated[bool | None, Query(description="Only models this server can (true) or cannot run.")] = None,
) -> dict[str, Any]:
    status = await run_in_threadpool(availabilities, ctx, list(ctx.catalog))
    listed: list[tuple[CatalogEntry | WorkflowEntry, Availability]] = [(e, status[e.id]) for e in ctx.catalog]
    listed += [(w, workflow_availability(w, status)) for w in ctx.catalog.workflows()]
    models = [
        describe(e, a)
        for e, a in sorted(listed, key=lambda pair: pair[0].id)
        if (task is None or e.task == task) and (available is None or a.ok == available)
    ]
    for route in ctx.catalog.routes():
        shown = describe_route(ctx, route, status)
        if (task is None or route.task == task) and (available is None or shown["available"]["ok"] == available):
            models.append(shown)
    models.sort(key=lambda m: str(m["id"]))
    return {"models": models}


@router.get("/v1/models/{owner}/{name}")
async def show_model(owner: str, name: str, ctx: Ctx) -> dict[str, Any]:
    target = ctx.catalog.callable(f"{owner}/{name}")
    if isinstance(target, RouteEntry):
        entries = [ctx.catalog.get(t.model) for t in target.targets]
        status = await run_in_threadpool(availabilities, ctx, entries)
        return describe_route(ctx, target, status)
    if isinstance(target, WorkflowEntry):
        steps = [ctx.catalog.get(s.model) for s in target.steps]
        status = await run_in_threadpool(availabilities, ctx, steps)
        return describe(target, workflow_availability(target, status))
    status = await run_in_threadpool(availabilities, ctx, [target])
    return describe(target, status[target.id])
