"""Approximate caching (NIRVANA, Agarwal et al., NSDI'24): a diffusion request close to a cached
one, but not a hit, starts from that job's latent after K denoising steps and runs only the
remaining N - K. The nearer the cached prompt, the larger K (``k_for``, the catalog's bands).

The adapter's side is small (``BatchReuse``, one per batch, built by the worker):

    reuse = worker_cache.approximate.for_batch(entry, jobs)      # runtime/worker.py, per batch
    plan = reuse.plan(job_id)                 # ResumePlan(latents, skip_steps=K, ...) or None
    steps = reuse.capture_steps(job_id, n)    # which step latents to keep (after K steps each)
    reuse.save(job_id, {k: latent, ...}, n)   # after the run: keep them for later requests
    extra["cache"] = reuse.record(job_id)     # the result says what was reused

``limner.cache.resume`` has the diffusers mechanics (capture callback, restart arguments).
Only unseeded semantic-mode requests take part (an explicit seed asks for that seed's image),
and only on models whose catalog entry opts in (``cache.approximate.enabled``). Every lookup
stays in the job's scope (its project unless the model shares its cache).
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from limner.cache import keys
from limner.cache.latents import LatentRecord, LatentStore
from limner.catalog.entry import CatalogEntry
from limner.catalog.options import ApproximateOptions
from limner.store.records import Job

log = logging.getLogger("limner.cache")
Vector = np.ndarray[Any, np.dtype[np.float32]]


def k_for(similarity: float, total_steps: int, options: ApproximateOptions) -> int:
    """Steps to skip for a cached prompt this similar: the first band reached gives its share
    of the steps (rounded down, at least 1, always leaving one step to run); 0 below every band."""
    if total_steps < options.min_steps:
        return 0
    for least, share in options.bands:
        if similarity >= least:
            return max(1, min(total_steps - 1, int(share * total_steps)))
    return 0


def capture_points(total_steps: int, options: ApproximateOptions) -> list[int]:
    """The K a later request may ask for: one per band (what a finished job keeps)."""
    if total_steps < options.min_steps:
        return []
    return sorted({max(1, min(total_steps - 1, int(share * total_steps))) for _, share in options.bands})


@dataclass(frozen=True)
class ResumePlan:
    """Start this job from ``latents`` (the cached job's state after ``skip_steps`` of
    ``total_steps`` steps) and run the rest."""

    latents: np.ndarray[Any, Any]
    skip_steps: int
    total_steps: int
    similarity: float
    matched_prompt: str
    source_request_id: str
    audit: bool = False  # also run in full and judge the quality gate (QualityGate)


class TextEmbedder(Protocol):
    def encode(self, texts: list[str]) -> Vector: ...


class ClipScoring(Protocol):
    def score(self, images: list[Any], prompt: str) -> tuple[list[float], Any]: ...


@dataclass
class QualityGate:
    """CLIP score of approximate outputs against full runs of the same request, on real models.

    Every ``audit_every``-th plan is marked ``audit``: the adapter also runs that request in
    full and hands both images to ``judge``. While the last ``window`` audits' mean CLIP score
    of the approximate images is more than ``max_clip_drop`` below the full runs', the model
    gets no approximate plans (it is re-checked when new audits would come: every
    ``audit_every`` lookups one plan still goes out, as an audit)."""

    audit_every: int = 20
    window: int = 10
    pairs: dict[str, deque[tuple[float, float]]] = field(default_factory=dict)
    plans: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def next_is_audit(self, model_id: str) -> bool:
        with self._lock:
            self.plans[model_id] = self.plans.get(model_id, 0) + 1
            return self.plans[model_id] % self.audit_every == 0

    def judge(self, model_id: str, scorer: ClipScoring, prompt: str, approximate: Any, full: Any) -> dict[str, float]:
        scores, _ = scorer.score([approximate, full], prompt)
        with self._lock:
            self.pairs.setdefault(model_id, deque(maxlen=self.window)).append((scores[0], scores[1]))
        return {"clip_approximate": round(scores[0], 4), "clip_full": round(scores[1], 4)}

    def allows(self, model_id: str, max_clip_drop: float) -> bool:
        with self._lock:
            pairs = list(self.pairs.get(model_id, ()))
        if len(pairs) < self.window:
            return True
        approximate = float(np.mean([a for a, _ in pairs]))
        full = float(np.mean([f for _, f in pairs]))
        return approximate >= full * (1 - max_clip_drop)


class ApproximateCache:
    """Finds the nearest cached latents for a request and keeps new ones."""

    def __init__(
        self,
        store: LatentStore,
        embed: Callable[[str], Vector],
        gate: QualityGate | None = None,
        counters: dict[str, Any] | None = None,
    ) -> None:
        self.store = store
        self.embed = embed
        self.gate = gate or QualityGate()
        self.counters = counters if counters is not None else {}  # the worker's stats, when given
        self.counters.update({"approximate_plans": 0, "approximate_skipped_steps": 0, "approximate_saved": 0})

    def enabled_for(self, entry: CatalogEntry, job: Job) -> bool:
        return entry.cache.approximate.enabled and job.cache_mode == "semantic" and bool(keys.prompt_of(job.input))

    def nearest(self, entry: CatalogEntry, job: Job, vector: Vector | None = None) -> tuple[LatentRecord, float] | None:
        """The stored job of this scope, model revision and parameters (group key) whose prompt
        is most similar to ``job``'s, with that cosine."""
        group = keys.group_key(entry, job.input)
        revision = keys.revision_key(entry)
        steps = int(job.input.get("num_inference_steps") or 0)
        records = [
            r
            for r in self.store.records(keys.scope_of(entry, job.project), entry.id)
            if r.group_key == group and r.revision_key == revision and r.total_steps == steps and r.job_id != job.id
        ]
        if not records:
            return None
        query = self.embed(keys.prompt_of(job.input)) if vector is None else vector
        sims = np.stack([r.embedding for r in records]) @ query
        best = int(np.argmax(sims))
        return records[best], float(sims[best])

    def plan(self, entry: CatalogEntry, job: Job) -> ResumePlan | None:
        if not self.enabled_for(entry, job):
            return None
        options = entry.cache.approximate
        audit = self.gate.next_is_audit(entry.id)
        if not audit and not self.gate.allows(entry.id, options.max_clip_drop):
            return None
        found = self.nearest(entry, job)
        if found is None:
            return None
        record, similarity = found
        wanted = k_for(similarity, record.total_steps, options)
        usable = [k for k in record.steps if k <= wanted]
        if not usable:
            return None
        skip = max(usable)  # the largest saved step within what this similarity allows
        latents = self.store.load(record, skip)
        if latents is None:
            return None
        self.counters["approximate_plans"] += 1
        self.counters["approximate_skipped_steps"] += skip
        return ResumePlan(latents, skip, record.total_steps, similarity, record.prompt, record.job_id, audit)

    def save(self, entry: CatalogEntry, job: Job, latents: dict[int, np.ndarray[Any, Any]], total_steps: int) -> bool:
        prompt = keys.prompt_of(job.input)
        path = self.store.save(
            keys.scope_of(entry, job.project),
            entry.id,
            job.id,
            revision_key=keys.revision_key(entry),
            group_key=keys.group_key(entry, job.input),
            prompt=prompt,
            embedding=self.embed(prompt),
            total_steps=total_steps,
            latents=latents,
        )
        if path is not None:
            self.counters["approximate_saved"] += 1
        return path is not None

    def for_batch(self, entry: CatalogEntry, jobs: Sequence[Job]) -> BatchReuse:
        return BatchReuse(self, entry, {j.id: j for j in jobs if self.enabled_for(entry, j)})


