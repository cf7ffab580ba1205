"""``/v1/loras``: the LoRAs training jobs made, in the caller's project.

A LoRA belongs to the project of the key that trained it: another project's LoRA is a 404 here
(and refused in a request's ``loras``), exactly as if it did not exist. Any checkpoint of its
training can be promoted to be the LoRA (the best one is not always the last): requests that
name the id then get that checkpoint's weights, and the LoRA's revision goes up by one.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from limner.api.context import ApiContext, get_ctx
from limner.api.tenancy import Caller, caller_of
from limner.api.views import render_refs
from limner.errors import NotFound
from limner.runtime.checkpoints import checkpoint_entry, lora_view
from limner.store.loras import Lora

router = APIRouter(tags=["loras"])
Ctx = Annotated[ApiContext, Depends(get_ctx)]


class Promote(BaseModel):
    model_config = ConfigDict(extra="forbid")

    step: int = Field(ge=1, description="The checkpoint's training step (see the LoRA's checkpoints).")


def _visible(caller: Caller, lora: Lora | None, lora_id: str) -> Lora:
    if lora is None or not caller.sees_project(lora.project):
        raise NotFound(f"no LoRA {lora_id}", loc=("path", "lora_id"))
    return lora


async def _detail(ctx: ApiContext, lora: Lora, base: str) -> dict[str, Any]:
    checkpoints = await run_in_threadpool(ctx.loras.checkpoints, lora.job_id)
    body = {**lora_view(lora), "created_at": lora.created_at, "updated_at": lora.updated_at}
    body["checkpoints"] = [checkpoint_entry(c) for c in checkpoints]
    return dict(render_refs(body, ctx.storage, base))


@router.get("/v1/loras")
async def list_loras(request: Request, ctx: Ctx, limit: Annotated[int, Query(ge=1, le=500)] = 100) -> dict[str, Any]:
    """The caller's project's LoRAs (every project's for an admin key), newest first."""
    caller = caller_of(request)
    found = await run_in_threadpool(ctx.loras.list, caller.project_filter, limit)
    base = ctx.base_url(request)
    return {"loras": [render_refs(lora_view(lora), ctx.storage, base) for lora in found]}


@router.get("/v1/loras/{lora_id}")
async def get_lora(lora_id: str, request: Request, ctx: Ctx) -> dict[str, Any]:
    """One LoRA, with every checkpoint of its training (each promotable)."""
    lora = _visible(caller_of(request), await run_in_threadpool(ctx.loras.get, lora_id), lora_id)
    return await _detail(ctx, lora, ctx.base_url(request))


@router.delete("/v1/loras/{lora_id}")
async def delete_lora(lora_id: str, request: Request, ctx: Ctx) -> dict[str, Any]:
    """Unregister the LoRA: requests can no longer name it (its files stay with its training
    job's result, and go with that result's retention)."""
    _visible(caller_of(request), await run_in_threadpool(ctx.loras.get, lora_id), lora_id)
    await run_in_threadpool(ctx.loras.delete, lora_id)
    return {"id": lora_id, "deleted": True}


@router.post("/v1/loras/{lora_id}/promote")
async def promote(lora_id: str, body: Promote, request: Request, ctx: Ctx) -> dict[str, Any]:
    """Make one of the training's checkpoints be this LoRA (revision + 1)."""
    _visible(caller_of(request), await run_in_threadpool(ctx.loras.get, lora_id), lora_id)
    promoted = await run_in_threadpool(ctx.loras.promote, lora_id, body.step)
    return await _detail(ctx, promoted, ctx.base_url(request))
