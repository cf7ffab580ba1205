"""The Ray dispatcher: claims jobs from the job store, as a worker does, and sends them to Ray
Serve deployments (``executors.ray_serve``) instead of running them itself.

The job store stays the state of record. The dispatcher claims with the same ranking as a
worker (priority with aging, model affinity over the models Ray replicas hold), holds the
leases while a job waits in Ray's queues, and lets the replica that runs a job take its lease
over. It keeps only a bounded number of jobs in flight per deployment (one replica's worth more
than the replicas that are up, so Ray's autoscaler sees the queue and adds a replica, up to
``ray_max_replicas``); everything else waits in the store, where priorities and cancellation
still apply. If a Ray call fails, the dispatcher stops renewing that job: its lease ends and
the reaper re-queues it (or fails it when out of attempts). Nothing depends on Ray keeping it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import signal
import socket
import time
from collections import Counter
from dataclasses import dataclass, field

from sqlalchemy.exc import DBAPIError

from limner.catalog import Catalog, CatalogEntry
from limner.executors.ray_serve import Group, app_of_replica, app_prefix, deploy, model_key
from limner.settings import Settings
from limner.store.engine import make_engines, upgrade
from limner.store.queue import WorkQueue
from limner.store.records import Job
from limner.store.workers import WorkerRegistry

log = logging.getLogger("limner.dispatch")


@dataclass
class Flight:
    """A job sent to Ray whose call has not returned yet."""

    app: str
    deadline: float  # monotonic: by then a replica must have taken it
    held: bool = True  # the dispatcher still holds its lease (no replica took it over yet)
    task: asyncio.Task[None] | None = field(default=None, repr=False)


class RayDispatcher:
    def __init__(self, settings: Settings, catalog: Catalog, *, dispatcher_id: str | None = None) -> None:
        self.settings = settings
        self.catalog = catalog
        self.engines = make_engines(settings.store)
        upgrade(self.engines)
        self.queue = WorkQueue(self.engines, lease_s=settings.lease_s)
        self.registry = WorkerRegistry(self.engines)
        self.id = dispatcher_id or f"ray-dispatch-{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
        self.prefix = app_prefix(settings)
        self.flights: dict[str, Flight] = {}
        self.held_models: list[str] = []  # models some replica of ours holds
        self.replicas: Counter[str] = Counter()  # replicas up, per application
        self.sent = 0
        self._handles: dict[str, object] = {}
        self._wake = asyncio.Event()

    # -- lifecycle -------------------------------------------------------------------------

    async def serve(self, stop: asyncio.Event) -> None:
        """Dispatch until ``stop`` is set. Jobs already sent stay with Ray: their replicas
        finish them; those no replica took yet come back through the reaper."""
        await asyncio.to_thread(
            self.registry.register,
            worker_id=self.id,
            hostname=socket.gethostname(),
            pid=os.getpid(),
            device="ray",
            memory_budget_mb=0,
        )
        log.info(
            "dispatcher %s: jobs from %s go to Ray Serve applications %s-*", self.id, self.engines.dialect, self.prefix
        )
        background = [asyncio.create_task(self._heartbeat_loop()), asyncio.create_task(self._reaper_loop())]
        backoff = self.settings.idle_poll_s
        try:
            while not stop.is_set():
                try:
                    busy = await self.dispatch_once()
                    backoff = self.settings.idle_poll_s
                except DBAPIError as exc:
                    log.warning("job store unreachable (%s); retrying in %.1f s", exc.__class__.__name__, backoff)
                    busy, backoff = False, min(backoff * 2, 5.0)
                if not busy:
                    self._wake.clear()
                    waits = [asyncio.create_task(stop.wait()), asyncio.create_task(self._wake.wait())]
                    await asyncio.wait(waits, timeout=backoff, return_when=asyncio.FIRST_COMPLETED)
                    for waiting in waits:
                        waiting.cancel()
        finally:
            for task in background:
                task.cancel()
            try:
                await asyncio.to_thread(self.registry.stopped, self.id)
            except DBAPIError:
                log.warning("could not mark dispatcher %s stopped", self.id)
            self.engines.dispose()

    # -- claiming and sending --------------------------------------------------------------

    async def dispatch_once(self) -> bool:
        """Claim one batch's worth of jobs and send them to Ray. False when there was nothing
        to do (or no room in flight)."""
        servable = [e.id for e in self.catalog if self.room(e) > 0]
        if not servable:
            return False
        pick = await asyncio.to_thread(self.queue.next_batch_key, self.held_models, self.settings.affinity_s, servable)
        if pick is None:
            return False
        model_id, batch_key = pick
        entry = self.catalog.get(model_id)
        group = Group.of(entry, batching=self.settings.batching)
        handle = await self._handle(group)  # deploy before claiming: jobs stay queued meanwhile
        if handle is None:
            return False
        limit = min(self.room(entry), group.max_batch_size)
        jobs = await asyncio.to_thread(self.queue.claim, self.id, model_id, batch_key, limit)
        for job in jobs:
            self._send(handle, entry, group, job)
        return True

    def room(self, entry: CatalogEntry) -> int:
        """How many more jobs of this entry's deployment may be in flight."""
        group = Group.of(entry, batching=self.settings.batching)
        app = group.app_name(self.prefix)
        replicas = min(self.replicas[app] + 1, self.settings.ray_max_replicas)
        in_flight = sum(1 for f in self.flights.values() if f.app == app)
        return replicas * group.max_ongoing_requests - in_flight

    async def _handle(self, group: Group) -> object | None:
        """The group's deployment handle, deployed on first use (None if Ray refused it)."""
        name = group.app_name(self.prefix)
        if name not in self._handles:
            try:
                self._handles[name] = await asyncio.to_thread(deploy, self.settings, self.catalog, group, name)
            except Exception as exc:  # Ray could not deploy it (resources, cluster down): jobs wait
                log.error("could not deploy %s on Ray (trying again in 5 s): %s", name, exc)
                await asyncio.sleep(5)
                return None
        return self._handles[name]

    def _send(self, handle: object, entry: CatalogEntry, group: Group, job: Job) -> None:
        from ray.serve.handle import DeploymentHandle

        assert isinstance(handle, DeploymentHandle)
        request = json.dumps({"job_id": job.id, "model_id": job.model_id, "batch_key": job.batch_key, "owner": self.id})
        response = handle.options(multiplexed_model_id=model_key(entry)).remote(request)
        timeout = entry.runtime.timeout_s or self.settings.job_timeout_s
        flight = Flight(app=group.app_name(self.prefix), deadline=time.monotonic() + timeout)
        self.flights[job.id] = flight
        flight.task = asyncio.create_task(self._watch(job.id, response))
        self.sent += 1

    async def _watch(self, job_id: str, response: object) -> None:
        try:
            await response  # type: ignore[misc]  # a DeploymentResponse is awaitable
        except Exception as exc:  # the replica died, or Ray could not reach it
            log.warning(
                "job %s: Ray call failed (%s); its lease will end and the reaper re-queues it",
                job_id,
                type(exc).__name__,
            )
        finally:
            self.flights.pop(job_id, None)
            self._wake.set()

    # -- leases, heartbeats, reaping -------------------------------------------------------

    async def _heartbeat_loop(self) -> None:
        interval = min(self.settings.heartbeat_s, self.settings.lease_s / 3)
        while True:
            await asyncio.sleep(interval)
            try:
                await asyncio.to_thread(self._heartbeat, interval)
            except DBAPIError as exc:
                log.warning("heartbeat failed: %s", exc.__class__.__name__)

    def _heartbeat(self, interval: float) -> None:
        held = [job_id for job_id, f in self.flights.items() if f.held]
        for job_id in self.queue.renew(self.id, held):  # taken over by a replica, or lost
            if job_id in self.flights:
                self.flights[job_id].held = False
        now = time.monotonic()
        for job_id, flight in list(self.flights.items()):
            if flight.held and now > flight.deadline:
                flight.held = False
                self.queue.fail(self.id, job_id, "timeout", "no Ray replica started the job in time", retry=False)
        workers = self.registry.active(within_s=max(3 * interval, 1.0))
        apps = {w.id: app_of_replica(w.id) or "" for w in workers}
        ours = [w for w in workers if apps[w.id].startswith(f"{self.prefix}-")]
        self.held_models = sorted({m for w in ours for m in w.models})
        self.replicas = Counter(apps[w.id] for w in ours)
        current = [job_id for job_id, f in self.flights.items() if f.held]
        self.registry.heartbeat(self.id, models=self.held_models, current_jobs=current)

    async def _reaper_loop(self) -> None:
        while True:
            await asyncio.sleep(max(self.settings.lease_s / 2, 0.5))
            try:
                await asyncio.to_thread(self.queue.reap)
            except DBAPIError as exc:
                log.warning("reaping failed: %s", exc.__class__.__name__)


def run_dispatcher(settings: Settings, catalog: Catalog) -> None:
    """Join the Ray cluster at ``ray_address`` (or start a local Ray), start Serve without its
    HTTP proxy (the API is limner's own), and dispatch until SIGTERM/SIGINT."""
    import ray
    from ray import serve

    if settings.ray_address:
        ray.init(address=settings.ray_address)
    else:
        ray.init(include_dashboard=False)
    serve.start(proxy_location="Disabled")

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await RayDispatcher(settings, catalog).serve(stop)

    try:
        asyncio.run(main())
    finally:
        if not settings.ray_address:
            ray.shutdown()  # the local Ray dies with its deployments; on a cluster they stay up
