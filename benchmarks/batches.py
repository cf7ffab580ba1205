"""A batch of N rows of a tiny model against the same N jobs submitted one by one, in the same
run on the same server (API + one worker): rows per second end to end, the API process's RSS
sampled over the batch (it must stay flat: rows are admitted as capacity frees up, never held),
and the submit latency and end-to-end time of interactive jobs sent while the batch runs
(they overtake the batch's low-priority rows).

    .venv/bin/python benchmarks/batches.py [--rows 1000] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.harness import Server, percentile, write_result

MODEL = "limner/tiny-sd"
INPUT = {"width": 64, "height": 64, "num_inference_steps": 1}
NO_CACHE = {"X-Limner-Cache": "off"}


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def one_by_one(http: httpx.Client, rows: int, offset: int) -> float:
    """Seconds to submit ``rows`` jobs one after another, then wait for all of them."""
    started = time.perf_counter()
    ids = [
        http.post(f"/v1/queue/{MODEL}", json={**INPUT, "prompt": f"row {offset + i}"}, headers=NO_CACHE).json()[
            "request_id"
        ]
        for i in range(rows)
    ]
    for request_id in ids:
        while http.get(f"/v1/queue/{MODEL}/requests/{request_id}/status").json()["status"] != "COMPLETED":
            time.sleep(0.05)
    return time.perf_counter() - started


def batch_run(http: httpx.Client, server: Server, rows: int, concurrency: int) -> dict[str, Any]:
    body = {
        "model": MODEL,
        "rows": [{"custom_id": f"r{i}", "input": {**INPUT, "prompt": f"batch row {i}"}} for i in range(rows)],
        "max_concurrency": concurrency,
    }
    rss: list[float] = []
    interactive: list[tuple[float, float]] = []  # (submit latency, end to end)
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            rss.append(rss_mb(server.proc.pid))
            done.wait(0.5)

    def interactive_jobs() -> None:
        with httpx.Client(base_url=server.base, timeout=60) as own:
            while not done.is_set():
                sent = time.perf_counter()
                answer = own.post(f"/v1/queue/{MODEL}", json={**INPUT, "prompt": "now"}, headers=NO_CACHE)
                accepted = time.perf_counter() - sent
                request_id = answer.json()["request_id"]
                while own.get(f"/v1/queue/{MODEL}/requests/{request_id}/status").json()["status"] != "COMPLETED":
                    time.sleep(0.02)
                interactive.append((accepted, time.perf_counter() - sent))
                done.wait(1.0)

    threads = [threading.Thread(target=sample, daemon=True), threading.Thread(target=interactive_jobs, daemon=True)]
    rss.append(rss_mb(server.proc.pid))
    started = time.perf_counter()
    batch = http.post("/v1/batches", json=body, headers=NO_CACHE).json()
    for thread in threads:
        thread.start()
    while (state := http.get(f"/v1/batches/{batch['id']}").json())["status"] != "completed":
        time.sleep(0.2)
    elapsed = time.perf_counter() - started
    done.set()
    for thread in threads:
        thread.join(timeout=60)
    submits = [s * 1000 for s, _ in interactive]
    ends = [e for _, e in interactive]
    return {
        "seconds": elapsed,
        "rows_per_s": rows / elapsed,
        "counts": state["request_counts"],
        "api_rss_mb": {"start": rss[0], "max": max(rss), "end": rss[-1], "samples": len(rss)},
        "interactive": {
            "jobs": len(interactive),
            "submit_p50_ms": statistics.median(submits) if submits else None,
            "submit_p99_ms": percentile(submits, 99) if submits else None,
            "end_to_end_p50_s": statistics.median(ends) if ends else None,
            "end_to_end_p99_s": percentile(ends, 99) if ends else None,
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    with Server(workers=1, env={"LIMNER_THREADS": "1"}) as server:
        server.wait_ready()
        with httpx.Client(base_url=server.base, timeout=60) as http:
            one_by_one(http, 16, offset=-1000)  # warm the model
            batch = batch_run(http, server, args.rows, args.concurrency)
            single = one_by_one(http, args.rows, offset=0)
    single_rate = args.rows / single
    rss = batch["api_rss_mb"]
    inter = batch["interactive"]
    print(f"batch of {args.rows}: {batch['rows_per_s']:.1f} rows/s; one by one: {single_rate:.1f} jobs/s")
    print(f"ratio batch/one-by-one: {batch['rows_per_s'] / single_rate:.2f}")
    print(f"API RSS over the batch: start {rss['start']:.0f} MB, max {rss['max']:.0f} MB, end {rss['end']:.0f} MB")
    print(
        f"interactive jobs during the batch: {inter['jobs']}, submit p50 {inter['submit_p50_ms']:.1f} ms "
        f"p99 {inter['submit_p99_ms']:.1f} ms, end to end p50 {inter['end_to_end_p50_s']:.2f} s "
        f"p99 {inter['end_to_end_p99_s']:.2f} s"
    )
    write_result(
        "batches",
        {
            "rows": args.rows,
            "max_concurrency": args.concurrency,
            "model": MODEL,
            "input": INPUT,
            "batch": batch,
            "one_by_one": {"seconds": single, "jobs_per_s": single_rate},
            "ratio_batch_to_one_by_one": batch["rows_per_s"] / single_rate,
        },
    )


if __name__ == "__main__":
    main()
