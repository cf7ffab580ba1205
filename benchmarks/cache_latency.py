"""Lookup latency of the semantic cache at 1k, 10k and 100k entries (part of benchmarks/cache.py).

The store is filled with distinct catalog-style prompts (one model, one parameter group, one
project: the worst case, every entry a candidate). Then the worker's real lookup
(``WorkerCache._lookup``: exact key, identical input, then the slots method over the slot
index and the store) is timed for paraphrases of stored prompts (hits) and one-field near
misses (misses). For comparison, the cosine method's cost at the same sizes: one prompt
embedding plus a faiss range search over that many vectors.
"""

from __future__ import annotations

import random
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.prompts import DOMAINS, near_miss, random_intent, word

QUERIES = 200


def _percentiles(ms: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(float(np.percentile(ms, 50)), 3),
        "p95_ms": round(float(np.percentile(ms, 95)), 3),
        "mean_ms": round(float(np.mean(ms)), 3),
    }


def _fill(hooks: Any, entry: Any, job_of: Callable[..., Any], count: int, rng: random.Random) -> dict[str, Any]:
    from sqlalchemy import insert

    from limner.cache import keys
    from limner.store.schema import cache_entries

    intents: dict[str, Any] = {}  # prompt -> intent
    attempt = 0
    while len(intents) < count:  # the domains in turn (scene prompts run out first: 6,144 in all)
        attempt += 1
        intent = random_intent(rng, DOMAINS[attempt % len(DOMAINS)])
        intents.setdefault(word(intent, 0, rng, noise=False), intent)
    rows = []
    now = time.time()
    for index, prompt in enumerate(intents):
        job = job_of(index, entry, prompt, 1024, 1024)
        rows.append(
            {
                "model_id": entry.id, "revision_key": keys.revision_key(entry), "revision": "rev",
                "exact_key": keys.exact_key(entry, job.input), "input_key": keys.input_key(entry, job.input),
                "group_key": keys.group_key(entry, job.input), "prompt": prompt, "embedding": None,
                "source_job_id": job.id, "result": {"images": []}, "compute_s": 10.0, "scope": "default",
                "hits": 0, "saved_s": 0.0, "created_at": now, "expires_at": None,
            }
        )  # fmt: skip
    with hooks.cache.engines.write.begin() as conn:
        for start in range(0, len(rows), 5000):
            conn.execute(insert(cache_entries), rows[start : start + 5000])
    return intents


def latency(
    sizes: list[int], worker_cache: Callable[[Path], Any], entry_of: Callable[..., Any], job_of: Callable[..., Any]
) -> list[dict[str, Any]]:
    import faiss

    from limner.catalog.options import DEFAULT_SLOTS_THRESHOLD

    rng = random.Random(5)
    results = []
    for size in sizes:
        print(f"  lookup latency at {size} entries", flush=True)
        hooks = worker_cache(Path(tempfile.mkdtemp(prefix="limner-bench-latency-")))
        entry = entry_of("slots", DEFAULT_SLOTS_THRESHOLD, False)
        stored = _fill(hooks, entry, job_of, size, rng)
        intents = list(stored.values())
        started = time.perf_counter()
        indexed = hooks.slots.size(entry.id)  # the first lookup's catch-up: parse every stored prompt
        build_s = time.perf_counter() - started
        hooks.embedder.encode(["load the embedder before timing"])  # a worker loads it once, at its first need
        timings: dict[str, list[float]] = {"paraphrase": [], "near_miss": []}
        found = {"paraphrase": 0, "near_miss": 0}
        wrong = 0
        for i in range(QUERIES):
            intent = rng.choice(intents)
            kind = "paraphrase" if i % 2 == 0 else "near_miss"
            if kind == "near_miss":
                intent, _ = near_miss(intent, rng)
            templates = len(next(d for d in DOMAINS if d.name == intent.domain).templates)
            prompt = word(intent, rng.randrange(1, templates), rng)
            job = job_of(10**7 + i, entry, prompt, 1024, 1024)
            t0 = time.perf_counter()
            hit = hooks._lookup(entry, job)
            timings[kind].append(1000 * (time.perf_counter() - t0))
            found[kind] += hit is not None
            # A near miss may be another stored intent: only a hit of another intent is wrong.
            wrong += hit is not None and stored[hit.prompt].key() != intent.key()
        hooks.cache.engines.dispose()
        # The cosine method at this size: a query embedding plus faiss over `size` vectors.
        vectors = np.random.default_rng(size).standard_normal((size, 384)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        index = faiss.IndexIDMap2(faiss.IndexFlatIP(384))
        index.add_with_ids(vectors, np.arange(size, dtype=np.int64))
        search_ms = []
        for i in range(50):
            t0 = time.perf_counter()
            index.range_search(vectors[i : i + 1], 0.98)
            search_ms.append(1000 * (time.perf_counter() - t0))
        embed_ms = []
        for i in range(20):
            t0 = time.perf_counter()
            hooks.embedder.encode([f"a red leather armchair number {i} in a sunny living room"])
            embed_ms.append(1000 * (time.perf_counter() - t0))
        results.append(
            {
                "entries": size,
                "indexed": indexed,
                "wrong_hits": wrong,
                "slot_index_build_s": round(build_s, 2),
                "slots_lookup_paraphrase": {**_percentiles(timings["paraphrase"]), "hits": found["paraphrase"]},
                "slots_lookup_near_miss": {**_percentiles(timings["near_miss"]), "hits": found["near_miss"]},
                "cosine_faiss_search": _percentiles(search_ms),
                "cosine_query_embedding": _percentiles(embed_ms),
            }
        )
        print(f"    {results[-1]}", flush=True)
    return results
