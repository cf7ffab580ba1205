"""Audio and speech: time per output and real-time factor, direct vs through the server.

For the tiny MusicGen, the tiny Stable Audio and the real piper voice (when limner[piper] is
installed), the baseline is the family's adapter called in this process (model loaded, one
warm-up call); the measured path is the same request through a running ``limner serve`` (API
+ one worker process) with ``POST /v1/run``, which adds validation, the queue, storage and HTTP.
Real-time factor = seconds of compute per second of audio produced (below 1: faster than
real time). Peak RSS is this process's (the baseline, all three models loaded) and the largest
server process's (the worker). Figures go to stdout and benchmarks/results/audio.json.

    .venv/bin/python benchmarks/audio.py [--runs 3]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.harness import QuietContext
from limner.adapters import load_adapter
from limner.adapters.base import LoadEnv, WorkItem, work_item
from limner.catalog import load_catalog
from limner.catalog.inputs import finalize_input, parse_input

RESULTS = Path(__file__).parent / "results" / "audio.json"
PARAGRAPH = (
    "limner turns text into speech on your own machine. Each sentence is synthesized in turn, "
    "so progress is reported as the voice goes. A paragraph of a few sentences takes a moment."
)
WORKLOADS: list[tuple[str, dict[str, Any]]] = [
    ("limner/tiny-musicgen", {"prompt": "an upbeat synth melody", "duration_s": 5.0, "seed": 1}),
    ("limner/tiny-stable-audio", {"prompt": "rain on a tin roof", "duration_s": 5.0, "seed": 1}),
    ("limner/piper-joe-us", {"text": PARAGRAPH}),
]


@dataclass
class Direct:
    """One model loaded in this process, called the way the worker calls it."""

    adapter: Any
    loaded: Any
    entry: Any
    items: list[WorkItem[Any]]

    def __call__(self) -> float:
        (output,) = self.adapter.run(self.loaded, self.entry, self.items, QuietContext())
        duration: float = output.files["audio"][0].properties["duration_s"]
        return duration


def load_direct(models_dir: Path) -> dict[str, Direct]:
    catalog = load_catalog()
    loaded: dict[str, Direct] = {}
    for model_id, body in WORKLOADS:
        entry = catalog.get(model_id)
        adapter = load_adapter(entry.family)
        model = adapter.load(entry, LoadEnv(device="cpu", models_dir=models_dir))
        spec = finalize_input(entry, parse_input(entry, body)).model_dump(mode="json")
        loaded[model_id] = Direct(adapter, model, entry, [work_item(entry.task, "bench", spec)])
    return loaded


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def peak_rss_mb(pid: int) -> float:
    """The high-water resident set of a live process and its descendants' largest (Linux /proc)."""
    peak = 0.0
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return peak
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            peak = int(line.split()[1]) / 1024
    return max([peak, *(peak_rss_mb(int(child)) for child in children)])


def start_server(home: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {**os.environ, "LIMNER_HOME": str(home), "HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1"}
    args = [sys.executable, "-m", "limner", "serve", "--workers", "1", "--port", str(port)]
    with (home / "serve.log").open("wb") as log:
        server = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/readyz").status_code == 200:
                return server, base
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    server.kill()
    raise RuntimeError(f"the server did not get ready; see {home / 'serve.log'}")


def stop_server(server: subprocess.Popen[bytes]) -> None:
    # SIGINT, not SIGTERM: `limner serve` stops its workers on the way out of a KeyboardInterrupt.
    server.send_signal(signal.SIGINT)
    try:
        server.wait(timeout=60)
    except subprocess.TimeoutExpired:
        server.kill()


def measure(direct: dict[str, Direct], http: httpx.Client, runs: int) -> dict[str, dict[str, Any]]:
    """Direct and server calls alternate, so both see the same machine load."""
    figures: dict[str, dict[str, Any]] = {}
    for model_id, body in WORKLOADS:
        call = direct[model_id]
        call()
        http.post(f"/v1/run/{model_id}", json=body).raise_for_status()  # warm-up: loads the model
        spent = {"direct": 0.0, "server": 0.0}
        audio = {"direct": 0.0, "server": 0.0}  # a voice's timing varies from run to run
        for _ in range(runs):
            started = time.perf_counter()
            audio["direct"] += call()
            spent["direct"] += time.perf_counter() - started
            started = time.perf_counter()
            result = http.post(f"/v1/run/{model_id}", json=body).json()
            spent["server"] += time.perf_counter() - started
            audio["server"] += result["audio"][0]["duration_s"]
        figures[model_id] = {
            way: {"s_per_output": spent[way] / runs, "audio_s": audio[way] / runs, "rtf": spent[way] / audio[way]}
            for way in spent
        }
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    if importlib.util.find_spec("piper") is None:
        print("piper is not installed (limner[piper]); benchmarking the music models only")
        WORKLOADS.pop()
    with tempfile.TemporaryDirectory(prefix="limner-bench-audio-") as tmp:
        home = Path(tmp)
        server, base = start_server(home)
        try:
            direct = load_direct(home / "models")
            with httpx.Client(base_url=base, timeout=600) as http:
                figures = measure(direct, http, args.runs)
            server_rss_mb = peak_rss_mb(server.pid)
        finally:
            stop_server(server)
        baseline_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rows = []
    header = ("model", "direct s", "server s", "ratio", "audio s", "RTF direct", "RTF server")
    print("{:28} {:>9} {:>9} {:>6} {:>8} {:>10} {:>10}".format(*header))
    for model_id, _ in WORKLOADS:
        d, s = figures[model_id]["direct"], figures[model_id]["server"]
        ratio = s["s_per_output"] / d["s_per_output"]
        print(
            f"{model_id:28} {d['s_per_output']:9.3f} {s['s_per_output']:9.3f} {ratio:6.2f} "
            f"{d['audio_s']:8.2f} {d['rtf']:10.3f} {s['rtf']:10.3f}"
        )
        rows.append({"model": model_id, "direct": d, "server": s, "server_over_direct": ratio})
    print(f"peak RSS: {baseline_rss_mb:.0f} MB in-process (all models), {server_rss_mb:.0f} MB largest server process")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "benchmark": "audio",
        "runs": args.runs,
        "device": "cpu",
        "baseline": "the family adapter called in-process, model loaded and warmed up",
        "results": rows,
        "peak_rss_mb": {"in_process": round(baseline_rss_mb), "server_largest_process": round(server_rss_mb)},
    }
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
