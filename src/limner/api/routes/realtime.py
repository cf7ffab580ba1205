"""``WebSocket /v1/realtime/{owner}/{name}``: the real-time lane, in the spirit of fal's.

The client sends the model's input as JSON objects (optionally with its own ``request_id``)
and gets, for each, ``{"type": "result", "request_id", "images": [{"url": "data:…"}], "seed",
"timings"}``; an input that was still waiting when a newer one came gets ``{"type":
"skipped", "request_id"}``, and a bad one ``{"type": "error", "request_id", "error_type",
"detail"}`` (the session goes on). Only models whose catalog entry sets ``runtime.realtime:
true`` have a lane. With API keys on a browser passes its key as ``?key=``, as for the status
WebSocket; usage is counted under the key and its project. Close codes: 4404 no such lane,
4429 over a quota, 4503 no worker holds the model warm.
"""

from __future__ import annotations

import contextlib

from fastapi import APIRouter, WebSocket
from starlette.concurrency import run_in_threadpool

from limner.api.context import ApiContext
from limner.api.realtime import Session, open_lane
from limner.api.tenancy import caller_of
from limner.errors import LimnerError, ModelUnavailable

router = APIRouter(tags=["realtime"])
NOT_FOUND, OVER_QUOTA, UNAVAILABLE = 4404, 4429, 4503


@router.websocket("/v1/realtime/{owner}/{name}")
async def realtime(websocket: WebSocket, owner: str, name: str) -> None:
    ctx: ApiContext = websocket.app.state.limner
    model_id = f"{owner}/{name}"
    await websocket.accept()
    entry = ctx.catalog.get(model_id) if model_id in ctx.catalog else None
    if entry is None or not entry.runtime.realtime:
        await websocket.close(code=NOT_FOUND, reason=f"no real-time lane for {model_id}"[:120])
        return
    caller = caller_of(websocket)
    try:
        if ctx.quotas.active:
            await run_in_threadpool(ctx.quotas.check, caller.key_id)
        lane = await open_lane(ctx, model_id)
    except ModelUnavailable as exc:
        await websocket.close(code=UNAVAILABLE, reason=exc.message[:120])
        return
    except LimnerError as exc:
        await websocket.close(code=OVER_QUOTA, reason=exc.message[:120])
        return
    code, reason = 1000, ""
    try:
        await Session(ctx, websocket, lane, entry, caller).run()
    except LimnerError as exc:  # over a quota mid-session
        code, reason = OVER_QUOTA, exc.message[:120]
    with contextlib.suppress(RuntimeError):  # the client may have closed first
        await websocket.close(code=code, reason=reason)
