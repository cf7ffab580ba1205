"""Durable submissions: 64 concurrent clients queueing jobs, nothing running them.

limner's ``POST /v1/queue`` on SQLite and on PostgreSQL (a throwaway cluster, as the tests
start one) against the FastAPI app's ``POST /generate`` that calls Celery's ``apply_async`` on
Redis: on Redis's defaults (RDB snapshots: an acknowledged submit is in memory only) and with
``appendfsync always`` (on disk before the reply, as limner's 202). The load is `wrk` (see
benchmarks/submit.py: a Python client cannot drive this much on 2 cores); rounds alternate
between the setups. Afterwards the jobs are counted in each store.
"""

from __future__ import annotations

import shutil
import sqlite3
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from benchmarks.harness import Server
from benchmarks.peers.stacks import Config, Redis, celery, wait_http
from benchmarks.submit import wrk

MODEL = "limner/tiny-sd"
BODY = {"prompt": "a product photo of a ceramic mug on a wooden table", "seed": 1, "num_inference_steps": 4}


@contextmanager
def limner_sqlite() -> Iterator[tuple[str, Callable[[], int]]]:
    with Server(workers=0) as server:
        wait_http(f"{server.base}/healthz", 60)

        def stored() -> int:
            with sqlite3.connect(server.home / "limner.db") as conn:
                count: int = conn.execute("SELECT count(*) FROM jobs").fetchone()[0]
                return count

        yield f"{server.base}/v1/queue/{MODEL}", stored


@contextmanager
def limner_postgres() -> Iterator[tuple[str, Callable[[], int]]]:
    import psycopg
    from tests.services import Postgres, pg_bin

    bindir = pg_bin()
    if bindir is None:
        raise RuntimeError("PostgreSQL is not installed (apt-get install postgresql)")
    pg = Postgres(bindir)
    pg.start()
    try:
        with Server(workers=0, args=["--store", pg.url]) as server:
            wait_http(f"{server.base}/healthz", 60)

            def stored() -> int:
                with psycopg.connect(f"host=127.0.0.1 port={pg.port} user=postgres dbname=postgres") as conn:
                    row = conn.execute("SELECT count(*) FROM jobs").fetchone()
                    return int(row[0]) if row else 0

            yield f"{server.base}/v1/queue/{MODEL}", stored
    finally:
        pg.destroy()


def celery_redis(cfg: Config, *, fsync_always: bool) -> Callable[[], Any]:
    @contextmanager
    def setup() -> Iterator[tuple[str, Callable[[], int]]]:
        redis = Redis(fsync_always=fsync_always)
        redis.start()
        stack = celery(cfg, redis, worker=False)
        try:
            stack.start()
            wait_http(f"{stack.url}/healthz", 60, stack)
            yield f"{stack.url}/generate", lambda: redis.llen("celery")
        finally:
            stack.stop()
            redis.stop()

    return setup


def measure(cfg: Config, clients: int, seconds: int, rounds: int) -> dict[str, Any]:
    if shutil.which("wrk") is None:
        raise RuntimeError("the submissions benchmark needs wrk (apt-get install wrk)")
    job = {**BODY, "width": cfg.width, "height": cfg.height}
    setups: dict[str, Callable[[], Any]] = {
        "limner (SQLite)": limner_sqlite,
        "limner (PostgreSQL)": limner_postgres,
        "celery (Redis defaults)": celery_redis(cfg, fsync_always=False),
        "celery (Redis appendfsync always)": celery_redis(cfg, fsync_always=True),
    }
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in setups}
    for round_index in range(rounds):
        names = list(setups)
        names = names[round_index % len(names) :] + names[: round_index % len(names)]
        for name in names:
            with setups[name]() as (url, stored):
                wrk(url, clients, 2, job)  # warm-up
                before = stored()
                figures = wrk(url, clients, seconds, job)
                time.sleep(0.5)
                figures["stored"] = stored() - before
                figures["accepted"] = figures["requests"] - figures["non_2xx"]
                runs[name].append(figures)
                print(
                    f"  submit {name:34s} {figures['per_s']:7.0f}/s  p50 {figures['p50_ms']:.1f} ms  "
                    f"p99 {figures['p99_ms']:.1f} ms  ({figures['accepted']} accepted, {figures['stored']} stored)",
                    flush=True,
                )
    return {
        name: {
            "per_s": statistics.median(r["per_s"] for r in rs),
            "p50_ms": statistics.median(r["p50_ms"] for r in rs),
            "p99_ms": statistics.median(r["p99_ms"] for r in rs),
            "non_2xx": sum(r["non_2xx"] for r in rs),
            "accepted": sum(r["accepted"] for r in rs),
            "stored": sum(r["stored"] for r in rs),
            "rounds": rs,
        }
        for name, rs in runs.items()
    }