class BatchReuse:
    """What the diffusers adapter calls for one batch, by job id (see the module docstring).
    Never raises: the cache is an optimisation, and a job runs in full when reuse fails."""

    def __init__(self, cache: ApproximateCache, entry: CatalogEntry, jobs: dict[str, Job]) -> None:
        self.cache = cache
        self.entry = entry
        self.jobs = jobs
        self.plans: dict[str, ResumePlan] = {}
        self.ran_steps: dict[str, int] = {}  # a resumed job's steps as its call counted them

    def plan(self, job_id: str) -> ResumePlan | None:
        job = self.jobs.get(job_id)
        if job is None:
            return None
        try:
            found = self.cache.plan(self.entry, job)
        except Exception as exc:
            log.warning("approximate cache lookup for %s failed: %s: %s", job_id, type(exc).__name__, exc)
            return None
        if found is not None:
            self.plans[job_id] = found
        return found

    def capture_steps(self, job_id: str, total_steps: int) -> list[int]:
        """Steps after which the adapter should copy the latents for ``save`` (none for jobs
        that do not take part); a resumed job keeps only those past its own start."""
        if job_id not in self.jobs:
            return []
        start = self.plans[job_id].skip_steps if job_id in self.plans else 0
        return [k for k in capture_points(total_steps, self.entry.cache.approximate) if k > start]

    def save(self, job_id: str, latents: dict[int, np.ndarray[Any, Any]], total_steps: int) -> bool:
        job = self.jobs.get(job_id)
        if job is None or not latents:
            return False
        try:
            return self.cache.save(self.entry, job, latents, total_steps)
        except Exception as exc:
            log.warning("could not keep the latents of %s: %s: %s", job_id, type(exc).__name__, exc)
            return False

    def record(self, job_id: str, audit: dict[str, float] | None = None) -> dict[str, Any] | None:
        """The result's ``cache`` field for a job that was resumed, else None."""
        plan = self.plans.get(job_id)
        if plan is None:
            return None
        record: dict[str, Any] = {
            "hit": "approximate",
            "method": "nirvana",
            "skipped_steps": plan.skip_steps,
            "total_steps": plan.total_steps,
            "similarity": round(plan.similarity, 4),
            "matched_prompt": plan.matched_prompt,
            "source_request_id": plan.source_request_id,
        }
        if job_id in self.ran_steps:
            record["ran_steps"] = self.ran_steps[job_id]
        if audit:
            record["audit"] = audit
        return record
