"""The worker's RunContext: progress to the store, cancel flags from it, logs, ETA."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from limner import progress
from limner.adapters.base import CheckpointSink
from limner.progress import Stage
from limner.store.queue import Lease, WorkQueue

log = logging.getLogger("limner.worker")


class BatchContext:
    """Progress and cancellation for the jobs of one batch.

    Each progress write is a transaction (an fsync on SQLite) for the whole batch, and also
    renews the leases and reads the cancel flags. Writes happen at most once per
    ``min_interval_s``: a stage or step reported sooner is kept and written by a flusher
    thread at the end of the interval, so a burst of stage changes (a tiny model passes
    through five stages in a few milliseconds) costs one write, and the latest state always
    reaches the store. While nothing changes, the flusher still writes every ``idle_write_s``
    so that a long single step notices a cancel and keeps its leases.

    Loading a model (``report_load``) is the exception: its stages are written at once, since
    they come once per load and may last seconds, and each comes with a line in the jobs' logs.
    """

    def __init__(
        self,
        queue: WorkQueue,
        worker_id: str,
        job_ids: list[str],
        *,
        min_interval_s: float = 0.2,
        idle_write_s: float = 1.0,
    ) -> None:
        self.queue = queue
        self.worker_id = worker_id
        self.job_ids = list(job_ids)
        self.min_interval_s = min_interval_s
        # Approximate caching's handle for this batch (limner.cache.approximate.BatchReuse), set by
        # the worker for models that opt in; adapters that can resume a job read it.
        self.reuse: object | None = None
        self.canceled: set[str] = set()
        self.lost: set[str] = set()
        self._lock = threading.Lock()
        self._stage = Stage.STARTING
        self._first_step: tuple[float, int] | None = None  # (when, which) the stage's first step came
        self._last_write = time.monotonic()  # the claim just wrote this batch's first state
        self._step = 0
        self._total = 0
        self._figures: dict[str, Any] = {}
        # A training batch's checkpoints (set by the worker for lora-training jobs).
        self.checkpoints: CheckpointSink | None = None
        # Where step previews go (limner.runtime.previews.PreviewSink, set by the worker for
        # diffusion families), and each job's latest preview (a storage reference).
        self.previews: Any | None = None
        self._preview_urls: dict[str, str] = {}
        self.idle_write_s = idle_write_s
        self.writes = 0
        self._dirty = False
        self._write_lock = threading.Lock()  # one write at a time (caller or flusher)
        self._closed = threading.Event()
        self._flusher = threading.Thread(target=self._flush_loop, name="progress", daemon=True)
        self._flusher.start()

    def close(self) -> None:
        """Stop the flusher (the batch is over; completion writes the final state)."""
        self._closed.set()
        self._flusher.join(timeout=5)

    # -- RunContext ------------------------------------------------------------------------

    def stage(self, name: Stage, *, now: bool = False) -> None:
        """Enter a stage; ``now`` writes it at once instead of at the end of the interval."""
        with self._lock:
            self._stage, self._step, self._total = name, 0, 0
            self._first_step = None
            self._figures = {}
            self._dirty = True
        if now:
            self._write()
        else:
            self._write_if_due()

    def step(self, step: int, total: int) -> None:
        with self._lock:
            self._step, self._total = step, total
            if self._first_step is None:
                self._first_step = (time.monotonic(), step)
            self._dirty = True
        self._write_if_due()

    def figures(self, values: dict[str, Any], *, now: bool = False) -> None:
        """The current stage's own figures (a training job's loss, the text so far), shown in
        its progress; ``now`` writes them at once (a text job's first token)."""
        with self._lock:
            self._figures = dict(values)
            self._dirty = True
        if now:
            self._write()

    def preview(self, job_id: str, url: str) -> None:
        """The job's latest step preview: in its progress from now on, written at once (a
        coalesced write could be overtaken by the next preview or by the job's completion)."""
        with self._lock:
            self._preview_urls[job_id] = url
            self._dirty = True
        self._write()

    def log(self, message: str, level: str = "info") -> None:
        for job_id in self.live():
            self.queue.log(job_id, level, "model", message)

    # -- loading (a LoadReporter) -------------------------------------------------------------

    def report_load(self, stage: Stage, message: str) -> None:
        """A step of loading the batch's model: its stage (building, loading) in the jobs'
        progress, written now, and ``message`` in their logs and the worker's."""
        log.info(message)
        if stage != self._stage:
            self.stage(stage, now=True)
        for job_id in self.live():
            self.queue.log(job_id, "info", "worker", message)

    def is_canceled(self, job_id: str) -> bool:
        return job_id in self.canceled or job_id in self.lost

    def should_stop(self) -> bool:
        return not self.live()

    # -- worker side -----------------------------------------------------------------------

    def live(self) -> list[str]:
        return [j for j in self.job_ids if j not in self.canceled and j not in self.lost]

    def mark_lost(self, job_ids: set[str]) -> None:
        self.lost |= job_ids & set(self.job_ids)

    def snapshot(self) -> dict[str, Any]:
        """The contract's progress object. The ETA is measured from the stage's first reported
        step, so work before it (a pipeline encoding its prompt) does not skew the rate."""
        with self._lock:
            stage, step, total, first = self._stage, self._step, self._total, self._first_step
            figures = dict(self._figures)
        eta: float | None = None
        if total and first is not None and step > first[1]:
            rate = (time.monotonic() - first[0]) / (step - first[1])
            eta = round(rate * (total - step), 2)
        return progress.make(stage, step, total, eta, figures)

    def _write_if_due(self) -> None:
        """Write on the model's thread when due, unless another write (a preview's, or the
        flusher's) is in flight: the model never waits for a disk; the state stays dirty and
        the flusher writes it within the interval."""
        if time.monotonic() - self._last_write >= self.min_interval_s:
            self._write(wait=False)

    def _flush_loop(self) -> None:
        while not self._closed.wait(self.min_interval_s):
            idle = time.monotonic() - self._last_write >= self.idle_write_s
            if self._dirty or idle:
                try:
                    self._write()
                except Exception as exc:  # the store is away; the heartbeat retries the leases
                    log.warning("progress write failed: %s", exc.__class__.__name__)

    def _write(self, *, wait: bool = True) -> None:
        if not self._write_lock.acquire(blocking=wait):
            return
        try:
            leases = self._write_locked()
        finally:
            self._write_lock.release()
        for job_id, lease in leases.items():
            if not lease.held:
                self.lost.add(job_id)
            elif lease.cancel_requested:
                self.canceled.add(job_id)

    def _write_locked(self) -> dict[str, Lease]:
        live = self.live()
        if not live:
            return {}
        with self._lock:
            self._dirty = False
        self._last_write = time.monotonic()
        snapshot = self.snapshot()
        with self._lock:
            urls = {j: u for j, u in self._preview_urls.items() if j in live}
        # Jobs with a step preview each have their own URL, in the same transaction.
        own = {job_id: {**snapshot, "preview_url": url} for job_id, url in urls.items()}
        leases = self.queue.progress_many(self.worker_id, live, snapshot, own=own)
        self.writes += 1
        return leases
