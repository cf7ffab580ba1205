"""Where limner's end-to-end time goes, job by job, under the peers benchmark's closed loop.

For each job of a closed loop through ``POST /v1/run`` (then the file), the client's clock and the
job's own record (created_at, the claim in its log, finished_at, and the result's timings) split
its time into: accept (send to committed row), queue (row to claim), inference (the batch's
forward pass and encoding), store (files written with fsync, result rows, in job order within the
batch), wake (finished to the /v1/run answer: the API's watcher tick on SQLite) and file (the PNG
GET). Run with limner's defaults, then with each knob that targets one part, in the same run.

    .venv/bin/python -m benchmarks.peers.anatomy [--jobs 96 --concurrency 16]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from benchmarks.harness import write_result
from benchmarks.peers import loads
from benchmarks.peers.stacks import Config, Stack, limner, litserve

VARIANTS: dict[str, dict[str, str]] = {
    "defaults": {},
    "watcher tick 100 ms (LIMNER_STREAM_POLL_S=0.1)": {"LIMNER_STREAM_POLL_S": "0.1"},
    "watcher tick 10 ms (LIMNER_STREAM_POLL_S=0.01)": {"LIMNER_STREAM_POLL_S": "0.01"},
    "and idle claim poll 10 ms (LIMNER_IDLE_POLL_S=0.01)": {
        "LIMNER_STREAM_POLL_S": "0.01",
        "LIMNER_IDLE_POLL_S": "0.01",
    },
}


async def traced(stack: Stack, cfg: Config, jobs: int, concurrency: int, tag: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    seeds = iter(range(jobs))
    async with httpx.AsyncClient(timeout=loads.TIMEOUT, limits=loads.LIMITS) as http:

        async def one_client() -> None:
            for seed in seeds:
                sent = time.time()
                response = await http.post(f"{stack.url}/v1/run/{loads.MODEL}", json=loads.job_body(cfg, tag, seed))
                answered = time.time()
                result = response.json()
                await http.get(result["images"][0]["url"])
                row = {"sent": sent, "answered": answered, "file": time.time(), **result["timings"]}
                row.update(request_id=response.headers["x-limner-request-id"], batch=result["batch_size"])
                rows.append(row)

        await asyncio.gather(*(one_client() for _ in range(concurrency)))
        for row in rows:
            status = (
                await http.get(
                    f"{stack.url}/v1/queue/{loads.MODEL}/requests/{row['request_id']}/status", params={"logs": 1}
                )
            ).json()
            row["created"], row["finished"] = status["created_at"], status["finished_at"]
    return rows


def cpu_seconds(stack: Stack) -> dict[str, float]:
    """CPU time so far of the stack's first process (limner's API) and of all its descendants
    (the workers), user + system."""
    tree = stack.procs[0].tree()
    api, rest = tree[0], tree[1:]
    return {
        "api": sum(api.cpu_times()[:2]),
        "workers": sum(sum(p.cpu_times()[:2]) for p in rest),
    }


def split(rows: list[dict[str, Any]]) -> dict[str, float]:
    parts: dict[str, list[float]] = {k: [] for k in ("accept", "queue", "inference", "store", "wake", "file", "total")}
    for r in rows:
        started = r["created"] + r["queue_s"]
        parts["accept"].append(r["created"] - r["sent"])
        parts["queue"].append(r["queue_s"])
        parts["inference"].append(r["load_s"] + r["inference_s"])
        parts["store"].append(r["finished"] - started - r["load_s"] - r["inference_s"])
        parts["wake"].append(r["answered"] - r["finished"])
        parts["file"].append(r["file"] - r["answered"])
        parts["total"].append(r["file"] - r["sent"])
    # Medians: a wake-up the API's watcher misses costs its 15 s safety timeout, counted apart.
    out = {f"{k}_ms": round(1000 * statistics.median(v), 1) for k, v in parts.items()}
    out["missed_wakeups"] = sum(w > 5.0 for w in parts["wake"])
    out["batch"] = round(statistics.mean(r["batch"] for r in rows), 2)
    span = max(r["file"] for r in rows) - min(r["sent"] for r in rows)
    out["jobs_per_s"] = round(len(rows) / span, 1)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=96)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--peers-python", default="", help="also measure LitServe's CPU per job (.venv-peers)")
    parser.add_argument("--label", default="", help="a name for this run's results (e.g. a patch being tried)")
    args = parser.parse_args()
    import tempfile

    from benchmarks.peers import pipeline
    from limner.tiny import build_tiny

    model_dir = Path(tempfile.mkdtemp(prefix="limner-anatomy-")) / "sd"
    build_tiny("sd", model_dir)
    cfg = Config(model_dir=model_dir, peers_python=str(Path(args.peers_python).absolute()) or sys.executable)
    pipe = pipeline.load(str(model_dir))
    floor: dict[int, float] = {}
    for size in (1, 4, 8):  # the pipeline alone, in this process: the compute floor per image
        batch = [loads.job_body(cfg, "floor", s) for s in range(size)]
        pipeline.generate(pipe, batch)
        began = time.perf_counter()
        for _ in range(3):
            [pipeline.png(i) for i in pipeline.generate(pipe, batch)]
        floor[size] = round(1000 * (time.perf_counter() - began) / 3 / size, 1)
    results: dict[str, Any] = {"pipeline_ms_per_image_by_batch": floor}
    stacks = {}
    for name, env in VARIANTS.items():
        stack = limner(cfg, batching=True)
        stack.procs[0].env.update(env)
        stack.start()
        asyncio.run(loads.probe(stack, cfg, within_s=300, poll_s=0.1))
        asyncio.run(loads.warm(stack, cfg, cfg.replicas, 0.1))
        stacks[name] = stack
    peer = litserve(cfg) if args.peers_python else None
    if peer is not None:
        peer.start()
        asyncio.run(loads.probe(peer, cfg, within_s=300, poll_s=0.1))
        asyncio.run(loads.warm(peer, cfg, cfg.replicas, 0.1))
    peer_runs: list[dict[str, float]] = []
    try:
        runs: dict[str, list[dict[str, float]]] = {name: [] for name in VARIANTS}
        for round_index in range(args.rounds):
            for name, stack in stacks.items():
                before = cpu_seconds(stack)
                rows = asyncio.run(traced(stack, cfg, args.jobs, args.concurrency, f"anat{round_index}"))
                after = cpu_seconds(stack)
                row = split(rows)
                for part in ("api", "workers"):
                    row[f"cpu_{part}_ms_per_job"] = round(1000 * (after[part] - before[part]) / len(rows), 1)
                runs[name].append(row)
                print(name, runs[name][-1], flush=True)
            if peer is not None:
                began = sum(sum(p.cpu_times()[:2]) for p in peer.procs[0].tree())
                closed = asyncio.run(
                    loads.closed_loop(peer, cfg, args.jobs, args.concurrency, f"anat{round_index}", 0.1)
                )
                spent = sum(sum(p.cpu_times()[:2]) for p in peer.procs[0].tree()) - began
                peer_runs.append(
                    {
                        "jobs_per_s": round(closed["jobs_per_s"], 1),
                        "p50_ms": round(1000 * closed["p50_s"], 1),
                        "cpu_ms_per_job": round(1000 * spent / args.jobs, 1),
                    }
                )
                print("litserve", peer_runs[-1], flush=True)
        if peer_runs:
            results["litserve"] = {k: statistics.median(r[k] for r in peer_runs) for k in peer_runs[0]}
        results["variants"] = {
            name: {
                k: sum(r[k] for r in rs) if k == "missed_wakeups" else statistics.median(r[k] for r in rs)
                for k in rs[0]
            }
            for name, rs in runs.items()
        }
    finally:
        for stack in [*stacks.values(), *([peer] if peer else [])]:
            stack.stop()
    name = f"peers-anatomy-{args.label}" if args.label else "peers-anatomy"
    write_result(
        name, {"label": args.label or "this checkout", "jobs": args.jobs, "concurrency": args.concurrency, **results}
    )


if __name__ == "__main__":
    main()
