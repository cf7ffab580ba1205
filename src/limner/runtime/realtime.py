"""The real-time lane, worker side: warm models answering one frame at a time over a WebSocket.

Why a socket on the worker, and not the job queue: a frame is worth a few hundred
milliseconds, and the queue's path (a durable row, a claim, a lease, progress writes, a
result write, the API watching for it) costs several fsyncs and a poll per frame, and would
leave a row per frame that nobody wants. The API process may not import torch, so the model
cannot run there either. So each worker whose catalog has ``runtime.realtime: true`` entries
loads its own copy of each such model at start (reserved for the lane: the queue's batches
never touch it, so a long batch cannot delay a frame and a frame cannot corrupt a batch's
pipeline state), listens on ``settings.realtime_host`` at an ephemeral port, and advertises
``{url, models}`` in its registry stats; an API process opens one connection per client
session to such a worker and relays frames (``limner.api.realtime``), choosing the latest
input there. The connection is authenticated with a secret kept in the job store, which
every API process and worker already shares.

Messages (JSON): ``{"id", "model", "input"}`` in; ``{"id", "outputs", "seed", "inference_s",
"usage", "model"}`` or ``{"id", "error_type", "message", "loc"}`` out, in order.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from websockets.http11 import Request, Response
from websockets.sync.server import Server, ServerConnection, serve

from limner.adapters.base import Adapter, LoadedModel, work_item
from limner.catalog import CatalogEntry
from limner.errors import LimnerError, ModelError
from limner.progress import Stage
from limner.runtime.accounting import count_outputs, job_usage
from limner.settings import Settings

log = logging.getLogger("limner.realtime")
MAX_MESSAGE = 64 * 1024 * 1024  # a frame's images, base64: far above any one image
Loader = Callable[[CatalogEntry], tuple[Adapter, LoadedModel]]


class LaneContext:
    """The RunContext of a frame: no progress to write, nothing to cancel (a frame is short,
    and the API drops a frame nobody waits for before it reaches the worker)."""

    previews = None

    def stage(self, name: Stage) -> None:
        pass

    def step(self, step: int, total: int) -> None:
        pass

    def log(self, message: str, level: str = "info") -> None:
        log.debug("realtime: %s", message)

    def is_canceled(self, job_id: str) -> bool:
        return False

    def should_stop(self) -> bool:
        return False


class RealtimeLane:
    def __init__(
        self,
        settings: Settings,
        entries: list[CatalogEntry],
        load: Loader,
        secret: str,
        device: str,
        on_ready: Callable[[], None],
    ) -> None:
        self.settings = settings
        self.entries = {e.id: e for e in entries}
        self.load = load
        self.secret = secret
        self.device = device
        self.on_ready = on_ready
        self.frames = 0
        self._models: dict[str, tuple[Adapter, LoadedModel]] = {}
        self._locks = {e.id: threading.Lock() for e in entries}  # one frame at a time per model
        self._server: Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def info(self) -> dict[str, Any] | None:
        """What the worker advertises: where the lane listens and which models are warm."""
        if self._server is None or not self._models:
            return None
        host, port = self._server.socket.getsockname()[:2]
        return {"url": f"ws://{host}:{port}", "models": sorted(self._models)}

    def start(self) -> None:
        self._server = serve(
            self._connection,
            self.settings.realtime_host,
            0,
            process_request=self._authorize,
            max_size=MAX_MESSAGE,
            compression=None,
        )
        self._thread = threading.Thread(target=self._run, name="realtime", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
        if self._thread is not None:
            self._thread.join(timeout=5)
        for adapter, loaded in self._models.values():
            adapter.unload(loaded)
        self._models.clear()

    def _run(self) -> None:
        """Load each lane model (warm before the first frame), then serve."""
        assert self._server is not None
        for entry in self.entries.values():
            try:
                self._models[entry.id] = self.load(entry)
            except Exception as exc:  # the queue keeps serving the model; the lane does without it
                log.warning("real-time lane: cannot load %s: %s: %s", entry.id, type(exc).__name__, exc)
        if self._models:
            log.info("real-time lane: %s warm at %s", ", ".join(sorted(self._models)), (self.info or {}).get("url"))
            self.on_ready()
        self._server.serve_forever()

    def _authorize(self, connection: ServerConnection, request: Request) -> Response | None:
        if request.headers.get("Authorization") != f"Bearer {self.secret}":
            return connection.respond(401, "the real-time lane takes connections from limner API processes only\n")
        return None

    def _connection(self, connection: ServerConnection) -> None:
        for message in connection:
            try:
                frame = json.loads(message)
                answer = self.frame(str(frame["model"]), frame.get("input") or {}, str(frame.get("id", "")))
            except (ValueError, KeyError, TypeError) as exc:
                answer = {"id": None, "error_type": "invalid_input", "message": f"bad frame: {exc}", "loc": []}
            connection.send(json.dumps(answer, separators=(",", ":")))

    def frame(self, model_id: str, fields: dict[str, Any], frame_id: str) -> dict[str, Any]:
        """Run one frame on the lane's copy of the model; its outputs inline, and its usage."""
        if model_id not in self._models:
            return _error(frame_id, ModelError(f"{model_id} is not warm on this worker's real-time lane"))
        adapter, loaded = self._models[model_id]
        entry = self.entries[model_id]
        try:
            item = work_item(entry.task, frame_id or "frame", fields)
            with self._locks[model_id]:
                started = time.perf_counter()
                output = adapter.run(loaded, entry, [item], LaneContext())[0]
                inference_s = time.perf_counter() - started
        except LimnerError as exc:
            return _error(frame_id, exc)
        except Exception as exc:  # a model's failure is the frame's error, never the lane's end
            return _error(frame_id, ModelError(f"{type(exc).__name__}: {exc}"))
        if output.error is not None:
            return _error(frame_id, output.error)
        self.frames += 1
        made = count_outputs(output)
        usage = job_usage(
            entry, self.settings, self.device, output, inference_s=inference_s, batch_outputs=made, batch_jobs=1
        )
        outputs = {
            key: [
                {
                    "content_type": f.content_type,
                    "file_size": len(f.data),
                    "data": base64.b64encode(f.data).decode(),
                    **f.properties,
                }
                for f in files
            ]
            for key, files in output.files.items()
        }
        return {
            "id": frame_id,
            "outputs": outputs,
            "seed": fields.get("seed"),
            "inference_s": round(inference_s, 4),
            "usage": usage,
            "model": {"id": entry.id, "revision": loaded.revision},
        }


def _error(frame_id: str, exc: LimnerError) -> dict[str, Any]:
    return {"id": frame_id, "error_type": exc.error_type, "message": exc.message, "loc": list(exc.loc or ())}
