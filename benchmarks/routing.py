"""Routes under faults, against the same load sent to the single primary, in the same run.

Two limners on loopback: a "provider" (TLS, API keys on, its fal queue routes serve the
``fal-queue`` entry) and a "router" (API + one worker) whose catalog has a local tiny SD, the
provider's tiny SD as a ``fal-queue`` entry, and routes over both. Two fault scenarios, each
sending one routed job and one job to the single primary per tick, interleaved:

1. provider outage: the primary is the provider; it is killed mid-run and restarted later.
   The route is ``[remote, local]`` (fallback, cooldown after 1 failure).
2. local saturation: the primary is the local model; bursts of filler jobs fill its queue.
   The route is ``[local, remote]`` with a latency budget.

Per scenario and side: the share of jobs that succeed within ``--deadline`` seconds and the
p95 latency of all jobs (a failure counts as the deadline). Then the routing overhead on the
happy path: ``/v1/run`` of a one-target route against ``/v1/run`` of that target, interleaved.

    .venv/bin/python benchmarks/routing.py [--jobs 24] [--tick 0.5] [--rounds 30]
"""

from __future__ import annotations

import argparse
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.conftest import Live
from tests.live import _wait, start_live, stop_live
from tests.services import ROOT, Proc
from tests.test_fal_tls import make_certificate

from benchmarks.harness import percentile, write_result

CATALOG = """
models:
  - id: bench/local
    task: text-to-image
    family: diffusers-image
    source: tiny://sd
    defaults: {width: 64, height: 64, num_inference_steps: 2, guidance_scale: 5.0}
    runtime: {dtype: float32, memory_mb: 64}
  - id: bench/remote
    task: text-to-image
    family: fal-queue
    source: {base}/v1/queue/limner/tiny-sd
    defaults: {width: 64, height: 64, num_inference_steps: 2}
    runtime: {api_key_env: PROVIDER_KEY, max_concurrency: 4, usd_per_output: 0.003, timeout_s: 60}
routes:
  - id: bench/outage
    task: text-to-image
    cooldown: {failures: 1, seconds: 3}
    targets: [{model: bench/remote}, {model: bench/local}]
  - id: bench/burst
    task: text-to-image
    latency_budget_s: 1
    targets: [{model: bench/local}, {model: bench/remote}]
  - id: bench/happy
    task: text-to-image
    targets: [{model: bench/local}]
"""


class Provider:
    """The provider limner, which can be killed and started again on the same port and home."""

    def __init__(self) -> None:
        self.cert, self.key_file = make_certificate(Path(tempfile.mkdtemp(prefix="limner-bench-tls-")))
        self.live: Live = start_live(
            None,
            serve_args=self._tls(),
            scheme="https",
            verify=str(self.cert),
        )
        made = subprocess.run(
            [sys.executable, "-m", "limner", "keys", "create", "--name", "bench", "--home", str(self.live.home)],
            env=self.live.env, cwd=ROOT, capture_output=True, text=True, check=True,
        )  # fmt: skip
        self.key = next(w for w in made.stdout.split() if w.startswith("lmk_"))
        time.sleep(1.5)  # keys take effect within a second

    def _tls(self) -> list[str]:
        return ["--tls-cert", str(self.cert), "--tls-key", str(self.key_file)]

    def kill(self) -> None:
        self.live.worker.kill()
        self.live.api.kill()

    def restart(self) -> None:
        live = self.live
        port = live.base.rsplit(":", 1)[1]
        api = Proc(["serve", "--workers", "0", "--port", port, *self._tls()], live.env, live.home / "api.log")
        with httpx.Client(verify=ssl.create_default_context(cafile=str(self.cert))) as client:
            _wait(client, f"{live.base}/healthz", api, ready=False)
            worker = Proc(["worker"], live.env, live.home / "worker.log")
            self.live = Live(live.base, live.home, api, worker, live.env, live.verify)

    def stop(self) -> None:
        if self.live.api.alive():
            stop_live(self.live)


def one_job(base: str, model: str, body: dict[str, Any], deadline_s: float, out: list[dict[str, Any]]) -> None:
    started = time.perf_counter()
    ok, served = False, None
    with httpx.Client(base_url=base, timeout=deadline_s + 5) as http:
        try:
            request_id = http.post(f"/v1/queue/{model}", json=body).json()["request_id"]
            while time.perf_counter() - started < deadline_s:
                status = http.get(f"/v1/queue/{model}/requests/{request_id}/status").json()
                if status["status"] == "COMPLETED":
                    ok = "error_type" not in status
                    if ok:
                        result = http.get(f"/v1/queue/{model}/requests/{request_id}").json()
                        served = (result.get("routing") or {}).get("served_by", model)
                    break
                time.sleep(0.05)
        except (httpx.HTTPError, KeyError, ValueError):
            ok = False
    seconds = time.perf_counter() - started
    out.append({"model": model, "ok": ok and seconds <= deadline_s, "seconds": min(seconds, deadline_s), "by": served})


def scenario(
    base: str,
    routed: str,
    primary: str,
    jobs: int,
    tick_s: float,
    deadline_s: float,
    faults: dict[int, Any],
) -> dict[str, Any]:
    """``jobs`` ticks; at each, one routed job and one primary job start (threads), and the
    fault scheduled for that tick (if any) runs first."""
    results: list[dict[str, Any]] = []
    threads = []
    for tick in range(jobs):
        if tick in faults:
            faults[tick]()
        for model in (routed, primary):
            body = {"prompt": f"tick {tick}", "seed": tick}
            thread = threading.Thread(target=one_job, args=(base, model, body, deadline_s, results))
            thread.start()
            threads.append(thread)
        time.sleep(tick_s)
    for thread in threads:
        thread.join()

    def side(model: str) -> dict[str, Any]:
        mine = [r for r in results if r["model"] == model]
        by: dict[str, int] = {}
        for r in mine:
            if r["by"]:
                by[r["by"]] = by.get(r["by"], 0) + 1
        return {
            "jobs": len(mine),
            "succeeded_share": sum(r["ok"] for r in mine) / len(mine),
            "p95_s": percentile([r["seconds"] for r in mine], 95),
            "p50_s": percentile([r["seconds"] for r in mine], 50),
            "served_by": by,
        }

    return {"routed": side(routed), "primary": side(primary)}


