"""The real-time lane, API side: one client session relayed to a worker's warm model.

The model runs on a worker (the API process never imports torch; see
``limner.runtime.realtime`` for why the lane is a socket to a worker rather than a job per
frame). A session keeps at most one frame at the worker and at most one waiting here: an
input that arrives while another waits replaces it, and the replaced one is answered
``{"type": "skipped"}`` (latest wins: a client drawing or dragging a slider wants the picture
of its newest input, not a backlog). No job row is written per frame; the session's usage
(outputs, device seconds, cost) goes to the usage table as one row per flush, so /v1/usage,
quotas and /metrics count real-time frames like jobs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from fastapi import WebSocket, WebSocketDisconnect
from starlette.concurrency import run_in_threadpool
from websockets.asyncio.client import ClientConnection, connect

from limner.api.context import ApiContext
from limner.catalog import CatalogEntry
from limner.catalog.inputs import finalize_input, parse_input
from limner.errors import InvalidInput, LimnerError, ModelUnavailable
from limner.store.secrets import REALTIME_SECRET, get_or_create
from limner.store.usage import record_rows, utc_day
from limner.tenancy import Caller

MAX_MESSAGE = 64 * 1024 * 1024
MAX_REQUEST_ID = 64
FLUSH_S = 30.0  # a long session's usage reaches the usage table at least this often
FIND_WORKER_S = 30.0  # how long a new session waits for a worker to warm the model


def lane_url(ctx: ApiContext, model_id: str) -> str | None:
    """A live worker's lane that holds ``model_id`` warm (the most recently heard from)."""
    window = max(3 * min(ctx.settings.heartbeat_s, ctx.settings.lease_s / 3), 1.0)
    for worker in sorted(ctx.workers.active(window), key=lambda w: -w.heartbeat_at):
        lane = (worker.stats or {}).get("realtime") or {}
        if model_id in (lane.get("models") or []) and lane.get("url"):
            return str(lane["url"])
    return None


async def open_lane(ctx: ApiContext, model_id: str) -> ClientConnection:
    """A connection to a worker's lane for ``model_id``; ModelUnavailable when none warms it."""
    deadline = time.monotonic() + FIND_WORKER_S
    while (url := await run_in_threadpool(lane_url, ctx, model_id)) is None:
        if time.monotonic() > deadline:
            raise ModelUnavailable(f"no worker holds {model_id} warm for the real-time lane")
        await asyncio.sleep(0.25)
    secret = await run_in_threadpool(get_or_create, ctx.engines, REALTIME_SECRET, lambda: secrets.token_urlsafe(32))
    return await connect(
        url, additional_headers={"Authorization": f"Bearer {secret}"}, max_size=MAX_MESSAGE, compression=None
    )


@dataclass
class Frame:
    request_id: str
    input: dict[str, Any]
    received: float


@dataclass
class Usage:
    """A session's usage since its last flush."""

    started: float = field(default_factory=time.time)
    frames: int = 0
    outputs: int = 0
    compute_s: float = 0.0
    cost_usd: float = 0.0
    device: str | None = None

    def add(self, usage: dict[str, Any]) -> None:
        self.frames += 1
        self.outputs += int(usage.get("outputs") or 0)
        self.compute_s += float(usage.get("compute_s") or 0.0)
        self.cost_usd += float(usage.get("cost_usd") or 0.0)
        self.device = usage.get("device") or self.device


