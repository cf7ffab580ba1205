"""The API's side of the cache: answering a submission at once, before it is queued.

A seeded request is looked up by its exact key; an unseeded one that allows semantic hits by
an identical earlier input (any seed). Semantic matches of other prompts need embeddings,
which only workers compute (the API never imports torch).
"""

from __future__ import annotations

import logging

from limner.cache import keys
from limner.cache.store import CacheStore
from limner.catalog.entry import CatalogEntry
from limner.logs import job_id
from limner.store.jobs import JobStore
from limner.store.records import NewJob, Submitted

log = logging.getLogger("limner.cache")


class SubmitCache:
    def __init__(self, store: CacheStore, jobs: JobStore) -> None:
        self.store = store
        self.jobs = jobs
        # Models with cache entries, refreshed every couple of seconds (UsageRecorder): a
        # submission for a model with none skips the lookup (a thread hop and a query). An entry
        # made since is still found by the worker's own lookup before it runs the job.
        self.models_with_entries: set[str] = set()

    def refresh(self) -> None:
        self.models_with_entries = self.store.models()

    def may_answer(self, entry: CatalogEntry) -> bool:
        return entry.id in self.models_with_entries

    def answer(self, entry: CatalogEntry, job: NewJob) -> Submitted | None:
        """Write ``job`` as already succeeded from a cached result of its scope, or None."""
        revision = keys.revision_key(entry)
        scope = keys.scope_of(entry, job.project)
        if job.cache_mode == "semantic":
            hit = self.store.find(entry.id, revision, scope=scope, input_key=keys.input_key(entry, job.input))
        else:
            hit = self.store.find(entry.id, revision, scope=scope, exact_key=keys.exact_key(entry, job.input))
        if hit is None:
            return None
        self.store.serve(self.jobs, job, hit)
        job_id.set(job.id)
        log.info("request %s answered from the cache (%s hit of %s)", job.id, hit.kind, hit.source_job_id)
        return Submitted(job_id=job.id, created=True)
