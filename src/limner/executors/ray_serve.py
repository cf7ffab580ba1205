"""Ray Serve deployments that run limner models.

One deployment (a Serve application) per *runtime group*: the catalog entries that share
``num_gpus``, ``max_batch_size`` and ``batch_wait_ms``, because those are per-deployment
settings in Ray (``ray_actor_options``, ``@serve.batch``). Within a group, models are
multiplexed over the replicas (``@serve.multiplexed``): the multiplexed model id is a hash of
the entry's residency key, so entries that share weights share one loaded copy, and Ray routes a
request to a replica that already holds its model. Requests (one per job) are batched by
``@serve.batch``; Ray splits batches by model id. Autoscaling follows Ray's count of ongoing
requests per replica (``target_ongoing_requests``: one batch's worth).

A replica is a limner ``Worker`` without the claim loop: it registers itself in the job store
(so ``GET /v1/workers`` shows it, with the models it holds), heartbeats, renews the leases of
the jobs it runs, fails a batch that overruns its timeout, and runs each batch with
``Worker.process`` (progress, cancel flags, storage, results fenced by lease).

Who holds a job's lease: the dispatcher claims it under its own id; the replica that takes the
request moves the lease to its own id (``WorkQueue.hand_over``) before it runs the job. So a
job waiting in Ray's queues is kept alive by the dispatcher, and a running job by the replica
that runs it: when a replica dies its renewals stop and the reaper re-queues the job, without
relying on Ray to report the death; when the dispatcher dies, the replicas finish what they
run. A replica that lost a job (it ran elsewhere meanwhile) cannot write its result.

Arguments and results cross Ray as JSON strings: Ray's own transport pickles, but nothing of
limner's is pickled.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import math
from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ray import serve
from ray.serve.handle import DeploymentHandle

from limner.catalog import Catalog, CatalogEntry
from limner.settings import Settings

if TYPE_CHECKING:
    from limner.runtime.residency import Residency
    from limner.runtime.worker import Worker

log = logging.getLogger("limner.ray")


@dataclass(frozen=True)
class Group:
    """Catalog entries that can share one Ray deployment."""

    num_gpus: float
    max_batch_size: int
    batch_wait_ms: int

    @classmethod
    def of(cls, entry: CatalogEntry, *, batching: bool = True) -> Group:
        runtime = entry.runtime
        batch = runtime.max_batch_size if batching else 1
        return cls(num_gpus=runtime.num_gpus, max_batch_size=batch, batch_wait_ms=runtime.batch_wait_ms)

    @property
    def max_ongoing_requests(self) -> int:
        """One batch running and the next one filling."""
        return 2 * self.max_batch_size

    def app_name(self, prefix: str) -> str:
        gpus = f"{self.num_gpus:g}".replace(".", "_")
        return f"{prefix}-g{gpus}-b{self.max_batch_size}-w{self.batch_wait_ms}"


def app_prefix(settings: Settings) -> str:
    """Serve application names of one limner installation (one job store): a Ray cluster may
    serve several."""
    return "limner-" + hashlib.sha256(settings.store.encode()).hexdigest()[:8]


def app_of_replica(worker_id: str) -> str | None:
    """The application of a replica, from its worker id (its Ray actor name,
    ``SERVE_REPLICA::<app>#<deployment>#<suffix>``); None for other workers."""
    head, sep, rest = worker_id.partition("SERVE_REPLICA::")
    return rest.split("#", 1)[0] if sep and not head else None


def model_key(entry: CatalogEntry) -> str:
    """The multiplexed model id: entries with the same residency key share one loaded copy."""
    return hashlib.sha256(entry.residency_key.encode()).hexdigest()[:16]


class Resident:
    """What the multiplexed loader returns: a claim on a model's place in the replica, which
    ``Worker.process`` fills (it loads the weights when the batch runs, so the load shows in
    the jobs' progress and logs). When Ray's per-replica LRU drops it, Ray calls
    ``__del__``, which unloads the model from the worker's residency. Python calls it again when
    the object goes: by then the model may have been loaded anew, so only the first call counts."""

    def __init__(self, residency: Residency, key: str) -> None:
        self.residency = residency
        self.key = key
        self.released = False

    def __del__(self) -> None:
        if not self.released:
            self.released = True
            self.residency.discard(self.key)


class LimnerReplica:
    """The body of each Ray Serve deployment (see the module docstring)."""

    def __init__(self, settings_json: str, catalog_json: str, max_batch_size: int, batch_wait_ms: int) -> None:
        from limner.runtime.worker import Worker  # torch: only inside the replica process

        settings = Settings.model_validate(json.loads(settings_json))
        self.catalog = Catalog(CatalogEntry.model_validate(e) for e in json.loads(catalog_json))
        replica_id = serve.get_replica_context().replica_id.to_full_id_str()
        self.worker: Worker = Worker(settings, self.catalog, worker_id=replica_id)
        self.threads = self.worker.attach()
        self.entries = {model_key(e): e for e in self.catalog}

        # Wired here rather than as decorators: their sizes come from the settings and the group.
        # Serve keeps its model table on the loader function, so it must be a plain function.
        async def load(key: str) -> Resident:
            return await self._load(key)

        self.load_model = serve.multiplexed(max_num_models_per_replica=settings.ray_models_per_replica)(load)
        batcher: Any = self.run_batch  # @serve.batch's setters are not in its type
        batcher.set_max_batch_size(max_batch_size)
        batcher.set_batch_wait_timeout_s(batch_wait_ms / 1000)

    async def _load(self, key: str) -> Resident:
        # No weights load here: the jobs' leases are still the dispatcher's and no batch
        # context reports for them yet; Worker.process loads, under the jobs' ``loading`` stage.
        return Resident(self.worker.residency, self.entries[key].residency_key)

    async def __call__(self, request: str) -> str:
        """One job: ``{"job_id", "model_id", "batch_key", "owner"}``; answers ``{"job_id", "ran"}``."""
        answer: str = await self.run_batch(request)
        return answer

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.0)
    async def run_batch(self, requests: list[str]) -> list[str]:
        await self.load_model(serve.get_multiplexed_model_id())
        asked = [json.loads(r) for r in requests]
        ran = await asyncio.to_thread(self._run, asked)
        return [json.dumps({"job_id": a["job_id"], "ran": a["job_id"] in ran}) for a in asked]

    def _run(self, asked: list[dict[str, Any]]) -> set[str]:
        """Take the leases over, then run the jobs grouped by what can share a forward pass."""
        queue, me = self.worker.queue, self.worker.id
        by_owner: dict[str, list[str]] = defaultdict(list)
        for a in asked:
            by_owner[a["owner"]].append(a["job_id"])
        jobs = [job for owner, ids in by_owner.items() for job in queue.hand_over(owner, me, ids)]
        batches: dict[tuple[str, str], list[Any]] = defaultdict(list)
        for job in sorted(jobs, key=lambda j: j.rank):
            if job.cancel_requested:
                queue.finish_canceled(me, job.id, "canceled before it started")
            else:
                batches[(job.model_id, job.batch_key)].append(job)
        for (model_id, _key), group in batches.items():
            self.worker.process(self.catalog.get(model_id), group)
        return {job.id for group in batches.values() for job in group}

    def __del__(self) -> None:
        """Serve calls this when it stops the replica: leave the store as a worker does."""
        worker = getattr(self, "worker", None)
        if worker is not None:
            worker.detach(self.threads)


