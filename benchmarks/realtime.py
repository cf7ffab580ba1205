"""The real-time lane against POST /v1/run, on the same tiny model, in one run.

One ``limner serve`` with one worker; the tiny SD (64x64, 2 steps) with ``runtime.realtime:
true``. Frames go one at a time (each sent when the previous image arrived), so the figures
are time to image, not throughput:

- over the socket: send the input, receive the image inline (base64 PNG);
- through ``POST /v1/run``: the durable job (row, claim, lease, progress, result), its answer,
  then the GET of the image file it names (the socket carries the picture, so does this).

Both report the model's own call time, so what each path adds is visible.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/realtime.py [--frames 60]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from websockets.sync.client import connect

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.harness import Server, write_result

MODEL = "bench/realtime-sd"
CATALOG = f"""
models:
  - id: {MODEL}
    task: text-to-image
    family: diffusers-image
    source: tiny://sd
    defaults: {{width: 64, height: 64, num_inference_steps: 2, guidance_scale: 5.0}}
    runtime: {{dtype: float32, memory_mb: 64, realtime: true}}
"""


def quantiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    cuts = statistics.quantiles(ordered, n=20, method="inclusive")  # 5% steps
    return {
        "p50_ms": round(1000 * statistics.median(ordered), 2),
        "p95_ms": round(1000 * cuts[18], 2),
        "mean_ms": round(1000 * statistics.fmean(ordered), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--frames", type=int, default=60)
    args = parser.parse_args()
    catalog = Path(tempfile.mkdtemp(prefix="limner-bench-realtime-")) / "catalog.yaml"
    catalog.write_text(CATALOG)
    socket_s: list[float] = []
    socket_model_s: list[float] = []
    run_s: list[float] = []
    run_model_s: list[float] = []
    with (
        Server(workers=1, env={"LIMNER_THREADS": "1"}, args=["--catalog", str(catalog)]) as server,
        httpx.Client(base_url=server.base, timeout=120) as http,
    ):
        server.wait_ready()
        url = server.base.replace("http://", "ws://") + f"/v1/realtime/{MODEL}"
        with connect(url, open_timeout=60, max_size=None) as socket:

            def frame(seed: int) -> dict[str, Any]:
                started = time.perf_counter()
                socket.send(json.dumps({"prompt": "a lighthouse at dusk", "seed": seed}))
                answer: dict[str, Any] = json.loads(socket.recv(timeout=120))
                assert answer["type"] == "result", answer
                answer["elapsed"] = time.perf_counter() - started
                return answer

            def run(seed: int) -> tuple[float, float]:
                started = time.perf_counter()
                body = {"prompt": "a lighthouse at dusk", "seed": seed}
                out = http.post(f"/v1/run/{MODEL}", json=body, headers={"X-Limner-Cache": "off"})
                assert out.status_code == 200, out.text
                image = http.get(out.json()["images"][0]["url"])
                assert image.status_code == 200
                return time.perf_counter() - started, float(out.json()["timings"]["inference_s"])

            for seed in range(3):  # warm both paths: the lane's model, the queue's model, connections
                frame(seed)
                run(seed)
            for seed in range(args.frames):  # interleaved, so drift in the machine's load hits both
                answer = frame(1000 + seed)
                socket_s.append(answer["elapsed"])
                socket_model_s.append(float(answer["timings"]["inference_s"]))
                elapsed, model = run(2000 + seed)
                run_s.append(elapsed)
                run_model_s.append(model)
    lane, queue = quantiles(socket_s), quantiles(run_s)
    payload = {
        "frames": args.frames,
        "model": MODEL,
        "realtime_socket": {**lane, "model_p50_ms": round(1000 * statistics.median(socket_model_s), 2)},
        "post_run": {**queue, "model_p50_ms": round(1000 * statistics.median(run_model_s), 2)},
        "p50_ratio_socket_vs_run": round(lane["p50_ms"] / queue["p50_ms"], 3),
        "p95_ratio_socket_vs_run": round(lane["p95_ms"] / queue["p95_ms"], 3),
    }
    print(
        f"time to image over {args.frames} frames: socket p50 {lane['p50_ms']:.1f} ms / p95 {lane['p95_ms']:.1f} ms; "
        f"POST /v1/run p50 {queue['p50_ms']:.1f} ms / p95 {queue['p95_ms']:.1f} ms "
        f"(model call p50 {payload['realtime_socket']['model_p50_ms']:.1f} ms vs "
        f"{payload['post_run']['model_p50_ms']:.1f} ms)"
    )
    write_result("realtime", payload)


if __name__ == "__main__":
    main()
