"""The worker's RunContext: progress to the store, cancel flags from it, logs, ETA."""

from __future__ import annotations

import threading
import time
from typing import Any

from limner import progress
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
        self._stage = progress.STARTING
        self._first_step: tuple[float, int] | None = None  # (when, which) the stage's first step came
        self._last_write = 0.0
        self._step = 0
        self._total = 0

    # -- RunContext ------------------------------------------------------------------------

    def stage(self, name: str) -> None:
        with self._lock:
            self._stage, self._step, self._total = name, 0, 0
            self._first_step = None
        self._write(force=True)

    def step(self, step: int, total: int) -> None:
        with self._lock:
            self._step, self._total = step, total
            if self._first_step is None:
                self._first_step = (time.monotonic(), step)
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
        """The contract's progress object. The ETA is measured from the stage's first reported
        step, so work before it (a pipeline encoding its prompt) does not skew the rate."""
        with self._lock:
            stage, step, total, first = self._stage, self._step, self._total, self._first_step
        eta: float | None = None
        if total and first is not None and step > first[1]:
            rate = (time.monotonic() - first[0]) / (step - first[1])
            eta = round(rate * (total - step), 2)
        return progress.make(stage, step, total, eta)

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
