"""Load: Poisson arrivals at a range of rates against 1 API + N workers, three ways, same load.

- local:    `limner serve --workers N` (SQLite, local worker processes): the baseline
- postgres: `limner serve --workers 0` + `limner worker --processes N` on a throwaway PostgreSQL
- ray:      `limner serve --executor ray` on a Ray instance started here, N replicas

Every run submits the same seeded arrival schedule of tiny text-to-image jobs (each run at one
rate is short), waits until all are finished, then reads each job back: submit latency (the
client's POST to its 202), queue wait (created until a worker or replica started it, from the
job's log), end-to-end (created until finished), throughput (finished jobs over the span from
the first submission to the last finish), errors (refused submissions and jobs that did not
succeed) and average batch size. Ratios are against local at the same rate, in the same run.

    .venv/bin/python benchmarks/load.py [--rates 2,5,10,20] [--duration 6] [--workers 2]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.harness import RESULTS, Server, percentile, start_ray, write_result

MODEL = "limner/tiny-sd"
BODY = {"width": 64, "height": 64, "num_inference_steps": 2}
TERMINAL = ("succeeded", "failed", "canceled")


def schedule(rate: float, duration: float, seed: int) -> list[float]:
    """Arrival offsets (seconds) of a Poisson process: exponential gaps, seeded."""
    rng = random.Random(seed)
    offsets, t = [], rng.expovariate(rate)
    while t < duration:
        offsets.append(t)
        t += rng.expovariate(rate)
    return offsets


async def submit_all(base: str, offsets: list[float], tag: str) -> tuple[list[str], list[float], int]:
    """Submit one job at each offset (not waiting for earlier ones); ids, latencies, refusals."""
    ids: list[str] = []
    latencies: list[float] = []
    refused = 0
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        start = time.perf_counter()

        async def one(index: int, offset: float) -> None:
            nonlocal refused
            await asyncio.sleep(max(0.0, start + offset - time.perf_counter()))
            sent = time.perf_counter()
            try:
                body = {**BODY, "prompt": f"{tag} {index}", "seed": index}
                response = await http.post(f"/v1/queue/{MODEL}", json=body)
            except httpx.HTTPError:
                refused += 1
                return
            latencies.append(time.perf_counter() - sent)
            if response.status_code == 202:
                ids.append(response.json()["request_id"])
            else:
                refused += 1

        await asyncio.gather(*(one(i, o) for i, o in enumerate(offsets)))
    return ids, latencies, refused


def wait_idle(http: httpx.Client, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        listed = [http.get("/v1/requests", params={"status": s, "limit": 1}) for s in ("queued", "running")]
        if not any(r.json()["requests"] for r in listed):
            return
        time.sleep(0.2)
    raise TimeoutError("jobs still unfinished")


def started_at(logs: list[dict[str, Any]]) -> float | None:
    """When the job's last run began: a replica taking it over, else a worker claiming it."""
    for marker in ("running on ", "claimed by "):
        stamps = [line["timestamp"] for line in logs if line["message"].startswith(marker)]
        if stamps:
            return float(stamps[-1])
    return None


def measure(base: str, rate: float, duration: float, seed: int) -> dict[str, Any]:
    offsets = schedule(rate, duration, seed)
    ids, latencies, refused = asyncio.run(submit_all(base, offsets, f"r{rate}"))
    with httpx.Client(base_url=base, timeout=30) as http:
        wait_idle(http, timeout=300)
        statuses = [http.get(f"/v1/queue/{MODEL}/requests/{i}/status", params={"logs": 1}).json() for i in ids]
        results = [http.get(f"/v1/queue/{MODEL}/requests/{i}").json() for i in ids]
    ok = [(s, r) for s, r in zip(statuses, results, strict=True) if s["state"] == "succeeded"]
    waits = [t - s["created_at"] for s, _ in ok if (t := started_at(s["logs"])) is not None]
    ends = [s["finished_at"] - s["created_at"] for s, _ in ok]
    span = max((s["finished_at"] for s, _ in ok), default=0.0) - min((s["created_at"] for s in statuses), default=0.0)
    row: dict[str, Any] = {
        "rate": rate,
        "submitted": len(offsets),
        "completed": len(ok),
        "errors": refused + len(statuses) - len(ok),
        "throughput_jobs_per_s": len(ok) / span if span > 0 else 0.0,
        "average_batch_size": sum(r["batch_size"] for _, r in ok) / len(ok) if ok else 0.0,
    }
    for name, values in (("submit", latencies), ("queue_wait", waits), ("end_to_end", ends)):
        for q in (50, 95, 99):
            row[f"{name}_p{q}_s"] = round(percentile(values, q), 4)
    return row


def warm(base: str, timeout: float = 120) -> None:
    """Load the model in every worker (every replica) before measuring. Bursts of jobs with two
    batch keys, so that one worker cannot take a whole burst as one batch, and more jobs than
    one replica accepts at once, so that Ray's routing spills over to the replicas without it."""

    async def burst() -> None:
        async with httpx.AsyncClient(base_url=base, timeout=300) as http:
            calls = [
                http.post(f"/v1/run/{MODEL}", json={**BODY, "num_inference_steps": 1 + i % 2, "prompt": "warm"})
                for i in range(40)
            ]
            for response in await asyncio.gather(*calls):
                response.raise_for_status()

    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=base, timeout=30) as http:
        while time.monotonic() < deadline:
            asyncio.run(burst())
            time.sleep(1.0)  # a heartbeat or two: workers report what they hold
            workers = http.get("/v1/workers").json()["workers"]
            if workers and all(MODEL in w["models"] for w in workers):
                return
    print(f"warning: not every worker of {base} loaded {MODEL} in {timeout:.0f} s", flush=True)


