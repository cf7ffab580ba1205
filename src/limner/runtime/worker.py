"""A worker process: claims batches from the job store, runs them, stores the results.

A worker owns one device and the models resident on it. It never dies of a job: whatever a
model raises becomes the job's error (or a retry), and the loop goes on. A worker that is
killed outright loses nothing either: its leases expire and the reaper re-queues the jobs.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial
from typing import Any

from sqlalchemy.exc import DBAPIError

from limner.adapters import load_adapter
from limner.adapters.base import Adapter, JobOutput, LoadedModel, LoadEnv, LoadReporter, log_only, work_item
from limner.cache.worker import WorkerCache
from limner.catalog import Catalog, CatalogEntry
from limner.errors import LimnerError, ModelError, OutOfMemory
from limner.progress import Stage
from limner.quality.monitor import QualityMonitor
from limner.routing.health import TargetHealth
from limner.runtime.accounting import count_outputs
from limner.runtime.checkpoints import JobCheckpoints
from limner.runtime.context import BatchContext
from limner.runtime.coordinators import WorkerCoordinators
from limner.runtime.device import default_budget_bytes, resolve_device, set_threads
from limner.runtime.enhance import enhance
from limner.runtime.outcomes import TRAINING_TASK, Outcomes, classify
from limner.runtime.previews import PreviewSink
from limner.runtime.provenance import environment, model_provenance
from limner.runtime.realtime import RealtimeLane
from limner.runtime.remote_lane import RemoteLane
from limner.runtime.residency import MB, Residency
from limner.runtime.stats import WorkerReport
from limner.runtime.stored_files import StoredFiles
from limner.settings import Settings
from limner.storage import storage_for
from limner.storage.base import key_of
from limner.store.engine import make_engines, upgrade
from limner.store.loras import LoraStore
from limner.store.queue import WorkQueue
from limner.store.records import Job
from limner.store.secrets import REALTIME_SECRET, get_or_create
from limner.store.workers import WorkerRegistry
from limner.tasks import TASKS

log = logging.getLogger("limner.worker")
# Exit status of a worker process that gave up on a hung model (its supervisor restarts it).
EXIT_HUNG = 70


def exit_hung() -> None:
    """A model that overran its timeout cannot be interrupted from Python: the process goes,
    and its supervisor starts a fresh one."""
    logging.shutdown()
    os._exit(EXIT_HUNG)


class Worker:
    def __init__(
        self,
        settings: Settings,
        catalog: Catalog,
        *,
        worker_id: str | None = None,
        on_hung: Callable[[], None] = exit_hung,
    ) -> None:
        self.settings = settings
        self.on_hung = on_hung
        self.catalog = catalog
        self.engines = make_engines(settings.store)
        upgrade(self.engines)
        self.queue = WorkQueue(self.engines, lease_s=settings.lease_s)
        self.registry = WorkerRegistry(self.engines)
        self.loras = LoraStore(self.engines)
        self.storage = storage_for(settings)
        self.device = resolve_device(settings.device)
        self.environment = environment(self.device)  # every result's provenance names it
        if settings.threads:
            set_threads(settings.threads)
        budget = settings.memory_budget_mb * MB or default_budget_bytes(self.device)
        self.residency = Residency(budget, self._load)
        self.id = worker_id or f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
        self.cache = WorkerCache(settings, self.engines, self.storage, self.queue, self.id)
        self.quality = QualityMonitor(settings, self.engines, self.storage, self.device)
        self.report = WorkerReport(catalog, self.device)
        self.work_ready = threading.Event()  # the claim loop's wait ends early when set
        self.coordinators = WorkerCoordinators(settings, self.engines, catalog, self.storage, self.work_ready)
        self.outcomes = Outcomes(
            self.id, settings, self.device, self.environment, self.queue, self.storage, self.cache, self.quality,
            self.coordinators,
        )  # fmt: skip
        self.stop_event = threading.Event()
        self.health = TargetHealth(self.engines)
        # Hosted providers' jobs: claimed and called on the lane's own threads, never here.
        self.remote = RemoteLane(self)
        self.batches_run = 0
        self._adapters: dict[str, Adapter] = {}
        self._current: BatchContext | None = None
        # serve() finishes a batch (stores its files, completes its jobs) on this thread while
        # the next batch runs; one batch at a time.
        self._finisher: ThreadPoolExecutor | None = None
        self._finishing: BatchContext | None = None
        self._pending: Future[None] | None = None
        self._deadline = 0.0  # monotonic time by which the current batch must finish
        self.lane: RealtimeLane | None = None  # warm copies of runtime.realtime models (limner.runtime.realtime)

    # -- lifecycle -------------------------------------------------------------------------

    def attach(self) -> list[threading.Thread]:
        """Register and start the heartbeat and reaper threads. ``serve()`` does this before it
        claims; an executor that hands batches to ``process()`` itself (a Ray replica) calls it
        instead of ``serve()``, and ``detach()`` when it stops."""
        lane_entries = [e for e in self.catalog if e.runtime.realtime]
        if lane_entries and self.settings.realtime_lane:
            secret = get_or_create(self.engines, REALTIME_SECRET, lambda: secrets.token_urlsafe(32))
            load = partial(self._load, report=log_only)
            lane = RealtimeLane(self.settings, lane_entries, load, secret, self.device, self._advertise)
            try:
                lane.start()
                self.lane = lane
            except OSError as exc:  # the queue still serves these models; only the lane is missing
                log.warning("real-time lane not started on %s: %s", self.settings.realtime_host, exc)
        self.registry.register(
            worker_id=self.id,
            hostname=socket.gethostname(),
            pid=os.getpid(),
            device=self.device,
            memory_budget_mb=self.residency.budget_bytes // MB,
            stats=self._stats(),
        )
        log.info(
            "worker %s on %s, budget %d MB, store %s",
            self.id,
            self.device,
            self.residency.budget_bytes // MB,
            self.engines.dialect,
        )
        beat = threading.Thread(target=self._heartbeat_loop, name="heartbeat", daemon=True)
        beat.start()
        reaper = threading.Thread(target=self._reaper_loop, name="reaper", daemon=True)
        reaper.start()
        self.coordinators.start()
        self.remote.start()
        return [beat, reaper]

    def serve(self) -> None:
        """Run until ``stop_event`` is set (SIGTERM/SIGINT in the CLI); the batch in hand finishes."""
        threads = self.attach()
        backoff = self.settings.idle_poll_s
        self._finisher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="finisher")
        try:
            while not self.stop_event.is_set():
                try:
                    busy = self.run_once()
                    backoff = self.settings.idle_poll_s
                except DBAPIError as exc:
                    log.warning("job store unreachable (%s); retrying in %.1f s", exc.__class__.__name__, backoff)
                    busy = False
                    backoff = min(backoff * 2, 5.0)
                if not busy:
                    self.work_ready.wait(backoff)
                self.work_ready.clear()
        finally:
            self._drain()
            self._finisher.shutdown(wait=True)
            self._finisher = None
            self.detach(threads)

    def detach(self, threads: list[threading.Thread]) -> None:
        self.stop_event.set()
        self.work_ready.set()
        for thread in threads:
            thread.join(timeout=5)
        self.remote.stop()
        self.coordinators.stop()
        if self.lane is not None:
            self.lane.stop()
        try:
            self.registry.stopped(self.id)
        except DBAPIError:
            log.warning("could not mark worker %s stopped", self.id)
        self.quality.stop()
        self.cache.close()
        self.residency.clear()
        self.engines.dispose()

    def run_once(self) -> bool:
        """Claim and run one batch. Returns False when there was nothing to do."""
        servable = [e.id for e in self.catalog if not e.remote]  # remote ones: the remote lane
        pick = self.queue.next_batch_key(self.held_models(), self.settings.affinity_s, servable)
        if pick is None:
            return False
        model_id, batch_key = pick
        entry = self.catalog.get(model_id)
        limit = entry.runtime.max_batch_size if self.settings.batching else 1
        jobs = self.queue.claim(self.id, model_id, batch_key, limit)
        if not jobs:
            return True  # another worker was faster; look again
        wait_s = entry.runtime.batch_wait_ms / 1000
        if len(jobs) < limit and wait_s > 0:
            self.stop_event.wait(wait_s)
            jobs += self.queue.claim(self.id, model_id, batch_key, limit - len(jobs))
        self.process(entry, jobs)
        return True

    def held_models(self) -> list[str]:
        held = set(self.residency.keys())
        return [e.id for e in self.catalog if e.residency_key in held]

    # -- one batch -------------------------------------------------------------------------

    def process(self, entry: CatalogEntry, jobs: list[Job]) -> None:
        remaining = self.cache.serve_from_cache(entry, jobs)
        self.coordinators.after([j for j in jobs if j not in remaining])  # answered by the cache
        jobs = remaining
        if not jobs:
            return
        ctx = BatchContext(self.queue, self.id, [j.id for j in jobs])
        if entry.cache.approximate.enabled:  # near-miss jobs start from cached latents (diffusers families)
            ctx.reuse = self.cache.approximate.for_batch(entry, jobs)
        previews = ctx.previews = PreviewSink(self.storage, ctx, {j.id: j.project for j in jobs})  # threads on use
        if entry.task == TRAINING_TASK:
            ctx.checkpoints = JobCheckpoints(self.storage, self.loras, self.id, {j.id: j.project for j in jobs})
        self._deadline = time.monotonic() + (entry.runtime.timeout_s or self.settings.job_timeout_s)
        self._current = ctx
        times: dict[str, float] = {"start": time.time()}
        handed_over = False  # once _finish_batch has ctx, it closes it
        try:
            loaded = self.residency.get(entry, ctx.report_load)
            times["loaded"] = time.time()
            items = [work_item(j.task, j.id, j.input, self.read_files(j)) for j in jobs]
            items, enhanced = enhance(self.catalog, entry, items, ctx, lambda e: self._resident(e, ctx))
            if enhanced:  # the enhance model may have been loaded in its place: the image model again
                loaded = self.residency.get(entry, ctx.report_load)
            adapter = self._adapter(entry.family)
            outputs = adapter.run(loaded, entry, items, ctx)
            previews.close()  # the last preview is written before the jobs complete
            for job, output in zip(jobs, outputs, strict=False):
                output.extra.update(enhanced.get(job.id, {}))
            times["ran"] = time.time()
            self.residency.fit(entry)  # LoRAs loaded by the batch count against the budget
            if len(outputs) != len(jobs):
                raise ModelError(f"adapter returned {len(outputs)} outputs for {len(jobs)} jobs")
            times["outputs"] = sum(count_outputs(o) for o in outputs)
            handed_over = True
            if self._finisher is None:
                self._finish_batch(ctx, entry, loaded, jobs, outputs, times)
            else:
                self._drain()
                self._finishing = ctx
                self._pending = self._finisher.submit(self._finish_batch, ctx, entry, loaded, jobs, outputs, times)
        except LimnerError as exc:
            self.outcomes.fail(ctx, jobs, exc)
        except Exception as exc:  # a model's own failure must never kill the worker
            error = classify(exc)
            if isinstance(error, OutOfMemory):
                self.residency.clear()
            self.outcomes.fail(ctx, jobs, error)
        finally:
            self._current = None
            previews.close()
            if not handed_over:
                ctx.close()

    def _finish_batch(
        self,
        ctx: BatchContext,
        entry: CatalogEntry,
        loaded: LoadedModel,
        jobs: list[Job],
        outputs: list[JobOutput],
        times: dict[str, float],
    ) -> None:
        """Store a batch's files and complete its jobs. Under ``serve()`` this runs on the
        finisher thread beside the next batch's model call, so the durable writes (fsyncs:
        mostly waiting on the disk) overlap with compute instead of adding to each job."""
        try:
            ctx.stage(Stage.UPLOADING)
            for job, output in zip(jobs, outputs, strict=True):
                self.outcomes.finish(ctx, entry, loaded, job, output, times, len(jobs))
            self.batches_run += 1
            self.coordinators.after(jobs)  # a workflow's next step starts now
        except DBAPIError as exc:
            # The store is away: the jobs keep their leases until these end, then run again.
            log.warning("could not finish a batch of %s: job store unreachable (%s)", entry.id, type(exc).__name__)
        except LimnerError as exc:
            self.outcomes.fail(ctx, jobs, exc)
        except Exception as exc:
            self.outcomes.fail(ctx, jobs, classify(exc))
        finally:
            ctx.close()
            if self._finishing is ctx:
                self._finishing = None

    def _drain(self) -> None:
        """Wait until the batch on the finisher thread is done."""
        pending, self._pending = self._pending, None
        if pending is not None:
            try:
                pending.result()
            except Exception:  # _finish_batch handles its own errors; this is a last resort
                log.exception("finishing a batch failed")

    def read_files(self, job: Job) -> StoredFiles:
        """The job's input files, read from storage when the adapter asks for one."""
        refs = TASKS[job.task].input_model.stored_refs(job.input)
        return StoredFiles(self.storage, {name: key for name, value in refs.items() if (key := key_of(value))})

    # -- models ----------------------------------------------------------------------------

    def adapter_for(self, family: str) -> Adapter:
        """The family's adapter (the remote lane runs its calls through it)."""
        return self._adapter(family)

    def _adapter(self, family: str) -> Adapter:
        if family not in self._adapters:
            self._adapters[family] = load_adapter(family)
        return self._adapters[family]

    def _resident(self, entry: CatalogEntry, ctx: BatchContext) -> tuple[Adapter, LoadedModel]:
        """Another entry's model for this batch (an enhance model), resident like any other."""
        loaded = self.residency.get(entry, ctx.report_load)
        return self._adapter(entry.family), loaded

    def _load(self, entry: CatalogEntry, report: LoadReporter) -> tuple[Adapter, LoadedModel]:
        """Load an entry's model for the residency. The stage is ``loading`` from the start,
        since the first model of a family also imports the family's runtime (diffusers,
        transformers: seconds); the adapter reports ``building`` while a tiny:// model is built."""
        started = time.time()
        report(Stage.LOADING, f"loading {entry.id} ({entry.source}) on {self.device}")
        adapter = self._adapter(entry.family)
        env = LoadEnv(device=self.device, models_dir=self.settings.home / "models", report=report)
        loaded = adapter.load(entry, env)
        loaded.provenance = model_provenance(entry, loaded)  # once per load, not per result
        seconds, size = time.time() - started, loaded.size_bytes / MB
        report(Stage.LOADING, f"loaded {entry.id} ({loaded.revision}) in {seconds:.2f} s, {size:.0f} MB")
        return adapter, loaded

    # -- heartbeats, leases, reaping -------------------------------------------------------

    def _stats(self) -> dict[str, Any]:
        stats = self.report.stats(self.residency, self.batches_run, self.cache, self.quality)
        if self.lane is not None and self.lane.info is not None:
            stats["realtime"] = {**self.lane.info, "frames": self.lane.frames}
        return stats

    def _advertise(self) -> None:
        """The lane's models are warm: say so now, not at the next heartbeat."""
        try:
            contexts = [c for c in (self._current, self._finishing) if c is not None]
            live = [job_id for c in contexts for job_id in c.live()]
            self.registry.heartbeat(self.id, models=self.held_models(), current_jobs=live, stats=self._stats())
        except DBAPIError as exc:
            log.warning("could not advertise the real-time lane: %s", exc.__class__.__name__)

    def _heartbeat_loop(self) -> None:
        interval = min(self.settings.heartbeat_s, self.settings.lease_s / 3)
        while not self.stop_event.wait(interval):
            try:
                ctx = self._current
                contexts = [c for c in (ctx, self._finishing) if c is not None]
                live = [job_id for c in contexts for job_id in c.live()]
                lost = self.queue.renew(self.id, live)
                for c in contexts:
                    c.mark_lost(lost)
                stats = self._stats()
                self.registry.heartbeat(self.id, models=self.held_models(), current_jobs=live, stats=stats)
                if ctx is not None and ctx.live() and time.monotonic() > self._deadline:
                    self._give_up(ctx)
            except DBAPIError as exc:
                log.warning("heartbeat failed: %s", exc.__class__.__name__)

    def _reaper_loop(self) -> None:
        """Return other workers' expired jobs to the queue. Its own thread: a reap that waits
        on a lock must never delay this worker's heartbeats."""
        while not self.stop_event.wait(max(self.settings.lease_s / 2, 0.5)):
            try:
                self.queue.reap()
            except DBAPIError as exc:
                log.warning("reaping failed: %s", exc.__class__.__name__)

    def _give_up(self, ctx: BatchContext) -> None:
        """The batch overran its timeout: fail its jobs as timeouts, then recover (by default
        the process exits and its supervisor replaces it: a hung model cannot be stopped)."""
        live = ctx.live()
        log.error("batch of %d job(s) overran its timeout; failing them and restarting", len(live))
        for job_id in live:
            self.queue.fail(self.id, job_id, "timeout", "the model ran past its timeout", retry=False)
        ctx.mark_lost(set(live))
        self.on_hung()
