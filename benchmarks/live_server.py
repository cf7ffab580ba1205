"""A throwaway limner (``serve --workers 0`` + one ``worker``) for benchmarks, and what they measure
about it: wall time per job through the sync route, and the worker's peak resident memory."""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.services import Proc, child_env, free_port, wait_http, wait_workers  # noqa: E402


@dataclass
class Live:
    base: str
    worker: Proc
    home: Path

    def run(self, model: str, body: dict[str, Any]) -> tuple[float, dict[str, Any]]:
        """One job through ``POST /v1/run``: its wall time (submit to result) and the result."""
        started = time.perf_counter()
        response = httpx.post(f"{self.base}/v1/run/{model}", json=body, timeout=600)
        elapsed = time.perf_counter() - started
        if response.status_code != 200:
            raise RuntimeError(f"{model}: {response.status_code} {response.text[:500]}")
        result: dict[str, Any] = response.json()
        return elapsed, result

    def worker_peak_rss_mb(self) -> float:
        return peak_rss_mb(self.worker.pid)


def peak_rss_mb(pid: int | str = "self") -> float:
    """The process's resident-set high-water mark (VmHWM), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


@contextmanager
def live_limner(threads: int) -> Iterator[Live]:
    """API and worker on a fresh home; the worker uses ``threads`` torch threads."""
    home = Path(tempfile.mkdtemp(prefix="limner-bench-"))
    env = child_env(home, {"OMP_NUM_THREADS": str(threads)})
    port = free_port()
    api = Proc(["serve", "--workers", "0", "--port", str(port)], env, home / "api.log")
    base = f"http://127.0.0.1:{port}"
    worker: Proc | None = None
    try:
        wait_http(f"{base}/healthz", api)
        worker = Proc(["worker"], env, home / "worker.log")
        wait_workers(base, 1)
        yield Live(base=base, worker=worker, home=home)
    finally:
        if worker is not None:
            worker.stop()
        api.stop()


def write_result(name: str, data: dict[str, Any]) -> Path:
    import json

    folder = ROOT / "benchmarks" / "results"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.json"
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path


def rounds(default: int) -> int:
    return int(os.environ.get("BENCH_ROUNDS", default))
