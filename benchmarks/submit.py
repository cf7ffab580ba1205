"""Submissions per second and submit latency with 64 concurrent clients.

Every 202 means the job is committed (SQLite WAL with synchronous=FULL: on disk, fsynced).
The server runs with no workers so that only submission is measured. In the same run the
same clients hit GET /healthz (no store, no validation) as the baseline: the ceiling that
the HTTP stack and this client reach on this machine.

    .venv/bin/python benchmarks/submit.py [--clients 64] [--requests 4000] [--store URL]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.harness import Server, percentile, write_result

MODEL = "limner/tiny-sd"
BODY = {"prompt": "a product photo of a ceramic mug on a wooden table", "seed": 1, "num_inference_steps": 4}


async def load(base: str, clients: int, requests: int, submit: bool) -> dict[str, Any]:
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    counter = iter(range(requests))
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as http:

        async def client() -> None:
            for _ in counter:
                started = time.perf_counter()
                if submit:
                    response = await http.post(f"/v1/queue/{MODEL}", json=BODY)
                else:
                    response = await http.get("/healthz")
                latencies.append(time.perf_counter() - started)
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(clients)))
        elapsed = time.perf_counter() - started
    return {
        "requests": requests,
        "per_s": requests / elapsed,
        "p50_ms": percentile(latencies, 50) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
        "statuses": statuses,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--store", default=None, help="default: SQLite under a fresh home")
    args = parser.parse_args()
    server_args = ["--store", args.store] if args.store else []
    with Server(workers=0, args=server_args) as server:
        _wait_alive(server.base)
        asyncio.run(load(server.base, args.clients, 200, submit=True))  # warm-up
        health = asyncio.run(load(server.base, args.clients, args.requests, submit=False))
        submits = asyncio.run(load(server.base, args.clients, args.requests, submit=True))
        with httpx.Client(base_url=server.base) as http:
            queued = http.get("/v1/requests", params={"model": MODEL, "status": "queued", "limit": 1}).status_code
        stored = _count_jobs(server.home / "limner.db") if not args.store else None
    accepted = submits["statuses"].get(202, 0)
    print(f"GET /healthz  : {health['per_s']:.0f}/s  p50 {health['p50_ms']:.1f} ms  p99 {health['p99_ms']:.1f} ms")
    print(
        f"POST /v1/queue: {submits['per_s']:.0f}/s  p50 {submits['p50_ms']:.1f} ms  p99 {submits['p99_ms']:.1f} ms"
        f"  ({accepted} accepted, {stored} rows on disk)"
    )
    print(f"ratio submit/healthz throughput: {submits['per_s'] / health['per_s']:.2f}")
    write_result(
        "submit",
        {
            "clients": args.clients,
            "store": args.store or "sqlite (WAL, synchronous=FULL)",
            "healthz_baseline": health,
            "submit": submits,
            "ratio_submit_to_healthz": submits["per_s"] / health["per_s"],
            "accepted": accepted,
            "rows_on_disk": stored,
            "listing_status": queued,
            "aim": {"per_s": 1000, "p99_ms": 50},
        },
    )


def _wait_alive(base: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    raise TimeoutError(base)


def _count_jobs(db: Path) -> int:
    import sqlite3

    with sqlite3.connect(db) as conn:
        count: int = conn.execute("SELECT count(*) FROM jobs").fetchone()[0]
        return count


if __name__ == "__main__":
    main()
