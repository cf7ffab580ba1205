"""What the benchmarks share: a limner server in a subprocess, percentiles, JSON results."""

from __future__ import annotations

import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    from limner.progress import Stage

RESULTS = Path(__file__).resolve().parent / "results"


class QuietContext:
    """A RunContext that reports nothing and never stops: baselines call adapters in-process,
    with no job store to report to."""

    def stage(self, name: Stage) -> None: ...

    def step(self, step: int, total: int) -> None: ...

    def log(self, message: str, level: str = "info") -> None: ...

    def is_canceled(self, job_id: str) -> bool:
        return False

    def should_stop(self) -> bool:
        return False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Server:
    """``limner serve`` on a fresh home; stopped (with its workers) on exit."""

    def __init__(self, *, workers: int, env: dict[str, str] | None = None, args: Sequence[str] = ()) -> None:
        self.home = Path(tempfile.mkdtemp(prefix="limner-bench-"))
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "LIMNER_HOME": str(self.home), "HF_HUB_OFFLINE": "1", **(env or {})}
        self.log = open(self.home / "serve.log", "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "limner", "serve", "--workers", str(workers), "--port", str(self.port), *args],
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.workers = workers

    def wait_ready(self, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                body = httpx.get(f"{self.base}/readyz", timeout=2).json()
                if body.get("workers", 0) >= self.workers:
                    return
            except (httpx.TransportError, ValueError):
                pass
            if self.proc.poll() is not None:
                raise RuntimeError((self.home / "serve.log").read_text()[-3000:])
            time.sleep(0.2)
        raise TimeoutError("server not ready")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
        self.log.close()

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def machine() -> dict[str, Any]:
    return {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()}


def write_result(name: str, payload: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    body = {
        "benchmark": name,
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine(),
        **payload,
    }
    path.write_text(json.dumps(body, indent=2) + "\n")
    print(f"wrote {path}")
    return path


def start_ray(num_cpus: int) -> str:
    """Start a Ray instance in this process (stopped by ``ray.shutdown()``); returns its address.

    The raylet hands its environment to the Ray worker processes it starts (the replicas): they
    run offline, one torch thread each. A loopback cluster needs no token, and drivers that
    connect to it (the dispatcher) carry none."""
    import ray

    wanted = {"RAY_AUTH_MODE": "disabled", "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    saved = {k: os.environ.get(k) for k in wanted}
    os.environ.update(wanted)
    try:
        ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return str(ray.get_runtime_context().gcs_address)
