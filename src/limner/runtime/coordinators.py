"""The workflow and batch coordinators inside a worker.

A worker that ends a step's job or a batch row's job advances that workflow or batch at once,
on its finisher thread (a workflow's next step starts without waiting for anyone's poll), and
a background thread sweeps for due ones as the API does, so workflows and batches go on while
no API process runs. Both are the same idempotent coordinators the API runs: whichever process
gets to a due workflow first advances it, the others find nothing to do.
"""

from __future__ import annotations

import logging
import threading

from sqlalchemy.exc import DBAPIError

from limner.batches.coordinator import BatchCoordinator
from limner.catalog import Catalog
from limner.errors import LimnerError
from limner.net.fetch import FetchPolicy
from limner.routing.coordinator import RouteCoordinator
from limner.settings import Settings
from limner.storage import Storage
from limner.store.engine import Engines
from limner.store.jobs import JobStore
from limner.store.records import Job
from limner.workflows.coordinator import WorkflowCoordinator

log = logging.getLogger("limner.worker")
IDLE_FACTOR = 8


class WorkerCoordinators:
    def __init__(
        self,
        settings: Settings,
        engines: Engines,
        catalog: Catalog,
        storage: Storage,
        wake: threading.Event | None = None,
    ) -> None:
        jobs = JobStore(engines, priority_step_s=settings.priority_step_s)
        base = settings.public_url
        self.enabled = settings.coordinate
        self.poll_s = settings.coordinate_poll_s
        self.workflows = WorkflowCoordinator(engines, catalog, storage, jobs, base)
        self.routes = RouteCoordinator(engines, catalog, storage, jobs, base)
        policy = FetchPolicy.create(settings.fetch_allow_hosts, settings.fetch_timeout_s)
        self.batches = BatchCoordinator(
            engines, catalog, storage, jobs, base, policy, max_job_attempts=settings.max_attempts
        )
        self._stop = threading.Event()
        # Set when an advance may have queued work this worker can take (its claim loop stops
        # waiting: a workflow's next step starts now, not at the next poll).
        self.wake = wake or threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self.enabled:
            self._thread = threading.Thread(target=self._loop, name="coordinators", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def after(self, jobs: list[Job]) -> None:
        """Advance the workflows and batches of jobs this worker just ended."""
        if not self.enabled:
            return
        try:
            advanced = 0
            for parent in sorted({j.parent_id for j in jobs if j.parent_id}):
                advanced += self.workflows.advance(parent) + self.routes.advance(parent)
            for batch in sorted({j.batch_id for j in jobs if j.batch_id}):
                advanced += self.batches.advance(batch)
            if advanced:
                self.wake.set()
        except (DBAPIError, LimnerError) as exc:  # the sweep (here or in the API) tries again
            log.warning("could not advance after a batch: %s", exc)

    def _loop(self) -> None:
        idle = 0
        while not self._stop.wait(self.poll_s * max(idle, 1)):
            try:
                worked = False
                while self.workflows.run_once() + self.batches.run_once() + self.routes.run_once():
                    worked = True
                    self.wake.set()
                idle = 0 if worked else min(idle + 1, IDLE_FACTOR)
            except (DBAPIError, LimnerError) as exc:
                log.warning("coordinators: %s", exc)
                idle = IDLE_FACTOR
