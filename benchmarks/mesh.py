"""3D on the tiny Shap-E models: seconds per mesh (GLB + PLY + turntable MP4) through limner
against the same steps called directly in this process, the worker's peak memory, and two
figures behind design choices: marching-cubes time by mesh_resolution, and the numpy turntable
against Shap-E's own NeRF renderer for the same 20-frame, 64 px preview.

The two sides alternate call by call, so both see the same load on a shared machine.

    .venv/bin/python benchmarks/mesh.py         # BENCH_ROUNDS=5, BENCH_THREADS=1 by default
"""

from __future__ import annotations

import base64
import functools
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

STEPS = 4
BASE = {"num_inference_steps": STEPS, "mesh_resolution": 32, "preview_frames": 12, "preview_size": 64}
MODELS: list[tuple[str, dict[str, Any]]] = [
    ("limner/tiny-shap-e", {"prompt": "a teapot", **BASE}),
    ("limner/tiny-shap-e-img2img", {"image": "IMAGE", **BASE}),
]


def picture() -> bytes:
    ramp = np.tile(np.linspace(0, 255, 64, dtype=np.uint8), (64, 1))
    buffer = io.BytesIO()
    Image.fromarray(np.stack([ramp, ramp.T, 255 - ramp], axis=-1)).save(buffer, "PNG")
    return buffer.getvalue()


def request(body: dict[str, Any], seed: int) -> dict[str, Any]:
    uri = "data:image/png;base64," + base64.b64encode(picture()).decode()
    return {**{k: (uri if v == "IMAGE" else v) for k, v in body.items()}, "seed": seed}


def median_time(fn: Callable[[], Any], n: int) -> float:
    times = []
    for _ in range(n):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


class Direct:
    """The family's steps called in this process: latents, mesh, GLB + PLY, turntable MP4."""

    def __init__(self, model: str, body: dict[str, Any], models_dir: Path) -> None:
        from limner.adapters import load_adapter
        from limner.adapters.base import LoadEnv
        from limner.catalog import load_catalog
        from limner.catalog.inputs import finalize_input, parse_input
        from limner.media.images import open_image
        from limner.tasks.mesh import ImageTo3DInput, TextTo3DInput

        self.entry = load_catalog().get(model)
        spec = finalize_input(self.entry, parse_input(self.entry, request(body, 0)))
        assert isinstance(spec, TextTo3DInput | ImageTo3DInput)
        self.spec = spec
        self.pipe = load_adapter(self.entry.family).load(self.entry, LoadEnv("cpu", models_dir)).handle
        self.kwargs: dict[str, Any] = {"num_inference_steps": STEPS, "guidance_scale": spec.guidance_scale}
        if isinstance(spec, ImageTo3DInput):
            self.kwargs["image"] = open_image(picture())
        else:
            self.kwargs["prompt"] = spec.prompt

    def latents(self, seed: int) -> Any:
        import torch

        with torch.inference_mode():
            generator = torch.Generator().manual_seed(seed)
            return self.pipe(**self.kwargs, generator=generator, output_type="latent").images

    def run(self, seed: int) -> float:
        from limner.adapters import shap_e as family

        started = time.perf_counter()
        mesh = family.decode(self.pipe, self.entry, self.latents(seed), self.spec.mesh_resolution, "cpu")
        family.encode(mesh, self.spec)
        return time.perf_counter() - started

    def design_figures(self, n: int) -> dict[str, Any]:
        """Marching cubes by resolution; our turntable against Shap-E's renderer (20 views, 64 px)."""
        import torch

        from limner.adapters import shap_e as family
        from limner.media.mesh import render_turntable
        from limner.media.video import encode_video

        latents = self.latents(0)
        by_resolution = {
            str(res): round(
                median_time(functools.partial(family.decode, self.pipe, self.entry, latents, res, "cpu"), n), 4
            )
            for res in (32, 64, 128)
        }
        mesh = family.decode(self.pipe, self.entry, latents, 64, "cpu")
        ours = median_time(lambda: encode_video(render_turntable(mesh, 20, 64), 12), n)

        def nerf() -> None:
            with torch.inference_mode():
                views = self.pipe.shap_e_renderer.decode_to_image(latents[0][None], "cpu", size=64)
            encode_video(views.cpu().numpy(), 12)

        theirs = median_time(nerf, 1)  # minutes on a CPU: one sample tells the order of magnitude
        return {
            "decode_s_by_mesh_resolution": by_resolution,
            "preview_20x64px_s": {"numpy_turntable": round(ours, 4), "shap_e_nerf_renderer": round(theirs, 4)},
        }


def main() -> None:
    import torch

    threads = int(os.environ.get("BENCH_THREADS", "1"))
    torch.set_num_threads(threads)
    n = rounds(5)
    models_dir = Path(tempfile.mkdtemp(prefix="limner-bench-models-"))
    directs = {model: Direct(model, body, models_dir) for model, body in MODELS}
    rows: dict[str, dict[str, Any]] = {}
    with live_limner(threads) as live:
        for model, body in MODELS:
            directs[model].run(0)  # warm up, and
            live.run(model, request(body, 0))  # load (and build) the model in the worker
            direct, walls = [], []
            for seed in range(1, n + 1):  # alternate, so both sides see the same machine load
                direct.append(directs[model].run(seed))
                wall, result = live.run(model, request(body, seed))
                walls.append(wall)
                assert result["meshes"][0]["faces"] > 0
            rows[model] = {
                "direct": {"s_per_mesh": statistics.median(direct)},
                "server": {"s_per_mesh": statistics.median(walls)},
            }
        worker_rss = live.worker_peak_rss_mb()
    baseline_rss = peak_rss_mb()  # before the design figures: Shap-E's renderer is memory-hungry
    figures = directs[MODELS[0][0]].design_figures(n)
    print(f"{'model':28} {'direct s':>9} {'server s':>9} {'ratio':>6}")
    for model, row in rows.items():
        row["ratio_server_to_direct"] = round(row["server"]["s_per_mesh"] / row["direct"]["s_per_mesh"], 3)
        print(
            f"{model:28} {row['direct']['s_per_mesh']:9.3f} {row['server']['s_per_mesh']:9.3f} "
            f"{row['ratio_server_to_direct']:6.2f}"
        )
    print("marching cubes by mesh_resolution (s):", figures["decode_s_by_mesh_resolution"])
    preview = figures["preview_20x64px_s"]
    print(
        f"20-frame 64 px preview: numpy turntable {preview['numpy_turntable']:.3f} s, "
        f"Shap-E NeRF renderer {preview['shap_e_nerf_renderer']:.3f} s "
        f"({preview['shap_e_nerf_renderer'] / preview['numpy_turntable']:.0f}x)"
    )
    print(f"peak RSS: worker {worker_rss:.0f} MB; direct process {baseline_rss:.0f} MB")
    path = write_result(
        "mesh",
        {
            "what": "seconds per mesh (median; GLB + PLY + 12-frame turntable) on tiny Shap-E, limner vs in-process",
            "rounds": n,
            "torch_threads": threads,
            "request": BASE,
            "models": rows,
            **figures,
            "worker_peak_rss_mb": round(worker_rss, 1),
            "direct_process_peak_rss_mb": round(baseline_rss, 1),
        },
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
