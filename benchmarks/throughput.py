"""Throughput of N text-to-image jobs through the running server, against the same pipeline
called in a plain loop in one process, in the same run.

The baseline does what the worker must do for each job too: generate with the job's own
seeded generator and encode a PNG. The server path adds HTTP, a durable job row, a claim,
progress writes, a file write with fsync and a result row per job, and may batch jobs.

    .venv/bin/python benchmarks/throughput.py [--jobs 64]
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.harness import Server, write_result

MODEL = "limner/tiny-sd"
CONFIGS = {
    "64px-4steps": {"width": 64, "height": 64, "num_inference_steps": 4},
    "256px-20steps": {"width": 256, "height": 256, "num_inference_steps": 20},
}


ROUNDS = 3
NO_CACHE = {"X-Limner-Cache": "off"}  # measure generation, not the result cache


def load_pipeline() -> Any:
    import diffusers
    import torch

    from limner.tiny import build_tiny

    torch.set_num_threads(1)  # the server's worker gets one thread too (LIMNER_THREADS=1)
    dest = Path(tempfile.mkdtemp(prefix="limner-bench-tiny-")) / "sd"
    build_tiny("sd", dest)
    pipeline_class: Any = diffusers.DiffusionPipeline  # untyped library: keep mypy out of it
    pipe: Any = pipeline_class.from_pretrained(str(dest), dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def baseline_round(pipe: Any, jobs: int, config: dict[str, int], first_seed: int) -> float:
    """Seconds for ``jobs`` images in a plain loop in this process (model loaded and warm)."""
    import torch

    started = time.perf_counter()
    for seed in range(first_seed, first_seed + jobs):
        image = pipe(
            prompt=f"job {seed}", guidance_scale=5.0, generator=torch.Generator().manual_seed(seed), **config
        ).images[0]
        image.save(io.BytesIO(), format="PNG")
    return time.perf_counter() - started


def server_round(http: httpx.Client, jobs: int, config: dict[str, int], first_seed: int) -> tuple[float, list[int]]:
    """Seconds from the first submission to the last completion, and each job's batch size."""
    started = time.perf_counter()
    ids = [
        http.post(
            f"/v1/queue/{MODEL}", json={"prompt": f"job {seed}", "seed": seed, **config}, headers=NO_CACHE
        ).json()["request_id"]
        for seed in range(first_seed, first_seed + jobs)
    ]
    pending = set(ids)
    while pending:
        listed = http.get("/v1/requests", params={"model": MODEL, "limit": 500}).json()["requests"]
        pending -= {r["request_id"] for r in listed if r["state"] in ("succeeded", "failed", "canceled")}
        time.sleep(0.02)
    elapsed = time.perf_counter() - started
    results = [http.get(f"/v1/queue/{MODEL}/requests/{i}").json() for i in ids]
    if any("images" not in r for r in results):
        raise RuntimeError("a benchmark job failed")
    return elapsed, [r["batch_size"] for r in results]


def measure(jobs: int, config: dict[str, int], pipe: Any) -> dict[str, Any]:
    """Rounds alternate between the in-process loop and the two servers, so that all three
    see the same machine load; medians of the rounds."""
    env = {"LIMNER_THREADS": "1"}
    with (
        Server(workers=1, env={**env, "LIMNER_BATCHING": "1"}) as on,
        Server(workers=1, env={**env, "LIMNER_BATCHING": "0"}) as off,
    ):
        on.wait_ready()
        off.wait_ready()
        with (
            httpx.Client(base_url=on.base, timeout=60) as http_on,
            httpx.Client(base_url=off.base, timeout=60) as http_off,
        ):
            for http in (http_on, http_off):  # load the model in each worker
                http.post(f"/v1/run/{MODEL}", json={"prompt": "warm-up", "seed": 0, **config}, headers=NO_CACHE)
            baseline_round(pipe, 1, config, 0)
            times: dict[str, list[float]] = {"baseline": [], "batching": [], "no_batching": []}
            sizes: list[int] = []
            for round_index in range(ROUNDS):
                seed = 1000 * (round_index + 1)
                times["baseline"].append(baseline_round(pipe, jobs, config, seed))
                elapsed, batch_sizes = server_round(http_on, jobs, config, seed)
                times["batching"].append(elapsed)
                sizes += batch_sizes
                times["no_batching"].append(server_round(http_off, jobs, config, seed)[0])
    med = {k: statistics.median(v) for k, v in times.items()}
    return {
        "jobs": jobs,
        "rounds": ROUNDS,
        "seconds": times,
        "baseline_jobs_per_s": jobs / med["baseline"],
        "server_batching_jobs_per_s": jobs / med["batching"],
        "server_no_batching_jobs_per_s": jobs / med["no_batching"],
        "ratio_batching": med["baseline"] / med["batching"],
        "ratio_no_batching": med["baseline"] / med["no_batching"],
        "average_batch_size": sum(sizes) / len(sizes),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=32)
    args = parser.parse_args()
    pipe = load_pipeline()
    rows: dict[str, Any] = {}
    for name, config in CONFIGS.items():
        jobs = args.jobs if config["num_inference_steps"] <= 4 else max(8, args.jobs // 4)
        rows[name] = r = measure(jobs, config, pipe)
        print(
            f"{name}: {jobs} jobs x {ROUNDS} rounds | in-process loop {r['baseline_jobs_per_s']:.1f}/s | "
            f"server+batching {r['server_batching_jobs_per_s']:.1f}/s (ratio {r['ratio_batching']:.2f}, "
            f"avg batch {r['average_batch_size']:.1f}) | server, no batching "
            f"{r['server_no_batching_jobs_per_s']:.1f}/s (ratio {r['ratio_no_batching']:.2f})"
        )
    write_result(
        "throughput",
        {
            "model": MODEL,
            "configs": CONFIGS,
            "threads": 1,
            "results": rows,
            "aim": {"ratio_batching": 1.0, "ratio_no_batching": 0.85},
        },
    )


if __name__ == "__main__":
    main()
