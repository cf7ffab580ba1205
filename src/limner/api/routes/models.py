"""The catalog: which models this server offers, with each one's input schema and limits."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from limner.api.context import ApiContext, get_ctx
from limner.catalog.entry import CatalogEntry

router = APIRouter(tags=["models"])
Ctx = Annotated[ApiContext, Depends(get_ctx)]


def describe(entry: CatalogEntry) -> dict[str, Any]:
    return {**entry.public(), "input_schema": entry.input_schema()}


@router.get("/v1/models")
def list_models(
    ctx: Ctx, task: Annotated[str | None, Query(description="Only models of this task.")] = None
) -> dict[str, Any]:
    models = [describe(e) for e in ctx.catalog if task is None or e.task == task]
    return {"models": models}


@router.get("/v1/models/{owner}/{name}")
def show_model(owner: str, name: str, ctx: Ctx) -> dict[str, Any]:
    return describe(ctx.catalog.get(f"{owner}/{name}"))
