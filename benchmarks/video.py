"""Video on the tiny models: seconds per video through limner (HTTP API, queue, worker,
storage) against the same pipeline called directly in this process, plus the worker's peak
resident memory.

Baseline, per model: the family's own call arguments, ``pipe(...)`` and the same MP4 encode,
in a loop in one process, after one warm-up call. Through limner: ``POST /v1/run`` for the
same inputs, after one warm-up job (which loads the model); the two sides alternate call by
call, so both see the same load on a shared machine. Both use the same number of
torch threads (BENCH_THREADS, default 1: the machine's cores are shared). The tiny models draw
noise; what is measured is the platform around them, at the sizes the tests use.

    .venv/bin/python benchmarks/video.py        # BENCH_ROUNDS=5 by default
"""

from __future__ import annotations

import base64
import io
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
from PIL import Image

from benchmarks.live_server import live_limner, peak_rss_mb, rounds, write_result

SIZE = {"width": 64, "height": 64}
MODELS: list[tuple[str, dict[str, Any]]] = [
    ("limner/tiny-wan", {"prompt": "a fox", "num_frames": 9, **SIZE}),
    ("limner/tiny-wan-i2v", {"prompt": "a fox", "image": "IMAGE", "num_frames": 9, **SIZE}),
    ("limner/tiny-cogvideox", {"prompt": "a fox", "num_frames": 9, **SIZE}),
    ("limner/tiny-cogvideox-i2v", {"prompt": "a fox", "image": "IMAGE", "num_frames": 9}),
    ("limner/tiny-svd", {"image": "IMAGE", "num_frames": 9, **SIZE}),
    ("limner/tiny-animatediff", {"prompt": "a fox", "num_frames": 8, **SIZE}),
]
STEPS = 4


def first_frame_png() -> bytes:
    ramp = np.tile(np.linspace(0, 255, 96, dtype=np.uint8), (64, 1))
    buffer = io.BytesIO()
    Image.fromarray(np.stack([ramp, ramp[:, ::-1], np.full_like(ramp, 90)], axis=-1)).save(buffer, "PNG")
    return buffer.getvalue()


def request(body: dict[str, Any], seed: int) -> dict[str, Any]:
    uri = "data:image/png;base64," + base64.b64encode(first_frame_png()).decode()
    return {**{k: (uri if v == "IMAGE" else v) for k, v in body.items()}, "num_inference_steps": STEPS, "seed": seed}


def direct_runner(model: str, body: dict[str, Any], models_dir: Path) -> Callable[[int], tuple[float, float]]:
    """Loads the model in this process; the runner makes one video with the given seed (the
    pipeline call and the same MP4 encode) and returns (seconds in all, seconds encoding)."""
    import torch

    from limner.adapters import load_adapter
    from limner.adapters.base import LoadEnv, work_item
    from limner.adapters.video_steps import VideoAdapter
    from limner.catalog import load_catalog
    from limner.catalog.inputs import finalize_input, parse_input
    from limner.media.video import encode_video, to_uint8_frames

    entry = load_catalog().get(model)
    files = {"image": first_frame_png()} if "image" in body else {}
    # Every request here has a size (its own or the entry's default): nothing to derive from the image.
    spec = finalize_input(entry, parse_input(entry, request(body, 0))).model_dump(mode="json")
    adapter = load_adapter(entry.family)
    assert isinstance(adapter, VideoAdapter)
    loaded = adapter.load(entry, LoadEnv(device="cpu", models_dir=models_dir))

    def run(seed: int) -> tuple[float, float]:
        item = work_item(entry.task, "bench", {**spec, "seed": seed}, files)
        started = time.perf_counter()
        with torch.inference_mode():
            frames = loaded.handle(**adapter.call_args(entry, item), **entry.call_args, output_type="np").frames[0]
        encode_started = time.perf_counter()
        encode_video(to_uint8_frames(frames), spec["fps"])
        done = time.perf_counter()
        return done - started, done - encode_started

    return run


def main() -> None:
    import torch

    threads = int(os.environ.get("BENCH_THREADS", "1"))
    torch.set_num_threads(threads)
    n = rounds(5)
    models_dir = Path(tempfile.mkdtemp(prefix="limner-bench-models-"))
    runners = {model: direct_runner(model, body, models_dir) for model, body in MODELS}
    baseline_rss = peak_rss_mb()
    rows: dict[str, dict[str, Any]] = {}
    with live_limner(threads) as live:
        for model, body in MODELS:
            runners[model](0)  # warm up, and
            live.run(model, request(body, 0))  # load (and build) the model in the worker
            direct, encode, walls, inference = [], [], [], []
            # Alternate the two sides, so that both see the same load on a shared machine.
            for seed in range(1, n + 1):
                seconds, encoding = runners[model](seed)
                direct.append(seconds)
                encode.append(encoding)
                wall, result = live.run(model, request(body, seed))
                walls.append(wall)
                inference.append(result["timings"]["inference_s"])
                assert result["videos"][0]["frames"] == body["num_frames"]
            rows[model] = {
                "direct": {"s_per_video": statistics.median(direct), "encode_s": statistics.median(encode)},
                "server": {
                    "s_per_video": statistics.median(walls),
                    "inference_s": statistics.median(inference),
                    "worker_peak_rss_mb_so_far": round(live.worker_peak_rss_mb(), 1),
                },
            }
        worker_rss = live.worker_peak_rss_mb()
    print(f"{'model':28} {'direct s':>9} {'server s':>9} {'ratio':>6} {'encode s':>9} {'worker MB':>10}")
    for model, row in rows.items():
        row["ratio_server_to_direct"] = round(row["server"]["s_per_video"] / row["direct"]["s_per_video"], 3)
        print(
            f"{model:28} {row['direct']['s_per_video']:9.3f} {row['server']['s_per_video']:9.3f} "
            f"{row['ratio_server_to_direct']:6.2f} {row['direct']['encode_s']:9.3f} "
            f"{row['server']['worker_peak_rss_mb_so_far']:10.0f}"
        )
    print(f"peak RSS: worker {worker_rss:.0f} MB (all six models resident); direct process {baseline_rss:.0f} MB")
    path = write_result(
        "video",
        {
            "what": "seconds per video (median) on tiny models, through limner vs the pipeline called in-process",
            "rounds": n,
            "torch_threads": threads,
            "steps": STEPS,
            "models": rows,
            "worker_peak_rss_mb": round(worker_rss, 1),
            "direct_process_peak_rss_mb": round(baseline_rss, 1),
        },
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