def fill(base: str, model: str, count: int, into: list[str]) -> None:
    with httpx.Client(base_url=base, timeout=30) as http:
        for i in range(count):
            body = {"prompt": f"filler {i}", "seed": 10_000 + i, "num_inference_steps": 30}
            into.append(http.post(f"/v1/queue/{model}", json=body).json()["request_id"])


def cancel(base: str, model: str, request_ids: list[str]) -> None:
    """The fillers still queued after a scenario: canceled, so the next measure runs on an idle queue."""
    with httpx.Client(base_url=base, timeout=30) as http:
        for request_id in request_ids:
            http.put(f"/v1/queue/{model}/requests/{request_id}/cancel")


def overhead(base: str, rounds: int) -> dict[str, Any]:
    routed: list[float] = []
    direct: list[float] = []
    with httpx.Client(base_url=base, timeout=120) as http:
        for i in range(rounds + 2):
            pairs = [("bench/happy", routed, 50_000), ("bench/local", direct, 60_000)]
            for model, into, seeds in pairs if i % 2 else pairs[::-1]:  # alternate which goes first
                started = time.perf_counter()
                body = {"prompt": "happy", "seed": seeds + i}  # never a cache hit
                answer = http.post(f"/v1/run/{model}", json=body, headers={"X-Limner-Cache": "off"})
                answer.raise_for_status()
                if i >= 2:  # two warm-up rounds
                    into.append(time.perf_counter() - started)
    diffs = [(r - d) * 1000 for r, d in zip(routed, direct, strict=True)]
    return {
        "rounds": rounds,
        "routed_median_s": statistics.median(routed),
        "direct_median_s": statistics.median(direct),
        "overhead_ms_median": statistics.median(routed) * 1000 - statistics.median(direct) * 1000,
        "overhead_ms_pairwise_median": statistics.median(diffs),
        "ratio_routed_to_direct": statistics.median(routed) / statistics.median(direct),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=24, help="Ticks per scenario (one routed + one primary job each).")
    parser.add_argument("--tick", type=float, default=0.5)
    parser.add_argument("--deadline", type=float, default=20.0)
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    provider = Provider()
    folder = Path(tempfile.mkdtemp(prefix="limner-bench-router-"))
    (folder / "router.yaml").write_text(CATALOG.replace("{base}", provider.live.base))
    router = start_live(folder / "router.yaml", env={"PROVIDER_KEY": provider.key, "SSL_CERT_FILE": str(provider.cert)})
    try:
        base = router.base
        for model in ("bench/local", "bench/remote", "bench/happy"):  # warm: models loaded, p50s known
            with httpx.Client(base_url=base, timeout=120) as http:
                http.post(f"/v1/run/{model}", json={"prompt": "warm"}).raise_for_status()
        third = args.jobs // 3
        outage = scenario(
            base, "bench/outage", "bench/remote", args.jobs, args.tick, args.deadline,
            {third: provider.kill, 2 * third: provider.restart},
        )  # fmt: skip
        fillers: list[str] = []
        burst = scenario(
            base, "bench/burst", "bench/local", args.jobs, args.tick, args.deadline,
            {t: (lambda: fill(base, "bench/local", 24, fillers)) for t in (2, third + 2, 2 * third + 2)},
        )  # fmt: skip
        cancel(base, "bench/local", fillers)
        happy = overhead(base, args.rounds)
    finally:
        stop_live(router)
        provider.stop()
    for name, figures in (("provider outage", outage), ("local saturation", burst)):
        for side in ("routed", "primary"):
            f = figures[side]
            print(
                f"{name:17} {side:8} succeeded {f['succeeded_share']:.0%}  p95 {f['p95_s']:.2f} s  "
                f"p50 {f['p50_s']:.2f} s  served by {f['served_by']}"
            )
    print(
        f"happy path: routed {happy['routed_median_s'] * 1000:.1f} ms, direct {happy['direct_median_s'] * 1000:.1f} ms,"
        f" overhead {happy['overhead_ms_pairwise_median']:.1f} ms per job (pairwise median; aim < 5 ms)"
    )
    write_result(
        "routing",
        {
            "jobs_per_side": args.jobs,
            "tick_s": args.tick,
            "deadline_s": args.deadline,
            "provider_outage": {
                **outage,
                "succeeded_ratio_routed_to_primary": _ratio(outage, "succeeded_share"),
                "p95_ratio_routed_to_primary": _ratio(outage, "p95_s"),
            },
            "local_saturation": {
                **burst,
                "succeeded_ratio_routed_to_primary": _ratio(burst, "succeeded_share"),
                "p95_ratio_routed_to_primary": _ratio(burst, "p95_s"),
            },
            "happy_path": happy,
            "note": "tiny SD on 2 CPU cores; provider and router on one machine (the provider's worker shares "
            "the cores). A failed job counts as the deadline in the p95.",
        },
    )


def _ratio(figures: dict[str, Any], key: str) -> float | None:
    primary = figures["primary"][key]
    return figures["routed"][key] / primary if primary else None


if __name__ == "__main__":
    main()
