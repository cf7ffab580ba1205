"""The worker's RunContext: progress to the store, cancel flags from it, logs, ETA."""

from __future__ import annotations

import threading
import time
from typing import Any

from limner.store.queue import WorkQueue


class BatchContext:
    """Progress and cancellation for the jobs of one batch.

    Progress writes are throttled (at most one per ``min_interval_s`` per batch, plus every
    stage change and the last step) because each write is a transaction; each write also
    renews the leases and reads the cancel flags.
    """

    def __init__(self, queue: WorkQueue, worker_id: str, job_ids: list[str], *, min_interval_s: float = 0.2) -> None:
        self.queue = queue
        self.worker_id = worker_id
        self.job_ids = list(job_ids)
        self.min_interval_s = min_interval_s
        self.canceled: set[str] = set()
        self.lost: set[str] = set()
        self._lock = threading.Lock()
        self._stage = "starting"
        self._stage_started = time.monotonic()
        self._last_write = 0.0
        self._step = 0
        self._total = 0

    # -- RunContext ------------------------------------------------------------------------

    def stage(self, name: str) -> None:
        with self._lock:
            self._stage, self._step, self._total = name, 0, 0
            self._stage_started = time.monotonic()
        self._write(force=True)

    def step(self, step: int, total: int) -> None:
        with self._lock:
            self._step, self._total = step, total
        self._write(force=step >= total)

    def log(self, message: str, level: str = "info") -> None:
        for job_id in self.live():
            self.queue.log(job_id, level, "model", message)

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
        with self._lock:
            stage, step, total = self._stage, self._step, self._total
            elapsed = time.monotonic() - self._stage_started
        percent = round(100.0 * step / total, 1) if total else 0.0
        progress: dict[str, Any] = {"stage": stage, "step": step, "total": total, "percent": percent}
        if total and step:
            progress["eta_s"] = round(elapsed / step * (total - step), 2)
        return progress

    def _write(self, *, force: bool) -> None:
        now = time.monotonic()
        if not force and now - self._last_write < self.min_interval_s:
            return
        self._last_write = now
        progress = self.snapshot()
        for job_id in self.live():
            lease = self.queue.progress(self.worker_id, job_id, progress)
            if not lease.held:
                self.lost.add(job_id)
            elif lease.cancel_requested:
                self.canceled.add(job_id)
