"""limner against the servers a team would pick instead, on the same work, in the same run.

The same tiny text-to-image pipeline (the ``tiny://sd`` build, loaded through
``DiffusionPipeline.from_pretrained``, one seeded generator per image, PNG) served six ways, each
with the same number of model processes (``--replicas``, one torch thread each):

- limner: ``limner serve --workers N`` on SQLite, batching on (the catalog entry's
  max_batch_size 8, batch_wait_ms 0) and off (LIMNER_BATCHING=0)
- LitServe with its batching (max_batch_size, batch_timeout)
- Ray Serve, a plain deployment with ``@serve.batch`` (no limner)
- FastAPI + Celery on a real Redis server (no batching: Celery has none)
- BentoML with adaptive batching

The peers are in benchmarks/peers/*_app.py and run from .venv-peers (``make bench-peers``).
Every stack gets the same loads, rounds interleaved across stacks (the order rotates each
round) so that the machine's drift falls on all alike: a closed loop (throughput) and Poisson
arrivals at several rates (p50/p95/p99 end to end, errors). Then each stack is SIGKILLed during a
run and restarted, and the jobs it had accepted and never completed are counted. Last, durable
submissions with 64 clients: limner on SQLite and PostgreSQL against Celery's apply_async on
Redis. Results: benchmarks/results/peers.md and peers.json.

    make bench-peers                       # about 20 minutes on 2 cores
    .venv/bin/python benchmarks/peers.py --peers-python .venv-peers/bin/python \
        [--rounds 3 --duration 10 --rates 8,16,32,48 --jobs 192 --stacks limner,celery ...]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.harness import RESULTS, machine, write_result
from benchmarks.peers import loads, report, submits
from benchmarks.peers.stacks import Config, Redis, Stack, bentoml, celery, limner, litserve, ray_serve

STACKS = ("limner", "limner-no-batching", "litserve", "ray-serve", "celery", "bentoml")


def build_model() -> Path:
    from limner.tiny import build_tiny

    dest = Path(tempfile.mkdtemp(prefix="limner-peers-model-")) / "sd"
    build_tiny("sd", dest)
    return dest


def make_stack(name: str, cfg: Config, redises: list[Redis]) -> Stack:
    if name == "limner":
        return limner(cfg, batching=True)
    if name == "limner-no-batching":
        return limner(cfg, batching=False)
    if name == "litserve":
        return litserve(cfg)
    if name == "ray-serve":
        return ray_serve(cfg)
    if name == "bentoml":
        return bentoml(cfg)
    if name in ("celery", "celery-acks-late"):
        redis = Redis()
        redis.start()
        redises.append(redis)
        return celery(cfg, redis, acks_late=name == "celery-acks-late")
    raise SystemExit(f"unknown stack {name!r}; choose from {', '.join(STACKS)}")


def bring_up(stack: Stack, cfg: Config, poll_s: float) -> dict[str, Any]:
    """Start the stack, wait for its first image, warm every replica; what it took."""
    started = time.monotonic()
    stack.start()
    digest = asyncio.run(loads.probe(stack, cfg, within_s=300, poll_s=poll_s))
    ready_s = time.monotonic() - started
    asyncio.run(loads.warm(stack, cfg, cfg.replicas, poll_s))
    print(f"{stack.name}: first image after {ready_s:.1f} s (png sha256 {digest[:12]})", flush=True)
    return {"ready_s": round(ready_s, 2), "png_sha256": digest}


def idle_cpu(stacks: list[Stack], seconds: float = 5.0) -> dict[str, float]:
    """CPU share (of one core) each stack burns while nobody sends it anything: what an idle
    stack takes from the one being measured."""

    def cpu(stack: Stack) -> float:
        total = 0.0
        for proc in stack.procs:
            for p in proc.tree():
                try:
                    times = p.cpu_times()
                    total += times.user + times.system
                except psutil.NoSuchProcess:
                    pass
        return total

    before = {s.name: cpu(s) for s in stacks}
    time.sleep(seconds)
    return {s.name: round((cpu(s) - before[s.name]) / seconds, 3) for s in stacks}


def load_rounds(stacks: list[Stack], cfg: Config, args: argparse.Namespace) -> dict[str, list[dict[str, Any]]]:
    """Every load on every stack, round after round; within a load the stacks' order rotates."""
    rates = [float(r) for r in args.rates.split(",") if r]
    runs: dict[str, list[dict[str, Any]]] = {s.name: [] for s in stacks}
    for round_index in range(args.rounds):
        plan: list[tuple[str, float]] = [("closed", 0.0)] + [("poisson", r) for r in rates]
        for load_index, (kind, rate) in enumerate(plan):
            shift = (round_index + load_index) % len(stacks)
            for stack in stacks[shift:] + stacks[:shift]:
                if kind == "closed":
                    row = asyncio.run(
                        loads.closed_loop(stack, cfg, args.jobs, args.concurrency, f"closed{round_index}", args.poll_s)
                    )
                else:
                    row = asyncio.run(loads.poisson(stack, cfg, rate, args.duration, round_index, args.poll_s))
                row["round"] = round_index
                runs[stack.name].append(row)
                label = "closed" if kind == "closed" else f"{rate:g}/s"
                print(
                    f"  r{round_index} {label:>7s} {stack.name:20s} {row['completed']}/{row['submitted']} "
                    f"{row['jobs_per_s']:6.1f} jobs/s  p50/p95/p99 {row['p50_s']:.3f}/{row['p95_s']:.3f}/"
                    f"{row['p99_s']:.3f} s  errors {row['errors']}",
                    flush=True,
                )
    return runs


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over rounds, per load."""
    by_load: dict[str, list[dict[str, Any]]] = {}
    for row in runs:
        key = "closed" if row["load"] == "closed" else f"{row['rate']:g}"
        by_load.setdefault(key, []).append(row)
    out: dict[str, Any] = {}
    for key, rows in by_load.items():
        out[key] = {
            "jobs_per_s": statistics.median(r["jobs_per_s"] for r in rows),
            "p50_s": statistics.median(r["p50_s"] for r in rows),
            "p95_s": statistics.median(r["p95_s"] for r in rows),
            "p99_s": statistics.median(r["p99_s"] for r in rows),
            "errors": sum(r["errors"] for r in rows),
            "submitted": sum(r["submitted"] for r in rows),
            "rounds": len(rows),
        }
    return out


def crash_all(stacks: list[Stack], cfg: Config, args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for stack in stacks:

        def restart(stack: Stack = stack) -> float:
            began = time.monotonic()
            stack.start()
            asyncio.run(loads.probe(stack, cfg, within_s=300, poll_s=args.poll_s, tag="after-crash", seed=int(began)))
            return time.monotonic() - began

        row = asyncio.run(
            loads.crash_run(
                stack,
                cfg,
                rate=args.crash_rate,
                duration=args.crash_duration,
                kill_at=args.kill_at,
                bound_s=args.crash_bound,
                poll_s=args.poll_s,
                restart=restart,
            )
        )
        out[stack.name] = row
        print(
            f"  crash {stack.name:20s} killed {row['processes_killed']} processes, back in {row['downtime_s']} s: "
            f"{row['accepted']} accepted, {row['completed']} completed, {row['lost_or_failed']} lost, "
            f"{row['refused']} refused while down, {row['unanswered']} unanswered",
            flush=True,
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--peers-python", default=".venv-peers/bin/python", help="python of the peers' venv")
    parser.add_argument("--stacks", default=",".join(STACKS))
    parser.add_argument("--replicas", type=int, default=2, help="model processes per stack")
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--height", type=int, default=64)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--batch-wait-s", type=float, default=0.01, help="LitServe's and Ray's batch window")
    parser.add_argument("--jobs", type=int, default=96, help="jobs per closed-loop run")
    parser.add_argument("--concurrency", type=int, default=16, help="clients in the closed loop")
    parser.add_argument("--rates", default="8,16,32", help="Poisson arrival rates, jobs/s")
    parser.add_argument("--duration", type=float, default=6.0, help="seconds of arrivals per Poisson run")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--poll-s", type=float, default=0.1, help="how often a Celery client polls its task")
    parser.add_argument("--crash-rate", type=float, default=8.0)
    parser.add_argument("--crash-duration", type=float, default=8.0)
    parser.add_argument("--kill-at", type=float, default=3.0)
    parser.add_argument("--crash-bound", type=float, default=90.0, help="seconds accepted jobs get to complete")
    parser.add_argument("--submit-seconds", type=int, default=8)
    parser.add_argument("--submit-rounds", type=int, default=2)
    parser.add_argument("--submit-clients", type=int, default=64)
    parser.add_argument("--skip", default="", help="comma-separated: loads, crash, submit")
    args = parser.parse_args()
    # Ctrl-C or SIGTERM ends the run through the cleanup below (every stack and Redis stopped):
    # a handler of our own, because asyncio.run's SIGINT handling only cancels the current load.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda signum, _frame: sys.exit(128 + signum))
    skip = set(args.skip.split(","))
    for tool in ("redis-server", "redis-cli", "wrk"):
        if shutil.which(tool) is None:
            sys.exit(f"benchmarks/peers.py needs {tool}: apt-get install redis-server wrk (make bench-peers does)")
    if not Path(args.peers_python).exists():
        sys.exit(f"{args.peers_python} is missing: make bench-peers builds .venv-peers")
    began = time.monotonic()
    cfg = Config(
        model_dir=build_model(),
        peers_python=str(Path(args.peers_python).absolute()),
        replicas=args.replicas,
        batch_wait_s=args.batch_wait_s,
        width=args.width,
        height=args.height,
        steps=args.steps,
    )
    redises: list[Redis] = []
    stacks: list[Stack] = []
    started: dict[str, Any] = {}
    failed: dict[str, str] = {}
    results: dict[str, Any] = {}
    try:
        for name in args.stacks.split(","):
            stack = make_stack(name, cfg, redises)
            stacks.append(stack)
            try:
                started[name] = bring_up(stack, cfg, args.poll_s)
            except (RuntimeError, TimeoutError) as exc:
                failed[name] = str(exc)[-2000:]
                print(f"{name} did not start: {str(exc)[-500:]}", flush=True)
                stack.stop()
        live = [s for s in stacks if s.name in started]
        results["idle_cpu"] = idle_cpu(live)
        if "loads" not in skip:
            runs = load_rounds(live, cfg, args)
            results["runs"] = runs
            results["summary"] = {name: summarize(rows) for name, rows in runs.items()}
        if "crash" not in skip:
            acks_late = make_stack("celery-acks-late", cfg, redises) if "celery" in started else None
            if acks_late is not None:
                stacks.append(acks_late)
                started[acks_late.name] = bring_up(acks_late, cfg, args.poll_s)
                live.append(acks_late)
            results["crash"] = crash_all(live, cfg, args)
    finally:
        for stack in stacks:
            stack.stop()
        for redis in redises:
            redis.stop()
    if "submit" not in skip:
        results["submit"] = submits.measure(cfg, args.submit_clients, args.submit_seconds, args.submit_rounds)
    payload = {
        "config": {k: v for k, v in vars(args).items() if k != "peers_python"},
        "model": "tiny://sd (limner.tiny.build_tiny)",
        "stacks": {
            s.name: {
                "version": s.version,
                "persists": s.persists,
                "batching": s.batching,
                "client": s.client,
                **started.get(s.name, {}),
            }
            for s in stacks
        },
        "failed_to_start": failed,
        "same_png": len({v["png_sha256"] for v in started.values()}) == 1,
        "redis_server": report.redis_version(),
        "seconds": round(time.monotonic() - began, 1),
        **results,
    }
    write_result("peers", payload)
    text = report.markdown(payload, machine())
    (RESULTS / "peers.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