def replica_settings(settings: Settings) -> Settings:
    """A replica's settings: torch threads match the CPUs Ray reserved for it."""
    return settings.model_copy(update={"threads": max(1, math.ceil(settings.ray_num_cpus))})


def deploy(settings: Settings, catalog: Catalog, group: Group, name: str) -> DeploymentHandle[Any]:
    """Create or update one group's application; returns its handle once replicas are up."""
    entries = [e.model_dump(mode="json") for e in catalog if Group.of(e, batching=settings.batching) == group]
    deployment = serve.deployment(
        name="replica",
        ray_actor_options={"num_cpus": settings.ray_num_cpus, "num_gpus": group.num_gpus},
        max_ongoing_requests=group.max_ongoing_requests,
        autoscaling_config={
            "min_replicas": settings.ray_min_replicas,
            "initial_replicas": max(1, settings.ray_min_replicas),
            "max_replicas": settings.ray_max_replicas,
            "target_ongoing_requests": group.max_batch_size,
        },
    )(LimnerReplica)
    app = deployment.bind(
        replica_settings(settings).model_dump_json(), json.dumps(entries), group.max_batch_size, group.batch_wait_ms
    )
    log.info("deploying %s (%d model(s)) on Ray", name, len(entries))
    return serve.run(app, name=name, route_prefix=None)