def wait_workers(base: str, count: int, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/readyz", timeout=2).json().get("workers", 0) >= count:
                return
        except (httpx.TransportError, ValueError):
            pass
        time.sleep(0.3)
    raise TimeoutError(f"{count} workers did not attach to {base}")


@contextmanager
def local(workers: int) -> Iterator[str]:
    with Server(workers=workers) as server:
        server.wait_ready()
        yield server.base


@contextmanager
def postgres(workers: int) -> Iterator[str]:
    from tests.services import Postgres, pg_bin

    bindir = pg_bin()
    if bindir is None:
        raise RuntimeError("PostgreSQL is not installed (apt-get install postgresql)")
    pg = Postgres(bindir)
    pg.start()
    try:
        with Server(workers=0, env={"LIMNER_STORE": pg.url}) as server:
            server.wait_ready()
            log = open(server.home / "workers.log", "wb")  # noqa: SIM115 - closed below
            proc = subprocess.Popen(
                [sys.executable, "-m", "limner", "worker", "--processes", str(workers)],
                env=server.env | {"LIMNER_STORE": pg.url},
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            try:
                wait_workers(server.base, workers)
                yield server.base
            finally:
                proc.terminate()
                proc.wait(60)
                log.close()
    finally:
        pg.destroy()


@contextmanager
def ray(workers: int) -> Iterator[str]:
    import ray as ray_api

    address = start_ray(num_cpus=workers)
    env = {
        "LIMNER_RAY_MIN_REPLICAS": str(workers),
        "LIMNER_RAY_MAX_REPLICAS": str(workers),
        "LIMNER_RAY_NUM_CPUS": "1",
    }
    try:
        with Server(workers=1, env=env, args=["--executor", "ray", "--ray-address", address]) as server:
            server.wait_ready()
            yield server.base
    finally:
        ray_api.shutdown()


SETUPS: dict[str, Callable[[int], Any]] = {"local": local, "postgres": postgres, "ray": ray}


def markdown(rows: dict[str, list[dict[str, Any]]], workers: int) -> str:
    lines = [
        f"# Load: Poisson arrivals, {MODEL} {BODY['width']}x{BODY['height']} {BODY['num_inference_steps']} steps, "
        f"1 API + {workers} workers",
        "",
        "| setup | rate/s | done | errors | jobs/s | vs local | submit p50/p95/p99 ms | queue wait p50/p95 s "
        "| end-to-end p50/p95/p99 s | vs local p95 | avg batch |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for setup, table in rows.items():
        for row in table:
            lines.append(
                f"| {setup} | {row['rate']:g} | {row['completed']}/{row['submitted']} | {row['errors']} "
                f"| {row['throughput_jobs_per_s']:.2f} | {row.get('throughput_vs_local', 1.0):.2f} "
                f"| {row['submit_p50_s'] * 1000:.0f}/{row['submit_p95_s'] * 1000:.0f}/{row['submit_p99_s'] * 1000:.0f} "
                f"| {row['queue_wait_p50_s']:.2f}/{row['queue_wait_p95_s']:.2f} "
                f"| {row['end_to_end_p50_s']:.2f}/{row['end_to_end_p95_s']:.2f}/{row['end_to_end_p99_s']:.2f} "
                f"| {row.get('end_to_end_p95_vs_local', 1.0):.2f} | {row['average_batch_size']:.2f} |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rates", default="2,5,10,20", help="arrivals per second, comma-separated")
    parser.add_argument("--duration", type=float, default=6.0, help="seconds of arrivals per rate")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--setups", default="local,postgres,ray")
    args = parser.parse_args()
    rates = [float(r) for r in args.rates.split(",")]
    rows: dict[str, list[dict[str, Any]]] = {}
    for setup in args.setups.split(","):
        with SETUPS[setup](args.workers) as base:
            warm(base)
            rows[setup] = []
            for index, rate in enumerate(rates):
                row = measure(base, rate, args.duration, seed=index)
                rows[setup].append(row)
                print(
                    f"{setup:9s} {rate:5g}/s: {row['completed']}/{row['submitted']} done, {row['errors']} errors, "
                    f"{row['throughput_jobs_per_s']:.2f} jobs/s, submit p50 {row['submit_p50_s'] * 1000:.0f} ms, "
                    f"queue p95 {row['queue_wait_p95_s']:.2f} s, end-to-end p50/p95 "
                    f"{row['end_to_end_p50_s']:.2f}/{row['end_to_end_p95_s']:.2f} s, "
                    f"batch {row['average_batch_size']:.2f}",
                    flush=True,
                )
    base_rows = {row["rate"]: row for row in rows.get("local", [])}
    for table in rows.values():
        for row in table:
            local_row = base_rows.get(row["rate"])
            if local_row and local_row["throughput_jobs_per_s"] and local_row["end_to_end_p95_s"]:
                row["throughput_vs_local"] = row["throughput_jobs_per_s"] / local_row["throughput_jobs_per_s"]
                row["end_to_end_p95_vs_local"] = row["end_to_end_p95_s"] / local_row["end_to_end_p95_s"]
    text = markdown(rows, args.workers)
    print(text)
    (RESULTS / "load.md").write_text(text)
    write_result(
        "load",
        {"model": MODEL, "input": BODY, "workers": args.workers, "duration_s": args.duration, "results": rows},
    )


if __name__ == "__main__":
    main()
