"""``POST/GET/DELETE /v1/keys``: API keys, for admin keys only.

A key is shown once, in the answer to the POST that made it; the store keeps its hash. The
first key ever made (by this route while keys are off, or by ``limner keys create``) is an
admin whatever the request says, so the server always has one.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from limner.api.context import ApiContext, get_ctx
from limner.api.tenancy import caller_of, require_admin
from limner.errors import NotFound
from limner.store.keys import PROJECT_PATTERN

router = APIRouter(tags=["keys"])
Ctx = Annotated[ApiContext, Depends(get_ctx)]


class NewKey(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200, pattern=r"^[^\x00]*$", description="Who or what the key is for.")
    project: str | None = Field(
        default=None, pattern=PROJECT_PATTERN, description="The project it belongs to; default: one of its own."
    )
    admin: bool = Field(default=False, description="An admin key sees and controls every project.")


@router.post("/v1/keys", status_code=201)
async def create_key(body: NewKey, request: Request, ctx: Ctx) -> JSONResponse:
    """Make a key; the answer's ``key`` is the secret, shown this once."""
    require_admin(caller_of(request), "making API keys")
    key, raw = await run_in_threadpool(lambda: ctx.keys.create(body.name, project=body.project, admin=body.admin))
    return JSONResponse(status_code=201, content={**key.as_dict(), "key": raw})


@router.get("/v1/keys")
async def list_keys(request: Request, ctx: Ctx) -> dict[str, Any]:
    """Every key, revoked ones too (never their secrets)."""
    require_admin(caller_of(request), "listing API keys")
    keys = await run_in_threadpool(ctx.keys.all)
    return {"keys": [k.as_dict() for k in keys]}


@router.delete("/v1/keys/{key_id}")
async def revoke_key(key_id: str, request: Request, ctx: Ctx) -> dict[str, Any]:
    """Revoke a key: requests with it get 403 from then on (keys are never deleted, so revoking
    the last one cannot open the server)."""
    require_admin(caller_of(request), "revoking API keys")
    key = await run_in_threadpool(ctx.keys.revoke, key_id)
    if key is None:
        raise NotFound(f"no API key {key_id}", loc=("path", "key_id"))
    return key.as_dict()
