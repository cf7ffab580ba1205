"""The worker's lane for hosted providers (remote families): calls that hold no device.

The worker's own loop runs one batch at a time on its device. Remote entries never go there:
this lane claims their jobs on its own thread and runs each call on a thread of its pool, so
a worker with no GPU serves them and a slow provider never holds up local models. Calls in
flight are bounded per provider (a semaphore keyed by the provider's host, key variable and
family, sized by the entry's ``runtime.max_concurrency``): a job is claimed only when its
provider has a free slot, so jobs beyond that stay queued where another worker may take them.

Each job has its own ``BatchContext``: its flusher renews the lease and reads the cancel flag,
which the family turns into the provider's cancel. A provider's 429 with ``Retry-After`` also
cools the target down for routes (``limner.routing.health``).
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import httpx
from sqlalchemy.exc import DBAPIError

from limner.adapters.base import LoadedModel, LoadEnv, log_only, work_item
from limner.catalog import CatalogEntry
from limner.errors import LimnerError, ProviderOverloaded
from limner.runtime.accounting import count_outputs
from limner.runtime.context import BatchContext
from limner.runtime.outcomes import classify
from limner.store.records import Job

if TYPE_CHECKING:
    from limner.runtime.worker import Worker

log = logging.getLogger("limner.worker")


def provider_key(entry: CatalogEntry) -> str:
    url = httpx.URL(entry.source)
    return f"{entry.family} {url.scheme}://{url.host}:{url.port or 443} {entry.runtime.api_key_env}"


class RemoteLane:
    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.entries = [e for e in worker.catalog if e.remote]
        self.slots: dict[str, threading.BoundedSemaphore] = {}
        for entry in self.entries:
            self.slots.setdefault(provider_key(entry), threading.BoundedSemaphore(entry.runtime.max_concurrency))
        self._loaded: dict[str, LoadedModel] = {}
        self._load_lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if not self.entries:
            return
        size = sum(entry.runtime.max_concurrency for entry in self._one_per_provider())
        self._pool = ThreadPoolExecutor(max_workers=size, thread_name_prefix="remote")
        self._thread = threading.Thread(target=self._loop, name="remote-lane", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        for model in self._loaded.values():
            model.handle.close()
        self._loaded.clear()

    def _one_per_provider(self) -> list[CatalogEntry]:
        return list({provider_key(e): e for e in self.entries}.values())

    def _loop(self) -> None:
        stop = self.worker.stop_event
        while not stop.is_set():
            try:
                claimed = self._claim_once()
            except DBAPIError as exc:
                log.warning("remote lane: job store unreachable (%s)", exc.__class__.__name__)
                claimed = False
            if not claimed:
                stop.wait(self.worker.settings.idle_poll_s * 2)

    def _claim_once(self) -> bool:
        """Claim one job of a remote entry whose provider has a free slot; False when none."""
        free = {key for key, slot in self.slots.items() if _free(slot)}
        servable = [e.id for e in self.entries if provider_key(e) in free]
        if not servable:
            return False
        queue = self.worker.queue
        pick = queue.next_batch_key([], 0.0, servable)
        if pick is None:
            return False
        entry = self.worker.catalog.get(pick[0])
        slot = self.slots[provider_key(entry)]
        if not slot.acquire(blocking=False):
            return True
        jobs = queue.claim(self.worker.id, entry.id, pick[1], 1)
        if not jobs or self._pool is None:
            slot.release()
            return bool(jobs)
        self._pool.submit(self._run, entry, jobs[0], slot)
        return True

    def _model(self, entry: CatalogEntry) -> LoadedModel:
        with self._load_lock:
            if entry.id not in self._loaded:
                env = LoadEnv(device="remote", models_dir=self.worker.settings.home / "models", report=log_only)
                self._loaded[entry.id] = self.worker.adapter_for(entry.family).load(entry, env)
            return self._loaded[entry.id]

    def _run(self, entry: CatalogEntry, job: Job, slot: threading.BoundedSemaphore) -> None:
        ctx = BatchContext(self.worker.queue, self.worker.id, [job.id])
        times: dict[str, float] = {"start": time.time()}
        try:
            loaded = self._model(entry)
            times["loaded"] = time.time()
            item = work_item(job.task, job.id, job.input, self.worker.read_files(job))
            [output] = self.worker.adapter_for(entry.family).run(loaded, entry, [item], ctx)
            times["ran"] = time.time()
            times["outputs"] = count_outputs(output)
            self.worker.outcomes.finish(ctx, entry, loaded, job, output, times, 1)
            self.worker.coordinators.after([job])
        except LimnerError as exc:
            if isinstance(exc, ProviderOverloaded) and exc.retry_after_s:
                self.worker.health.cool_down(entry.id, exc.retry_after_s, exc.error_type)
            self.worker.outcomes.fail(ctx, [job], classify(exc))
        except Exception as exc:  # a provider's oddity must never kill the lane
            self.worker.outcomes.fail(ctx, [job], classify(exc))
        finally:
            ctx.close()
            slot.release()


def _free(slot: threading.BoundedSemaphore) -> bool:
    if slot.acquire(blocking=False):
        slot.release()
        return True
    return False
