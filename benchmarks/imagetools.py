"""Image tools: Real-ESRGAN upscaling with and without tiles, and person segmentation.

Upscaling: the same photograph (matplotlib's Grace Hopper portrait, downscaled) through the
realesrgan-ncnn adapter, in one pass and in tiles (16-pixel overlap), each configuration in
its own process so that its peak RSS is its own. The configurations alternate over ``--rounds``
and the fastest run of each counts (the machine is shared: the minimum is the least disturbed
figure). Reported: wall and CPU seconds per output megapixel (CPU time is less disturbed by
other processes on a shared machine), peak RSS, and the tiled/untiled ratios.

Segmentation: seconds per image for MediaPipe's selfie model through the adapter (decode,
model, PNG encoding of cutout and mask), against the bare model call in the same run.

    .venv/bin/python benchmarks/imagetools.py [--repeat 2] [--rounds 2]
"""

from __future__ import annotations

import argparse
import io
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import matplotlib.cbook
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.harness import QuietContext

RESULTS = Path(__file__).parent / "results" / "imagetools.json"
UPSCALE_RUNS = [
    # (model id, input width, input height, tile size); tile 0 = the whole image at once
    ("xinntao/realesrgan-x4plus", 192, 225, 0),
    ("xinntao/realesrgan-x4plus", 192, 225, 128),
    ("xinntao/realesr-animevideov3", 512, 600, 0),
    ("xinntao/realesr-animevideov3", 512, 600, 256),
    ("xinntao/realesr-animevideov3", 512, 600, 128),
]


def photo(width: int, height: int) -> bytes:
    path = matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    with Image.open(path) as image:
        buffer = io.BytesIO()
        image.convert("RGB").resize((width, height), Image.Resampling.BICUBIC).save(buffer, "PNG")
        return buffer.getvalue()


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def child_upscale(model_id: str, width: int, height: int, tile: int, repeat: int) -> dict[str, Any]:
    """One configuration, in this (fresh) process."""
    from limner.adapters import load_adapter
    from limner.adapters.base import LoadEnv, work_item
    from limner.catalog import load_catalog

    entry = load_catalog().get(model_id)
    adapter = load_adapter(entry.family)
    loaded = adapter.load(entry, LoadEnv(device="cpu", models_dir=Path("/tmp")))
    rss_loaded = peak_rss_mb()
    # The image field holds what the API stores (a reference); the adapter reads the bytes.
    spec = {"image": "storage://bench.png", "scale": 4, "tile_size": tile, "tile_overlap": 16, "output_format": "png"}
    item = work_item(entry.task, "bench", spec, {"image": photo(width, height)})
    times, cpu = [], []
    for _ in range(repeat):
        started, cpu_started = time.perf_counter(), cpu_seconds()
        adapter.run(loaded, entry, [item], QuietContext())
        times.append(time.perf_counter() - started)
        cpu.append(cpu_seconds() - cpu_started)
    output_mp = width * height * 16 / 1e6
    return {
        "model": model_id,
        "input": f"{width}x{height}",
        "tile_size": tile,
        "seconds": round(min(times), 3),
        "seconds_per_output_megapixel": round(min(times) / output_mp, 3),
        "cpu_seconds": round(min(cpu), 3),
        "cpu_seconds_per_output_megapixel": round(min(cpu) / output_mp, 3),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "rss_after_load_mb": round(rss_loaded, 1),
    }


