"""benchmarks/results/peers.md from the run's JSON."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parents[1] / "results"


def redis_version() -> str:
    done = subprocess.run(["redis-server", "--version"], capture_output=True, text=True, check=False)
    found = re.search(r"v=([\d.]+)", done.stdout)
    return found.group(1) if found else "?"


def _f(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def markdown(payload: dict[str, Any], host: dict[str, Any]) -> str:
    cfg = payload["config"]
    stacks: dict[str, Any] = payload["stacks"]
    summary: dict[str, Any] = payload.get("summary", {})
    lines = [
        "# limner against its peers, same work, same run",
        "",
        f"tiny://sd text-to-image, {cfg['width']}x{cfg['height']}, {cfg['steps']} steps, PNG; "
        f"{cfg['replicas']} model processes per stack, one torch thread each; {host['cpus']} cores. "
        f"Run took {payload['seconds']:.0f} s. Made by `make bench-peers` (benchmarks/peers.py).",
        "",
        f"Same PNG bytes for the check job (seed 7) from every stack: {'yes' if payload['same_png'] else 'NO'}.",
        "",
        "| stack | version | jobs kept in | batching |",
        "|---|---|---|---|",
    ]
    for name, info in stacks.items():
        lines.append(f"| {name} | {info['version']} | {info['persists']} | {info['batching']} |")
    lines.append(f"| (redis-server) | {payload['redis_server']} | | |")
    for name, why in payload.get("failed_to_start", {}).items():
        lines += ["", f"**{name} did not start**: `{why[-300:]}`"]
    if summary:
        rates = sorted({k for s in summary.values() for k in s if k != "closed"}, key=float)
        ref = summary.get("limner", {})
        head = f"| stack | closed loop jobs/s (c={cfg['concurrency']}) | limner ÷ stack |"
        rule = "|---|---|---|"
        for rate in rates:
            head += f" {rate}/s p50/p95/p99 s | limner p99 ÷ stack p99 |"
            rule += "---|---|"
        head += " errors |"
        rule += "---|"
        lines += [
            "",
            f"## Throughput and end-to-end latency (medians of {cfg['rounds']} interleaved rounds)",
            "",
            "End to end = from the client sending the job to the client holding the PNG. "
            "Ratios above 1 mean limner (batching) is faster on throughput; below 1 on p99 means its tail "
            "is shorter.",
            "",
            head,
            rule,
        ]
        for name, loads in summary.items():
            closed = loads.get("closed", {})
            ratio = (
                ref.get("closed", {}).get("jobs_per_s", 0) / closed["jobs_per_s"] if closed.get("jobs_per_s") else None
            )
            row = f"| {name} | {_f(closed.get('jobs_per_s'), 1)} | {_f(ratio)} |"
            errors = closed.get("errors", 0)
            for rate in rates:
                cell = loads.get(rate, {})
                errors += cell.get("errors", 0)
                p99_ratio = ref.get(rate, {}).get("p99_s", 0) / cell["p99_s"] if cell.get("p99_s") else None
                row += (
                    f" {_f(cell.get('p50_s'), 3)}/{_f(cell.get('p95_s'), 3)}/{_f(cell.get('p99_s'), 3)} "
                    f"| {_f(p99_ratio)} |"
                )
            lines.append(row + f" {errors} |")
    idle = payload.get("idle_cpu", {})
    if idle:
        lines += [
            "",
            "Idle CPU of each stack while the others ran (share of one core): "
            + ", ".join(f"{k} {v:.2f}" for k, v in idle.items())
            + ".",
        ]
    crash = payload.get("crash", {})
    if crash:
        lines += [
            "",
            "## SIGKILL during a run",
            "",
            f"Poisson arrivals at {cfg['crash_rate']:g}/s for {cfg['crash_duration']:g} s; "
            f"at {cfg['kill_at']:g} s every process of the stack is SIGKILLed (its store, SQLite file or Redis "
            f"server, stays) and restarted at once; accepted jobs then get {cfg['crash_bound']:g} s to complete. "
            "Accepted = the stack gave the job an id (limner's 202, Celery's task id) or, for synchronous stacks, "
            "the request was on an open connection. "
            "Refused = could not connect while the stack was down (the client knows to retry).",
            "",
            "| stack | processes killed | back after s | submitted | accepted | completed | **lost** | refused "
            "| unanswered submits |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for name, row in crash.items():
            lines.append(
                f"| {name} | {row['processes_killed']} | {_f(row['downtime_s'], 1)} | {row['submitted']} "
                f"| {row['accepted']} | {row['completed']} | **{row['lost_or_failed']}** | {row['refused']} "
                f"| {row['unanswered']} |"
            )
    submit = payload.get("submit", {})
    if submit:
        lines += [
            "",
            f"## Submissions: {cfg['submit_clients']} concurrent clients (wrk), no workers, "
            f"{cfg['submit_rounds']} interleaved rounds of {cfg['submit_seconds']} s",
            "",
            "| setup | submits/s | p50 ms | p99 ms | non-2xx | accepted | found in the store |",
            "|---|---|---|---|---|---|---|",
        ]
        for name, row in submit.items():
            lines.append(
                f"| {name} | {row['per_s']:.0f} | {row['p50_ms']:.1f} | {row['p99_ms']:.1f} | {row['non_2xx']} "
                f"| {row['accepted']} | {row['stored']} |"
            )
    lines += anatomy_lines()
    return "\n".join(lines) + "\n"


def anatomy_lines() -> list[str]:
    """The table of ``benchmarks/peers/anatomy.py``'s last run, when there is one."""
    path = RESULTS / "peers-anatomy.json"
    if not path.exists():
        return []
    data = json.loads(path.read_text())
    floor = data["pipeline_ms_per_image_by_batch"]
    lines = [
        "",
        f"## Where limner's time goes (benchmarks/peers/anatomy.py, {data['when']})",
        "",
        f"Closed loop of {data['jobs']} jobs, {data['concurrency']} clients, through `POST /v1/run` and the file; "
        "medians per job in ms. Missed wake-ups: jobs (over all rounds) answered more than 5 s after they "
        "finished. CPU: per job, limner's API process and its workers. The pipeline alone, in one process: "
        + ", ".join(f"{v} ms per image at batch {k}" for k, v in floor.items())
        + ".",
        "",
        "| limner | accept | queue | inference | store | wake | file | total | missed wake-ups | jobs/s "
        "| CPU API | CPU workers |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, v in data["variants"].items():
        lines.append(
            f"| {name} | {v['accept_ms']:.0f} | {v['queue_ms']:.0f} | {v['inference_ms']:.0f} | {v['store_ms']:.0f} "
            f"| {v['wake_ms']:.0f} | {v['file_ms']:.0f} | {v['total_ms']:.0f} | {v['missed_wakeups']:g} "
            f"| {v['jobs_per_s']:.1f} | {v['cpu_api_ms_per_job']:.0f} | {v['cpu_workers_ms_per_job']:.0f} |"
        )
    peer = data.get("litserve")
    if peer:
        lines += [
            "",
            f"LitServe on the same loop, same run: {peer['jobs_per_s']:.1f} jobs/s, p50 {peer['p50_ms']:.0f} ms, "
            f"{peer['cpu_ms_per_job']:.0f} ms CPU per job for all its processes.",
        ]
    return lines


def rewrite() -> None:
    """peers.md again from peers.json (and the anatomy), without running anything."""
    payload = json.loads((RESULTS / "peers.json").read_text())
    (RESULTS / "peers.md").write_text(markdown(payload, payload["machine"]))


if __name__ == "__main__":
    rewrite()
