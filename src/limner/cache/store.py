"""The result cache's entries in the job store: remember, look up, serve, purge.

An entry points at a finished job's stored files (it never copies them), so an entry lives
exactly as long as its media: a lookup checks that every file is still in storage and drops
the entry otherwise, and ``purge_expired`` sweeps entries whose files or ``expires_at`` went.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select, update

from limner.storage import Storage
from limner.storage.base import key_of
from limner.store.ends import ended
from limner.store.engine import Engines
from limner.store.jobs import JobStore
from limner.store.notify import notify
from limner.store.records import NewJob
from limner.store.schema import cache_entries, job_events, jobs
from limner.store.states import SUCCEEDED, check_birth

REVISION_TTL_S = 5.0


@dataclass(frozen=True)
class CacheHit:
    seq: int
    kind: str  # "exact" or "semantic"
    source_job_id: str
    result: dict[str, Any]
    compute_s: float
    similarity: float
    prompt: str
    method: str = ""  # for a semantic hit: "identical-input", "slots" or "cosine"


@dataclass(frozen=True)
class NewEntry:
    model_id: str
    revision_key: str
    revision: str
    exact_key: str
    input_key: str
    group_key: str
    prompt: str
    embedding: bytes | None
    source_job_id: str
    result: dict[str, Any]
    compute_s: float
    scope: str  # the project whose requests it may answer, or "*" (see limner.cache.keys.scope_of)


def stored_files(result: dict[str, Any]) -> list[str]:
    """Storage keys of the output files listed in a result."""
    keys: list[str] = []
    for value in result.values():
        if isinstance(value, list):
            for item in value:
                url = item.get("url") if isinstance(item, dict) else None
                key = key_of(url) if isinstance(url, str) else None
                if key:
                    keys.append(key)
    return keys


def hit_result(hit: CacheHit, job_input: dict[str, Any], created_at: float, now: float) -> dict[str, Any]:
    """The result of a job answered from the cache: the source's files and seed, this job's
    input, what was saved, and where it came from."""
    result = copy.deepcopy(hit.result)
    result.pop("quality", None)
    cache: dict[str, Any] = {
        "hit": hit.kind,
        "source_request_id": hit.source_job_id,
        "saved_compute_s": round(hit.compute_s, 4),
    }
    if hit.kind == "semantic":
        # Why it was a hit: how close, to which prompt, by which method.
        cache["similarity"] = round(hit.similarity, 4)
        cache["matched_prompt"] = hit.prompt
        cache["method"] = hit.method or "identical-input"
    usage = dict(result.get("usage") or {})
    price = float(usage.get("usd_per_gpu_hour") or 0.0)
    result["usage"] = {
        **usage,
        "compute_s": 0.0,
        "cost_usd": 0.0,
        "saved_compute_s": round(hit.compute_s, 4),
        "saved_usd": round(hit.compute_s * price / 3600, 6),
    }
    result["cache"] = cache
    result["input"] = job_input
    result["timings"] = {
        "queue_s": 0.0,
        "load_s": 0.0,
        "inference_s": 0.0,
        "upload_s": 0.0,
        "total_s": round(now - created_at, 4),
    }
    return result


class CacheStore:
    def __init__(self, engines: Engines, storage: Storage, *, ttl_s: float = 0.0) -> None:
        self.engines = engines
        self.storage = storage
        self.ttl_s = ttl_s
        self._revisions: dict[tuple[str, str], tuple[str | None, float]] = {}

    # -- writing ---------------------------------------------------------------------------

    def remember(self, entry: NewEntry, conn: Connection | None = None) -> int:
        """Add an entry; inside ``conn``'s transaction when given (the job's completion), so the
        entry exists exactly when the completed job does."""
        if conn is None:
            with self.engines.write.begin() as own:
                return self.remember(entry, own)
        now = time.time()
        values = {
            **entry.__dict__,
            "hits": 0,
            "saved_s": 0.0,
            "created_at": now,
            "expires_at": now + self.ttl_s if self.ttl_s else None,
        }
        seq = conn.execute(insert(cache_entries).values(**values).returning(cache_entries.c.seq)).scalar_one()
        # This process now serves that revision: its older entries stop answering at once (other
        # processes see it within REVISION_TTL_S). A rolled-back entry only costs misses.
        self._revisions[(entry.model_id, entry.revision_key)] = (entry.revision, time.monotonic())
        return int(seq)

    def record_hit(self, conn: Connection, hit: CacheHit, now: float) -> None:
        conn.execute(
            update(cache_entries)
            .where(cache_entries.c.seq == hit.seq)
            .values(hits=cache_entries.c.hits + 1, saved_s=cache_entries.c.saved_s + hit.compute_s, last_hit_at=now)
        )

    def serve(self, job_store: JobStore, job: NewJob, hit: CacheHit) -> None:
        """Write ``job`` as already succeeded with ``hit``'s result (an API-side hit)."""
        now = time.time()
        # The queued row the store would write, so that columns added to jobs stay filled.
        row = job_store.row_for(job, now)
        row.update(
            status=check_birth(SUCCEEDED),
            result=hit_result(hit, job.input, now, now),
            started_at=now,
            finished_at=now,
            progress={"stage": "completed", "step": 1, "total": 1, "percent": 100.0},
        )
        with self.engines.write.begin() as conn:
            conn.execute(insert(jobs).values(**row))
            conn.execute(
                insert(job_events).values(
                    job_id=job.id,
                    ts=now,
                    level="info",
                    source="cache",
                    message=f"served from the cache ({hit.kind} hit of request {hit.source_job_id})",
                )
            )
            self.record_hit(conn, hit, now)
            # A cached answer is a completion like any other: its webhook goes out too.
            ended(conn, [job.id])
            notify(conn, [job.id])

    def hit_logged(self, conn: Connection, job_id: str, hit: CacheHit, now: float) -> None:
        """Count a worker-side hit and say so in the job's log (inside the caller's transaction)."""
        self.record_hit(conn, hit, now)
        message = f"served from the cache ({hit.kind} hit of request {hit.source_job_id}"
        message += f", {hit.method}, similarity {hit.similarity:.3f})" if hit.kind == "semantic" else ")"
        conn.execute(insert(job_events).values(job_id=job_id, ts=now, level="info", source="cache", message=message))

    # -- reading ---------------------------------------------------------------------------

    def find(
        self,
        model_id: str,
        revision_key: str,
        *,
        scope: str,
        exact_key: str | None = None,
        input_key: str | None = None,
    ) -> CacheHit | None:
        """The newest usable entry of ``scope`` with this exact key, else None; by the seedless
        input key, an identical unseeded request (a semantic hit of similarity 1: another
        seed's image). Entries of other scopes (projects) never answer."""
        query = select(cache_entries).where(
            cache_entries.c.model_id == model_id,
            cache_entries.c.revision_key == revision_key,
            cache_entries.c.scope == scope,
        )
        if exact_key is not None:
            query = query.where(cache_entries.c.exact_key == exact_key)
        elif input_key is not None:
            query = query.where(cache_entries.c.input_key == input_key)
        else:
            return None
        with self.engines.read.connect() as conn:
            rows = list(conn.execute(query.order_by(cache_entries.c.seq.desc()).limit(5)))
        kind = "exact" if exact_key is not None else "semantic"
        for row in rows:
            if self.usable(row._mapping):
                return _hit(row._mapping, kind, 1.0, "" if kind == "exact" else "identical-input")
        return None

    def by_seq(self, seqs: Sequence[int], group_key: str, scope: str) -> list[dict[str, Any]]:
        """Entries among ``seqs`` with this group key and scope (semantic candidates)."""
        if not seqs:
            return []
        with self.engines.read.connect() as conn:
            rows = conn.execute(
                select(cache_entries).where(
                    cache_entries.c.seq.in_(list(seqs)),
                    cache_entries.c.group_key == group_key,
                    cache_entries.c.scope == scope,
                )
            )
            return [dict(r._mapping) for r in rows]

    def existing(self, seqs: Sequence[int]) -> set[int]:
        if not seqs:
            return set()
        with self.engines.read.connect() as conn:
            rows = conn.execute(select(cache_entries.c.seq).where(cache_entries.c.seq.in_(list(seqs))))
            return {int(r.seq) for r in rows}

    def entries_after(self, after_seq: int, limit: int = 5000) -> list[tuple[int, str, str]]:
        """(seq, model, prompt) of every entry after ``after_seq``, in order (the slot index's
        catch-up). All models at once: a filter on the model makes SQLite walk the model's index
        instead of the primary key, reading every entry of the model (measured at 100k entries)."""
        with self.engines.read.connect() as conn:
            rows = conn.execute(
                select(cache_entries.c.seq, cache_entries.c.model_id, cache_entries.c.prompt)
                .where(cache_entries.c.seq > after_seq)
                .order_by(cache_entries.c.seq)
                .limit(limit)
            )
            return [(int(r.seq), str(r.model_id), str(r.prompt or "")) for r in rows]

    def entries_in(self, seqs: Sequence[int]) -> list[tuple[int, str, str]]:
        """(seq, model, prompt) of those of ``seqs`` that exist."""
        if not seqs:
            return []
        with self.engines.read.connect() as conn:
            rows = conn.execute(
                select(cache_entries.c.seq, cache_entries.c.model_id, cache_entries.c.prompt).where(
                    cache_entries.c.seq.in_(list(seqs))
                )
            )
            return [(int(r.seq), str(r.model_id), str(r.prompt or "")) for r in rows]

    def embeddings_after(self, model_id: str, after_seq: int, limit: int = 5000) -> list[tuple[int, bytes]]:
        with self.engines.read.connect() as conn:
            rows = conn.execute(
                select(cache_entries.c.seq, cache_entries.c.embedding)
                .where(
                    cache_entries.c.model_id == model_id,
                    cache_entries.c.seq > after_seq,
                    cache_entries.c.embedding.is_not(None),
                )
                .order_by(cache_entries.c.seq)
                .limit(limit)
            )
            return [(int(r.seq), bytes(r.embedding)) for r in rows]

    def usable(self, entry: Any) -> bool:
        """Not expired, its revision is the newest one served for its model, and its files
        are all still in storage. An entry that fails is deleted."""
        now = time.time()
        fresh = entry["expires_at"] is None or entry["expires_at"] > now
        if fresh:
            latest = self.latest_revision(entry["model_id"], entry["revision_key"])
            fresh = latest is None or latest == entry["revision"]
        if fresh:
            fresh = all(self.storage.exists(key) for key in stored_files(entry["result"]))
        if not fresh:
            self.drop([entry["seq"]])
        return fresh

    def latest_revision(self, model_id: str, revision_key: str) -> str | None:
        """The revision of the newest entry of this model and revision key. No index serves the
        plain query (it reads every entry of the model: most of a hit's lookup time at 10k
        entries), so the newest entries are looked at first, and the answer is remembered for a
        few seconds (a new revision only appears when a worker loads it, and the entries that worker
        writes update it here at once)."""
        now = time.monotonic()
        known = self._revisions.get((model_id, revision_key))
        if known is not None and now - known[1] < REVISION_TTL_S:
            return known[0]
        with self.engines.read.connect() as conn:
            # The newest entries by primary key first: the model's latest one is usually among them.
            recent = conn.execute(
                select(cache_entries.c.model_id, cache_entries.c.revision_key, cache_entries.c.revision)
                .order_by(cache_entries.c.seq.desc())
                .limit(500)
            )
            value = next((r.revision for r in recent if (r.model_id, r.revision_key) == (model_id, revision_key)), None)
            if value is None:
                value = conn.execute(
                    select(cache_entries.c.revision)
                    .where(cache_entries.c.model_id == model_id, cache_entries.c.revision_key == revision_key)
                    .order_by(cache_entries.c.seq.desc())
                    .limit(1)
                ).scalar()
        revision = str(value) if value is not None else None
        self._revisions[(model_id, revision_key)] = (revision, now)
        return revision

    def models(self) -> set[str]:
        """The models that have cache entries."""
        with self.engines.read.connect() as conn:
            return {r[0] for r in conn.execute(select(cache_entries.c.model_id).distinct())}

    def stats(self) -> list[dict[str, Any]]:
        with self.engines.read.connect() as conn:
            rows = conn.execute(
                select(
                    cache_entries.c.model_id,
                    func.count(),
                    func.coalesce(func.sum(cache_entries.c.hits), 0),
                    func.coalesce(func.sum(cache_entries.c.saved_s), 0.0),
                ).group_by(cache_entries.c.model_id)
            )
            return [
                {"model_id": r[0], "entries": int(r[1]), "hits": int(r[2]), "saved_compute_s": round(float(r[3]), 4)}
                for r in rows
            ]

    # -- forgetting ------------------------------------------------------------------------

    def drop(self, seqs: Iterable[int]) -> int:
        ids = list(seqs)
        if not ids:
            return 0
        with self.engines.write.begin() as conn:
            return int(conn.execute(delete(cache_entries).where(cache_entries.c.seq.in_(ids))).rowcount)

    def purge(self, model_id: str) -> int:
        """Forget every entry of a model (an operator's purge); its files stay with their jobs."""
        with self.engines.write.begin() as conn:
            return int(conn.execute(delete(cache_entries).where(cache_entries.c.model_id == model_id)).rowcount)

    def purge_expired(self, batch: int = 500) -> int:
        """Drop entries past ``expires_at`` and entries whose files are gone from storage."""
        now = time.time()
        with self.engines.write.begin() as conn:
            dropped = int(
                conn.execute(
                    delete(cache_entries).where(
                        cache_entries.c.expires_at.is_not(None), cache_entries.c.expires_at < now
                    )
                ).rowcount
            )
        last = 0
        while True:
            with self.engines.read.connect() as conn:
                rows = list(
                    conn.execute(
                        select(cache_entries.c.seq, cache_entries.c.result)
                        .where(cache_entries.c.seq > last)
                        .order_by(cache_entries.c.seq)
                        .limit(batch)
                    )
                )
            if not rows:
                return dropped
            last = int(rows[-1].seq)
            gone = [int(r.seq) for r in rows if not all(self.storage.exists(k) for k in stored_files(r.result))]
            dropped += self.drop(gone)


def _hit(entry: Any, kind: str, similarity: float, method: str = "") -> CacheHit:
    return CacheHit(
        seq=int(entry["seq"]),
        kind=kind,
        source_job_id=entry["source_job_id"],
        result=entry["result"],
        compute_s=float(entry["compute_s"]),
        similarity=similarity,
        prompt=entry["prompt"],
        method=method,
    )


def semantic_hit(entry: dict[str, Any], similarity: float, method: str) -> CacheHit:
    return _hit(entry, "semantic", similarity, method)
