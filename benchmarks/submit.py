"""Submissions per second and submit latency with 64 concurrent clients.

Every 202 means the job is committed (SQLite WAL with synchronous=FULL: on disk, fsynced).
The server runs with no workers so that only submission is measured. Load comes from `wrk`
(apt-get install wrk): a Python client cannot generate this much load on 2 cores, it
measures itself. In the same run the same load hits GET /healthz (no store, no validation):
the baseline, i.e. the ceiling of the HTTP stack and the load generator on this machine.

With ``--baseline REF`` the same load also hits a server running an earlier commit (checked
out into a temporary git worktree, served with its own ``src`` first on PYTHONPATH), rounds
interleaved, so a change's cost is measured against the code before it in the same run:

    .venv/bin/python benchmarks/submit.py [--clients 64] [--seconds 10] [--store URL] [--baseline REF]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.harness import Server, write_result

MODEL = "limner/tiny-sd"
BODY = {"prompt": "a product photo of a ceramic mug on a wooden table", "seed": 1, "num_inference_steps": 4}
UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def wrk(url: str, clients: int, seconds: int, body: dict[str, Any] | None) -> dict[str, Any]:
    """Run wrk against ``url`` (POSTing ``body`` as JSON when given); its figures, parsed."""
    script = Path(tempfile.mkdtemp(prefix="limner-wrk-")) / "request.lua"
    if body is not None:
        script.write_text(
            'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
            f"wrk.body = {json.dumps(json.dumps(body))}\n"
        )
    else:
        script.write_text("")
    done = subprocess.run(
        ["wrk", "-t2", f"-c{clients}", f"-d{seconds}s", "--latency", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
    )
    out = done.stdout
    latency = {
        int(p): float(v) * UNITS[u] for p, v, u in re.findall(r"^\s+(50|75|90|99)%\s+([\d.]+)(us|ms|s)\b", out, re.M)
    }
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    return {
        "requests": total,
        "per_s": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
        "p50_ms": latency.get(50),
        "p90_ms": latency.get(90),
        "p99_ms": latency.get(99),
        "non_2xx": int(non_2xx.group(1)) if non_2xx else 0,
        "socket_errors": errors.group(1) if errors else None,
    }


def count_jobs(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        count: int = conn.execute("SELECT count(*) FROM jobs").fetchone()[0]
        return count


def wait_alive(base: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    raise TimeoutError(base)


def checkout(ref: str) -> Path:
    """A temporary git worktree of ``ref`` (removed by the caller)."""
    root = Path(__file__).resolve().parent.parent
    dest = Path(tempfile.mkdtemp(prefix="limner-baseline-")) / "tree"
    subprocess.run(
        ["git", "-C", str(root), "worktree", "add", "--detach", str(dest), ref], check=True, capture_output=True
    )
    return dest


def remove_checkout(dest: Path) -> None:
    root = Path(__file__).resolve().parent.parent
    subprocess.run(
        ["git", "-C", str(root), "worktree", "remove", "--force", str(dest)], check=False, capture_output=True
    )


def compare(args: argparse.Namespace) -> None:
    """This tree against ``args.baseline``, rounds interleaved; medians and their ratios."""
    tree = checkout(args.baseline)
    old_env = {"PYTHONPATH": f"{tree / 'src'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    rounds: dict[str, list[dict[str, Any]]] = {"current": [], "baseline": []}
    try:
        with Server(workers=0) as current, Server(workers=0, env=old_env) as baseline:
            servers = {"current": current, "baseline": baseline}
            for server in servers.values():
                wait_alive(server.base)
                wrk(f"{server.base}/v1/queue/{MODEL}", args.clients, 2, BODY)  # warm-up
            for _ in range(args.rounds):
                for name, server in servers.items():
                    rounds[name].append(wrk(f"{server.base}/v1/queue/{MODEL}", args.clients, args.seconds, BODY))
    finally:
        remove_checkout(tree)
    summary: dict[str, dict[str, float]] = {}
    for name, runs in rounds.items():
        summary[name] = {
            "per_s": statistics.median(r["per_s"] for r in runs),
            "p50_ms": statistics.median(r["p50_ms"] for r in runs),
            "p99_ms": statistics.median(r["p99_ms"] for r in runs),
            "non_2xx": sum(r["non_2xx"] for r in runs),
        }
        print(
            f"{name:9} {args.baseline if name == 'baseline' else 'HEAD':>10}: {summary[name]['per_s']:.0f}/s  "
            f"p50 {summary[name]['p50_ms']:.1f} ms  p99 {summary[name]['p99_ms']:.1f} ms  "
            f"(median of {len(runs)} rounds; {summary[name]['non_2xx']} non-2xx)"
        )
    ratio = summary["current"]["per_s"] / summary["baseline"]["per_s"]
    p99_ratio = summary["current"]["p99_ms"] / summary["baseline"]["p99_ms"]
    print(f"throughput current/baseline {ratio:.2f}, p99 current/baseline {p99_ratio:.2f}")
    write_result(
        "submit_vs_baseline",
        {
            "clients": args.clients,
            "seconds_per_round": args.seconds,
            "baseline_ref": args.baseline,
            "rounds": rounds,
            "median": summary,
            "throughput_ratio": ratio,
            "p99_ratio": p99_ratio,
        },
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--store", default=None, help="default: SQLite under a fresh home")
    parser.add_argument("--baseline", default=None, help="a git ref to measure against, rounds interleaved")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per server with --baseline")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("benchmarks/submit.py needs wrk (apt-get install wrk)")
    if args.baseline:
        compare(args)
        return
    server_args = ["--store", args.store] if args.store else []
    with Server(workers=0, args=server_args) as server:
        wait_alive(server.base)
        wrk(f"{server.base}/v1/queue/{MODEL}", args.clients, 2, BODY)  # warm-up
        before = count_jobs(server.home / "limner.db") if not args.store else 0
        health = wrk(f"{server.base}/healthz", args.clients, args.seconds, None)
        submits = wrk(f"{server.base}/v1/queue/{MODEL}", args.clients, args.seconds, BODY)
        time.sleep(1)
        stored = count_jobs(server.home / "limner.db") - before if not args.store else None
    accepted = submits["requests"] - submits["non_2xx"]
    print(f"GET /healthz  : {health['per_s']:.0f}/s  p50 {health['p50_ms']:.1f} ms  p99 {health['p99_ms']:.1f} ms")
    print(
        f"POST /v1/queue: {submits['per_s']:.0f}/s  p50 {submits['p50_ms']:.1f} ms  p99 {submits['p99_ms']:.1f} ms"
        f"  ({accepted} accepted, {submits['non_2xx']} refused, {stored} new rows on disk)"
    )
    print(f"ratio submit/healthz throughput: {submits['per_s'] / health['per_s']:.2f}")
    write_result(
        "submit",
        {
            "clients": args.clients,
            "load_generator": "wrk -t2",
            "store": args.store or "sqlite (WAL, synchronous=FULL)",
            "healthz_baseline": health,
            "submit": submits,
            "ratio_submit_to_healthz": submits["per_s"] / health["per_s"],
            "accepted": accepted,
            "rows_on_disk": stored,
            "aim": {"per_s": 1000, "p99_ms": 50},
        },
    )


if __name__ == "__main__":
    main()