def segmentation(repeat: int) -> dict[str, Any]:
    import mediapipe as mp
    import numpy as np

    from limner.adapters import load_adapter
    from limner.adapters.base import LoadEnv, work_item
    from limner.catalog import load_catalog

    data = photo(512, 600)
    entry = load_catalog().get("google/mediapipe-selfie-background-removal")
    adapter = load_adapter(entry.family)
    loaded = adapter.load(entry, LoadEnv(device="cpu", models_dir=Path("/tmp")))
    item = work_item(entry.task, "bench", {"image": "storage://bench.png", "output_format": "png"}, {"image": data})
    adapter.run(loaded, entry, [item], QuietContext())  # warm-up
    through_adapter = []
    for _ in range(repeat):
        started = time.perf_counter()
        adapter.run(loaded, entry, [item], QuietContext())
        through_adapter.append(time.perf_counter() - started)
    pixels = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    bare = []
    with mp.solutions.selfie_segmentation.SelfieSegmentation(model_selection=1) as model:
        model.process(pixels)
        for _ in range(repeat):
            started = time.perf_counter()
            model.process(pixels)
            bare.append(time.perf_counter() - started)
    adapter_s, bare_s = statistics.median(through_adapter), statistics.median(bare)
    return {
        "model": entry.id,
        "input": "512x600",
        "seconds_per_image": round(adapter_s, 4),
        "bare_model_seconds_per_image": round(bare_s, 4),
        "adapter_over_bare": round(adapter_s / bare_s, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=1, help="runs per process")
    parser.add_argument("--rounds", type=int, default=2, help="processes per configuration, alternating")
    parser.add_argument("--child", nargs=4, metavar=("MODEL", "WIDTH", "HEIGHT", "TILE"))
    args = parser.parse_args()
    if args.child:
        model_id, width, height, tile = args.child
        print(json.dumps(child_upscale(model_id, int(width), int(height), int(tile), args.repeat)))
        return
    runs: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for _ in range(args.rounds):
        for model_id, width, height, tile in UPSCALE_RUNS:
            argv = [sys.executable, __file__, "--repeat", str(args.repeat), "--child", model_id, str(width)]
            out = subprocess.run([*argv, str(height), str(tile)], capture_output=True, text=True, check=True)
            runs.setdefault((model_id, tile), []).append(json.loads(out.stdout.strip().splitlines()[-1]))
    upscale = []
    for (_model, tile), tries in runs.items():
        run = min(tries, key=lambda r: r["seconds"])
        run["cpu_seconds"] = min(r["cpu_seconds"] for r in tries)
        run["cpu_seconds_per_output_megapixel"] = min(r["cpu_seconds_per_output_megapixel"] for r in tries)
        run["peak_rss_mb"] = max(r["peak_rss_mb"] for r in tries)
        upscale.append(run)
        print(
            f"upscale {run['model']:<30} {run['input']:>8} tile {tile:>4}: {run['seconds']:7.2f} s, "
            f"{run['seconds_per_output_megapixel']:6.3f} s/output MP "
            f"(CPU {run['cpu_seconds_per_output_megapixel']:6.3f}), "
            f"peak RSS {run['peak_rss_mb']:7.1f} MB"
        )
    ratios: dict[str, dict[str, float]] = {}
    for run in upscale:
        whole = next(r for r in upscale if r["model"] == run["model"] and r["tile_size"] == 0)
        if run is whole:
            continue
        key = f"{run['model']} tile {run['tile_size']}"
        ratios[key] = {
            "tiled_over_whole_wall": round(run["seconds"] / whole["seconds"], 2),
            "tiled_over_whole_cpu": round(run["cpu_seconds"] / whole["cpu_seconds"], 2),
            "tiled_over_whole_peak_rss": round(run["peak_rss_mb"] / whole["peak_rss_mb"], 2),
        }
        print(
            f"  {key}: tiled/whole wall x{ratios[key]['tiled_over_whole_wall']}, "
            f"CPU x{ratios[key]['tiled_over_whole_cpu']}, peak RSS x{ratios[key]['tiled_over_whole_peak_rss']}"
        )
    seg = segmentation(max(10, args.repeat * 5))
    print(
        f"segmentation {seg['model']}: {seg['seconds_per_image'] * 1000:.1f} ms/image through the adapter "
        f"(bare model {seg['bare_model_seconds_per_image'] * 1000:.1f} ms, x{seg['adapter_over_bare']})"
    )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "upscale": upscale,
        "upscale_ratios": ratios,
        "segmentation": seg,
        "repeat": args.repeat,
        "rounds": args.rounds,
    }
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
