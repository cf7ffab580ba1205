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


def baseline(jobs: int, config: dict[str, int]) -> float:
    """Seconds for ``jobs`` images in a plain loop in this process (model already loaded)."""
    import diffusers
    import torch

    from limner.tiny import build_tiny

    dest = Path(tempfile.mkdtemp(prefix="limner-bench-tiny-")) / "sd"
    build_tiny("sd", dest)
    pipeline_class: Any = diffusers.DiffusionPipeline  # untyped library: keep mypy out of it
    pipe: Any = pipeline_class.from_pretrained(str(dest), dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)

    def one(seed: int) -> None:
        image = pipe(
            prompt=f"job {seed}", guidance_scale=5.0, generator=torch.Generator().manual_seed(seed), **config
        ).images[0]
        image.save(io.BytesIO(), format="PNG")

    one(0)  # warm-up, as the server's warm-up job
    started = time.perf_counter()
    for seed in range(jobs):
        one(seed)
    return time.perf_counter() - started


def through_server(jobs: int, config: dict[str, int], batching: bool) -> dict[str, Any]:
    env = {"LIMNER_BATCHING": "1" if batching else "0"}
    with Server(workers=1, env=env) as server:
        server.wait_ready()
        with httpx.Client(base_url=server.base, timeout=60) as http:
            warm = http.post(f"/v1/run/{MODEL}", json={"prompt": "warm-up", "seed": 0, **config})
            warm.raise_for_status()
            started = time.perf_counter()
            ids = [
                http.post(f"/v1/queue/{MODEL}", json={"prompt": f"job {seed}", "seed": seed, **config}).json()[
                    "request_id"
                ]
                for seed in range(jobs)
            ]
            pending = set(ids)
            while pending:
                listed = http.get("/v1/requests", params={"model": MODEL, "limit": 500}).json()["requests"]
                done = {r["request_id"] for r in listed if r["state"] in ("succeeded", "failed", "canceled")}
                pending -= done
                time.sleep(0.02)
            elapsed = time.perf_counter() - started
            results = [http.get(f"/v1/queue/{MODEL}/requests/{i}").json() for i in ids]
    sizes = [r["batch_size"] for r in results]
    return {
        "seconds": elapsed,
        "average_batch_size": sum(sizes) / len(sizes),
        "failed": sum(1 for r in results if "images" not in r),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=64)
    args = parser.parse_args()
    rows: dict[str, Any] = {}
    for name, config in CONFIGS.items():
        jobs = args.jobs if config["num_inference_steps"] <= 4 else max(8, args.jobs // 4)
        base_s = baseline(jobs, config)
        on = through_server(jobs, config, batching=True)
        off = through_server(jobs, config, batching=False)
        rows[name] = {
            "jobs": jobs,
            "baseline_jobs_per_s": jobs / base_s,
            "server_batching_jobs_per_s": jobs / on["seconds"],
            "server_no_batching_jobs_per_s": jobs / off["seconds"],
            "ratio_batching": base_s / on["seconds"],
            "ratio_no_batching": base_s / off["seconds"],
            "average_batch_size": on["average_batch_size"],
            "failed": on["failed"] + off["failed"],
        }
        r = rows[name]
        print(
            f"{name}: {jobs} jobs | in-process loop {r['baseline_jobs_per_s']:.1f}/s | "
            f"server+batching {r['server_batching_jobs_per_s']:.1f}/s (ratio {r['ratio_batching']:.2f}, "
            f"avg batch {r['average_batch_size']:.1f}) | server, no batching "
            f"{r['server_no_batching_jobs_per_s']:.1f}/s (ratio {r['ratio_no_batching']:.2f})"
        )
    write_result(
        "throughput",
        {
            "model": MODEL,
            "configs": CONFIGS,
            "results": rows,
            "aim": {"ratio_batching": 1.0, "ratio_no_batching": 0.85},
        },
    )


if __name__ == "__main__":
    main()
