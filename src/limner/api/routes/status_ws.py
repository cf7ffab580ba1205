"""``GET …/requests/{id}/status/ws``: the status stream as a WebSocket, for browsers.

The same JSON objects as the status route and the SSE stream, one message per change
(queue position included while queued), and the socket closes (code 1000) after the
terminal one. With API keys on, a browser passes its key as ``?key=`` (it cannot set
headers on a WebSocket).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, WebSocket, WebSocketDisconnect
from starlette.concurrency import run_in_threadpool

from limner.api.context import ApiContext
from limner.api.status_feed import status_updates
from limner.api.tenancy import caller_of

router = APIRouter(tags=["queue"])
NOT_FOUND = 4404  # application close codes live in 4000-4999


@router.websocket("/v1/queue/{owner}/{name}/requests/{request_id}/status/ws")
async def status_ws(
    websocket: WebSocket,
    owner: str,
    name: str,
    request_id: str,
    logs: Annotated[bool, Query(description="Include the job's log lines.")] = False,
) -> None:
    ctx: ApiContext = websocket.app.state.limner
    await websocket.accept()
    job = await run_in_threadpool(ctx.jobs.get, request_id)
    if job is None or job.model_id != f"{owner}/{name}" or not caller_of(websocket).sees_project(job.project):
        await websocket.close(code=NOT_FOUND, reason=f"no request {request_id} for model {owner}/{name}")
        return
    base = ctx.settings.base_url.rstrip("/") if ctx.settings.base_url else _http_base(websocket)
    try:
        async for text in status_updates(ctx, job, base, logs):
            await websocket.send_text(text)
    except WebSocketDisconnect:
        return
    await websocket.close(code=1000)


def _http_base(websocket: WebSocket) -> str:
    url = websocket.base_url
    scheme = "https" if url.scheme == "wss" else "http"
    return str(url.replace(scheme=scheme)).rstrip("/")
