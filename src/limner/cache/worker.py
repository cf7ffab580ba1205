"""The cache's worker side: answer jobs from the cache before a batch runs, and remember
results as the jobs complete.

The worker calls ``serve_from_cache`` before running a batch and ``remember`` for each job it
completes. Exact and identical-input lookups read the store. Semantic ones follow the model's
``cache.semantic_method``: ``slots`` (the default) parses the prompt into content slots
(limner.cache.slots), looks up entries with the same hard slots (SlotIndex, a dict), and
embeds the normalised prompts only when soft words differ; ``cosine`` embeds the prompt and
searches the faiss index. Embeddings (sentence-transformers, torch) run in workers only.
Every lookup stays inside the job's scope: its project, unless the model shares its cache
(``cache.shared``). ``approximate`` serves the adapters' partial reuse (limner.cache.approximate).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from sqlalchemy import Connection

from limner.cache import keys
from limner.cache.approximate import ApproximateCache
from limner.cache.latents import LatentStore
from limner.cache.semantic import Embedder, SemanticIndex
from limner.cache.slot_index import SlotIndex
from limner.cache.slots import disagreement, parse, parsed_prompt
from limner.cache.store import CacheHit, CacheStore, NewEntry, hit_result, semantic_hit
from limner.catalog.entry import CatalogEntry
from limner.logs import job_id
from limner.settings import Settings
from limner.storage import Storage
from limner.store.engine import Engines
from limner.store.queue import WorkQueue
from limner.store.records import Job

log = logging.getLogger("limner.worker")


class WorkerCache:
    def __init__(
        self, settings: Settings, engines: Engines, storage: Storage, queue: WorkQueue, worker_id: str
    ) -> None:
        self.settings = settings
        self.queue = queue
        self.worker_id = worker_id
        self.cache = CacheStore(engines, storage, ttl_s=settings.cache_ttl_s)
        self.embedder = Embedder(settings.embedding_model)
        self.semantic = SemanticIndex(settings.home / "cache-index", self.cache)
        self.slots = SlotIndex(settings.home / "cache-index", self.cache)
        self.counters: dict[str, Any] = {"cache_hits_exact": 0, "cache_hits_semantic": 0, "cache_saved_s": 0.0}
        latents = LatentStore(settings.home / "cache-latents", settings.cache_latent_budget_mb * 1024 * 1024)
        self.approximate = ApproximateCache(latents, self.embed, counters=self.counters)
        self._embedded: tuple[str | None, Any] = (None, None)
        self._texts: dict[str, Any] = {}  # normalised prompt -> embedding (soft-word comparisons)

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
        scope = keys.scope_of(entry, job.project)
        hit = self.cache.find(entry.id, revision, scope=scope, exact_key=keys.exact_key(entry, job.input))
        if hit is not None or mode != "semantic":
            return hit
        hit = self.cache.find(entry.id, revision, scope=scope, input_key=keys.input_key(entry, job.input))
        if hit is not None:
            return hit
        if entry.cache.semantic_method == "slots":
            return self._by_slots(entry, job, revision, scope)
        return self._semantic(entry, job, revision, scope)

    def embed(self, prompt: str) -> Any:
        """The prompt's embedding; the last one is kept, so a miss is remembered without
        embedding its prompt twice."""
        known, vector = self._embedded
        if known != prompt:
            vector = self.embedder.encode([prompt])[0]
            self._embedded = (prompt, vector)
        return vector

    def _by_slots(self, entry: CatalogEntry, job: Job, revision: str, scope: str) -> CacheHit | None:
        prompt = keys.prompt_of(job.input)
        if not prompt:
            return None
        query = parse(prompt)
        seqs = self.slots.candidates(entry.id, query.key)
        if not seqs:
            return None
        candidates = self.cache.by_seq(seqs, keys.group_key(entry, job.input), scope)
        present = self.cache.existing(seqs)
        self.slots.forget(entry.id, [seq for seq in seqs if seq not in present])
        agreeing = [
            (parsed_prompt(c["prompt"]), c)
            for c in sorted(candidates, key=lambda c: -int(c["seq"]))  # newest first
            if c["revision_key"] == revision and disagreement(query, parsed_prompt(c["prompt"])) is None
        ]
        # Every slot and every soft word agrees: no embedding needed.
        for slots, candidate in agreeing:
            if slots.soft == query.soft and self.cache.usable(candidate):  # unusable entries are deleted
                return semantic_hit(candidate, 1.0, "slots")
        # Only soft words differ: the normalised prompts' cosine decides.
        others = [(s, c) for s, c in agreeing if s.soft != query.soft]
        if not others:
            return None
        similarities = self._cosines(query.text, [s.text for s, _ in others])
        ranked = sorted(zip(similarities, others, strict=True), key=lambda m: -m[0])
        for similarity, (_, candidate) in ranked:
            if similarity >= entry.cache.semantic_threshold and self.cache.usable(candidate):
                return semantic_hit(candidate, similarity, "slots")
        return None

    def _cosines(self, text: str, others: list[str]) -> list[float]:
        """Cosine of ``text``'s embedding with each of ``others`` (normalised prompts, cached)."""
        missing = list(dict.fromkeys(t for t in (text, *others) if t not in self._texts))
        if missing:
            if len(self._texts) > 10_000:
                self._texts.clear()
            self._texts.update(zip(missing, self.embedder.encode(missing), strict=True))
        return [float(np.dot(self._texts[text], self._texts[other])) for other in others]

    def _semantic(self, entry: CatalogEntry, job: Job, revision: str, scope: str) -> CacheHit | None:
        vector = self.embed(keys.prompt_of(job.input))
        found = self.semantic.search(entry.id, vector, entry.cache.semantic_threshold)
        if not found:
            return None
        similarity = dict(found)
        candidates = self.cache.by_seq([seq for seq, _ in found], keys.group_key(entry, job.input), scope)
        candidates = [c for c in candidates if c["revision_key"] == revision]
        candidates.sort(key=lambda c: -similarity[c["seq"]])
        hit = None
        for candidate in candidates:
            if self.cache.usable(candidate):  # an unusable entry is deleted from the store
                hit = semantic_hit(candidate, similarity[candidate["seq"]], "cosine")
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

    def _entry(self, entry: CatalogEntry, revision: str, job: Job, result: dict[str, Any]) -> NewEntry | None:
        if entry.cache.mode == "off" and not entry.cache.semantic:
            return None
        prompt = keys.prompt_of(job.input)
        embedding = None
        # The raw prompt's embedding serves the cosine method's faiss index; the slots method
        # indexes the prompt text itself and embeds only when soft words differ.
        if entry.cache.semantic and entry.cache.semantic_method == "cosine" and prompt:
            embedding = np.asarray(self.embed(prompt), dtype=np.float32).tobytes()
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
            scope=keys.scope_of(entry, job.project),
        )

    def close(self) -> None:
        try:
            self.semantic.save_all()
            self.slots.save_all()
        except Exception as exc:
            log.warning("could not save the semantic index: %s", exc)