class Session:
    def __init__(
        self, ctx: ApiContext, websocket: WebSocket, lane: ClientConnection, entry: CatalogEntry, caller: Caller
    ) -> None:
        self.ctx = ctx
        self.websocket = websocket
        self.lane = lane
        self.entry = entry
        self.caller = caller
        self.pending: Frame | None = None
        self.wake = asyncio.Event()
        self.closed = False
        self.usage = Usage()
        self.numbered = 0
        self._send_lock = asyncio.Lock()

    async def run(self) -> None:
        reader = asyncio.create_task(self._read_client())
        try:
            await self._pump()
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
            await self.lane.close()
            await self._flush()

    async def send(self, message: dict[str, Any]) -> None:
        if self.closed:
            return  # the client went away: its answers have nowhere to go
        async with self._send_lock:
            with contextlib.suppress(WebSocketDisconnect, RuntimeError):
                await self.websocket.send_text(json.dumps(message, separators=(",", ":")))

    # -- the client's inputs ----------------------------------------------------------------

    async def _read_client(self) -> None:
        try:
            while True:
                text = await self.websocket.receive_text()
                frame = self._frame(text)
                if frame is None:
                    continue
                replaced, self.pending = self.pending, frame
                if replaced is not None:  # latest wins: the waiting one will never run
                    await self.send({"type": "skipped", "request_id": replaced.request_id})
                self.wake.set()
                await asyncio.sleep(0)  # an idle pump takes this frame now, before the next message is read
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:
            self.closed = True
            self.wake.set()

    def _frame(self, text: str) -> Frame | None:
        """The client's message as a frame, or None after answering it with its error."""
        self.numbered += 1
        request_id = f"frame-{self.numbered}"
        try:
            body = json.loads(text)
            if not isinstance(body, dict):
                raise InvalidInput("a real-time message is a JSON object: the model's input", loc=("body",))
            given = body.pop("request_id", None)
            if given is not None:
                if not isinstance(given, str) or not 0 < len(given) <= MAX_REQUEST_ID:
                    raise InvalidInput(f"request_id must be a string of 1 to {MAX_REQUEST_ID} characters",
                                       loc=("body", "request_id"))  # fmt: skip
                request_id = given
            parsed = parse_input(self.entry, body)
            files = [name for name in parsed.file_fields if getattr(parsed, name, None)]
            if files:
                raise InvalidInput("the real-time lane takes no file inputs (use the queue)", loc=("body", files[0]))
            fields = finalize_input(self.entry, parsed).model_dump(mode="json")
        except json.JSONDecodeError as exc:
            self._answer_later(request_id, InvalidInput(f"not JSON: {exc}", loc=("body",)))
            return None
        except LimnerError as exc:
            self._answer_later(request_id, exc)
            return None
        return Frame(request_id, fields, time.monotonic())

    def _answer_later(self, request_id: str, exc: LimnerError) -> None:
        asyncio.get_running_loop().create_task(self.send(_error(request_id, exc.error_type, exc.detail())))

    # -- the worker's answers ---------------------------------------------------------------

    async def _pump(self) -> None:
        last_flush = time.monotonic()
        while True:
            await self.wake.wait()
            self.wake.clear()
            frame, self.pending = self.pending, None
            if frame is not None:
                await self.lane.send(json.dumps({"id": frame.request_id, "model": self.entry.id, "input": frame.input}))
                answer = json.loads(await self.lane.recv())
                await self.send(self._result(frame, answer))
                if self.pending is not None:
                    self.wake.set()
            if self.closed:
                return
            if time.monotonic() - last_flush > FLUSH_S:
                await self._flush()
                last_flush = time.monotonic()
                if self.ctx.quotas.active:  # a session over its key's compute quota ends here
                    await run_in_threadpool(self.ctx.quotas.check, self.caller.key_id)

    def _result(self, frame: Frame, answer: dict[str, Any]) -> dict[str, Any]:
        if "error_type" in answer:
            detail = [{"loc": answer.get("loc") or [], "msg": answer.get("message"), "type": answer["error_type"]}]
            return _error(frame.request_id, answer["error_type"], detail)
        self.usage.add(answer.get("usage") or {})
        out: dict[str, Any] = {"type": "result", "request_id": frame.request_id}
        for key, files in (answer.get("outputs") or {}).items():
            out[key] = [
                {"url": f"data:{f['content_type']};base64,{f['data']}", **{k: v for k, v in f.items() if k != "data"}}
                for f in files
            ]
        out["seed"] = answer.get("seed")
        out["model"] = answer.get("model")
        out["timings"] = {
            "inference_s": answer.get("inference_s"),
            "total_s": round(time.monotonic() - frame.received, 4),
        }
        return out

    async def _flush(self) -> None:
        usage, self.usage = self.usage, Usage()
        if not usage.frames:
            return
        now = time.time()
        row = {
            "job_id": f"rt_{uuid.uuid4().hex}",
            "model_id": self.entry.id,
            "task": self.entry.task,
            "api_key_id": self.caller.key_id,
            "status": "succeeded",
            "error_type": None,
            "priority": "high",
            "day": utc_day(now),
            "created_at": usage.started,
            "finished_at": now,
            "queue_s": None,
            "run_s": round(usage.compute_s, 4),
            "total_s": round(now - usage.started, 4),
            "outputs": usage.outputs,
            "compute_s": round(usage.compute_s, 4),
            "cost_usd": round(usage.cost_usd, 6),
            "cache_hit": None,
            "saved_s": 0.0,
            "saved_usd": 0.0,
            "pixels": None,
            "steps": None,
            "device": usage.device,
            "project": self.caller.project,
        }
        await run_in_threadpool(record_rows, self.ctx.engines, [row])


def _error(request_id: str, error_type: str, detail: list[dict[str, Any]]) -> dict[str, Any]:
    return {"type": "error", "request_id": request_id, "error_type": error_type, "detail": detail}
