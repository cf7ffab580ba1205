"""What a worker does around each batch for the cache, cost accounting, quality and metrics.

Kept out of ``worker.py`` so the batch loop stays readable: the worker calls
``serve_from_cache`` before running a batch, ``after_complete`` for every job it completed,
and ``stats`` with every heartbeat.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from sqlalchemy import Connection

from limner.cache import keys
from limner.catalog.entry import CatalogEntry
from limner.logs import job_id
from limner.runtime.quality import QualityMonitor
from limner.runtime.residency import Residency
from limner.runtime.semantic import Embedder, SemanticIndex
from limner.settings import Settings
from limner.storage import Storage
from limner.store.cache import CacheHit, CacheStore, NewEntry, hit_result, semantic_hit
from limner.store.engine import Engines
from limner.store.queue import WorkQueue
from limner.store.records import Job

log = logging.getLogger("limner.worker")


def rss_bytes() -> int:
    """Resident memory of this process (Linux /proc; 0 where unavailable)."""
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


class WorkerHooks:
    def __init__(
        self, settings: Settings, engines: Engines, storage: Storage, queue: WorkQueue, worker_id: str, device: str
    ) -> None:
        self.settings = settings
        self.queue = queue
        self.worker_id = worker_id
        self.cache = CacheStore(engines, storage, ttl_s=settings.cache_ttl_s)
        self.embedder = Embedder(settings.embedding_model)
        self.semantic = SemanticIndex(settings.home / "cache-index", self.cache)
        self.quality = QualityMonitor(settings, engines, storage, device)
        self.counters = {"cache_hits_exact": 0, "cache_hits_semantic": 0, "cache_saved_s": 0.0}
        self._embedded: tuple[str | None, Any] = (None, None)

    # -- before a batch --------------------------------------------------------------------

    def serve_from_cache(self, entry: CatalogEntry, jobs: list[Job]) -> list[Job]:
        """Complete the jobs the cache can answer (exact key, or a semantic match for unseeded
        requests); return the ones the model must run. Also puts the batch's job ids in the
        log context (every log line of the batch carries them)."""
        job_id.set(",".join(j.id for j in jobs))
        remaining: list[Job] = []
        for job in jobs:
            hit = None
            try:
                hit = self._lookup(entry, job)
            except Exception as exc:  # the cache is an optimisation: never fail a job over it
                log.warning("cache lookup for %s failed: %s: %s", job.id, type(exc).__name__, exc)
            if hit is None or not self._complete_from(hit, job):
                remaining.append(job)
        return remaining

    def _lookup(self, entry: CatalogEntry, job: Job) -> CacheHit | None:
        mode = job.cache_mode or "off"
        if mode == "off":
            return None
        revision = keys.revision_key(entry)
        hit = self.cache.find(entry.id, revision, exact_key=keys.exact_key(entry, job.input))
        if hit is not None or mode != "semantic":
            return hit
        hit = self.cache.find(entry.id, revision, input_key=keys.input_key(entry, job.input))
        if hit is not None:
            return hit
        return self._semantic(entry, job, revision)

    def _semantic(self, entry: CatalogEntry, job: Job, revision: str) -> CacheHit | None:
        prompt = keys.prompt_of(job.input)
        vector = self.embedder.encode([prompt])[0]
        self._embedded = (prompt, vector)  # a miss is remembered with the same embedding
        found = self.semantic.search(entry.id, vector, entry.cache.semantic_threshold)
        if not found:
            return None
        similarity = dict(found)
        candidates = self.cache.by_seq([seq for seq, _ in found], keys.group_key(entry, job.input))
        candidates = [c for c in candidates if c["revision_key"] == revision]
        candidates.sort(key=lambda c: -similarity[c["seq"]])
        hit = None
        for candidate in candidates:
            if self.cache.usable(candidate):  # an unusable entry is deleted from the store
                hit = semantic_hit(candidate, similarity[candidate["seq"]])
                break
        # Entries the store no longer has (dropped, expired, purged) leave the index too.
        present = self.cache.existing([seq for seq, _ in found])
        self.semantic.forget(entry.id, [seq for seq, _ in found if seq not in present])
        return hit

    def _complete_from(self, hit: CacheHit, job: Job) -> bool:
        now = time.time()
        result = hit_result(hit, job.input, job.created_at, now)
        # The hit is logged in the completing transaction: whoever sees the job done sees why.
        if not self.queue.complete(
            self.worker_id, job.id, result, also=lambda c: self.cache.hit_logged(c, job.id, hit, now)
        ):
            return True  # we lost the job meanwhile; nothing more to do with it
        self.counters[f"cache_hits_{hit.kind}"] += 1
        self.counters["cache_saved_s"] += hit.compute_s
        log.info("job %s answered from the cache (%s hit of %s)", job.id, hit.kind, hit.source_job_id)
        return True

    # -- after a job -----------------------------------------------------------------------

    def remember(
        self, entry: CatalogEntry, revision: str, job: Job, result: dict[str, Any]
    ) -> Callable[[Connection], None] | None:
        """The cache entry for a result, as a step to run in the transaction that completes
        the job (so a client who saw it complete and asks again finds it, and a completion
        that does not go through leaves no entry); None when the result is not cached."""
        try:
            new = self._entry(entry, revision, job, result)
        except Exception as exc:
            log.warning("could not cache the result of %s: %s: %s", job.id, type(exc).__name__, exc)
            return None
        if new is None:
            return None
        return lambda conn: self._insert(new, conn)

    def _insert(self, new: NewEntry, conn: Connection) -> None:
        # A cache that cannot take the entry must not fail the completion: a savepoint keeps
        # the job's transaction intact.
        try:
            with conn.begin_nested():
                self.cache.remember(new, conn)
        except Exception as exc:
            log.warning("could not cache the result of %s: %s: %s", new.source_job_id, type(exc).__name__, exc)

    def after_complete(self, entry: CatalogEntry, job: Job, result: dict[str, Any]) -> None:
        """Queue the job's quality scoring (off the request's critical path)."""
        if entry.quality.enabled:
            self.quality.submit(entry, job, result)

    def _entry(self, entry: CatalogEntry, revision: str, job: Job, result: dict[str, Any]) -> NewEntry | None:
        if entry.cache.mode == "off" and not entry.cache.semantic:
            return None
        prompt = keys.prompt_of(job.input)
        embedding = None
        if entry.cache.semantic and prompt:
            known, vector = self._embedded
            if known != prompt:
                vector = self.embedder.encode([prompt])[0]
            embedding = np.asarray(vector, dtype=np.float32).tobytes()
        return NewEntry(
            model_id=entry.id,
            revision_key=keys.revision_key(entry),
            revision=revision,
            exact_key=keys.exact_key(entry, job.input),
            input_key=keys.input_key(entry, job.input),
            group_key=keys.group_key(entry, job.input),
            prompt=prompt,
            embedding=embedding,
            source_job_id=job.id,
            result=result,
            compute_s=float((result.get("usage") or {}).get("compute_s") or 0.0),
        )

    # -- heartbeats ------------------------------------------------------------------------

    def stats(self, residency: Residency, batches_run: int) -> dict[str, Any]:
        return {
            "rss_bytes": rss_bytes(),
            "resident_bytes": residency.used_bytes,
            "budget_bytes": residency.budget_bytes,
            "model_loads": residency.loads,
            "model_evictions": residency.evictions,
            "batches_run": batches_run,
            **self.counters,
            "quality_scored": self.quality.scored,
        }

    def close(self) -> None:
        self.quality.stop()
        try:
            self.semantic.save_all()
        except Exception as exc:
            log.warning("could not save the semantic index: %s", exc)
