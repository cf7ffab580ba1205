"""3D on the tiny Shap-E models: seconds per mesh (GLB + PLY + turntable MP4) through limner
against the same steps called directly in this process, the worker's peak memory, and two
figures behind design choices: marching-cubes time by mesh_resolution, and the numpy turntable
against Shap-E's own NeRF renderer for the same 20-frame, 64 px preview.

    .venv/bin/python benchmarks/mesh.py         # BENCH_ROUNDS=5, BENCH_THREADS=1 by default
"""

from __future__ import annotations

import base64
import io
import os
import statistics
import sys
import tempfile
import time
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


def timed(fn: Any, n: int) -> float:
    fn()  # warm up
    times = []
    for _ in range(n):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def direct(model: str, body: dict[str, Any], n: int, models_dir: Path) -> dict[str, Any]:
    """The family's steps called in this process: latents, mesh, files, turntable."""
    import torch

    from limner.adapters import load_adapter
    from limner.adapters import shap_e as family
    from limner.adapters.base import LoadEnv
    from limner.catalog import load_catalog
    from limner.catalog.inputs import finalize_input, parse_input
    from limner.media.mesh import render_turntable
    from limner.media.video import encode_video

    entry = load_catalog().get(model)
    spec = finalize_input(entry, parse_input(entry, request(body, 0))).model_dump()
    files = {"image": picture()} if "image" in body else {}
    loaded = load_adapter(entry.family).load(entry, LoadEnv(device="cpu", models_dir=models_dir))
    pipe = loaded.handle
    kwargs: dict[str, Any] = {"num_inference_steps": STEPS, "guidance_scale": spec["guidance_scale"]}
    if files:
        from limner.media.images import open_image

        kwargs["image"] = open_image(files["image"])
    else:
        kwargs["prompt"] = spec["prompt"]

    def latents() -> Any:
        with torch.inference_mode():
            return pipe(**kwargs, generator=torch.Generator().manual_seed(0), output_type="latent").images

    def whole() -> None:
        mesh = family.decode(pipe, entry, latents(), spec["mesh_resolution"], "cpu")
        family.encode(mesh, spec)

    row: dict[str, Any] = {"s_per_mesh": timed(whole, n)}
    if model == MODELS[0][0]:  # the design figures, once
        item_latents = latents()
        row["decode_s_by_mesh_resolution"] = {
            str(res): round(timed(lambda r=res: family.decode(pipe, entry, item_latents, r, "cpu"), n), 4)
            for res in (32, 64, 128)
        }
        mesh = family.decode(pipe, entry, item_latents, 64, "cpu")
        ours = timed(lambda: encode_video(render_turntable(mesh, 20, 64), 12), n)

        def shap_e_renderer() -> None:
            with torch.inference_mode():
                views = pipe.shap_e_renderer.decode_to_image(item_latents[0][None], "cpu", size=64, ray_batch_size=4096)
            encode_video(views.cpu().numpy(), 12)

        theirs = timed(shap_e_renderer, max(1, n // 2))
        row["preview_20x64px_s"] = {"numpy_turntable": round(ours, 4), "shap_e_nerf_renderer": round(theirs, 4)}
    return row


def main() -> None:
    import torch

    threads = int(os.environ.get("BENCH_THREADS", "1"))
    torch.set_num_threads(threads)
    n = rounds(5)
    models_dir = Path(tempfile.mkdtemp(prefix="limner-bench-models-"))
    rows = {model: {"direct": direct(model, body, n, models_dir)} for model, body in MODELS}
    baseline_rss = peak_rss_mb()
    with live_limner(threads) as live:
        for model, body in MODELS:
            live.run(model, request(body, 0))
            walls = []
            for index in range(1, n + 1):
                wall, result = live.run(model, request(body, index))
                walls.append(wall)
                assert result["meshes"][0]["faces"] > 0
            rows[model]["server"] = {"s_per_mesh": statistics.median(walls)}
        worker_rss = live.worker_peak_rss_mb()
    print(f"{'model':28} {'direct s':>9} {'server s':>9} {'ratio':>6}")
    for model, row in rows.items():
        row["ratio_server_to_direct"] = round(row["server"]["s_per_mesh"] / row["direct"]["s_per_mesh"], 3)
        print(
            f"{model:28} {row['direct']['s_per_mesh']:9.3f} {row['server']['s_per_mesh']:9.3f} "
            f"{row['ratio_server_to_direct']:6.2f}"
        )
    first = rows[MODELS[0][0]]["direct"]
    print("marching cubes by mesh_resolution (s):", first["decode_s_by_mesh_resolution"])
    preview = first["preview_20x64px_s"]
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
            "worker_peak_rss_mb": round(worker_rss, 1),
            "direct_process_peak_rss_mb": round(baseline_rss, 1),
        },
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
