"""Step previews: what one costs against a denoising step, measured in one run.

1. Real-size architectures, random weights, in this process: a Stable Diffusion 1.5 UNet step
   (the SD 1.5 config, classifier-free guidance: a batch of 2) at 256x256 (a 32x32 latent)
   against one preview made the way the product makes it (``PreviewDecoder.images`` with the
   TAESD architecture, AutoencoderTiny's default config, plus the JPEG the sink encodes), and
   against the linear latent-to-RGB map. The cost at one preview per 4 steps is
   preview / (4 x step).
2. Through the server (API + worker) on the tiny SD with a tiny AutoencoderTiny: a job's
   inference time with a preview every 4 steps against the same job without, so everything a
   preview adds (decode, JPEG, storage write, the progress write) is in it. The tiny model's
   step takes about a millisecond, so this ratio is the worst case, not the real one.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/previews.py [--steps 200] [--repeats 5]
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.harness import Server, write_result

MODEL = "bench/preview-sd"
CATALOG = f"""
models:
  - id: {MODEL}
    task: text-to-image
    family: diffusers-image
    source: tiny://sd
    defaults: {{width: 64, height: 64, guidance_scale: 5.0}}
    limits: {{max_steps: 5000}}
    runtime: {{dtype: float32, memory_mb: 64, preview_decoder: "tiny://taesd"}}
"""
EVERY = 4


def timed(fn: Any, repeats: int) -> float:
    """Median seconds of ``fn()`` over ``repeats`` calls, after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def real_size(repeats: int) -> dict[str, Any]:
    import diffusers
    import torch

    from limner.adapters.previews import PreviewDecoder

    torch.manual_seed(0)
    lib: Any = diffusers  # its lazy module hides the model classes' methods from mypy
    unet = lib.UNet2DConditionModel(cross_attention_dim=768, attention_head_dim=8).eval()  # SD 1.5's shape
    taesd = lib.AutoencoderTiny().eval()  # TAESD's architecture (its default config)
    latents = torch.randn(2, 4, 32, 32)
    text = torch.randn(2, 77, 768)
    timestep = torch.tensor(500)

    def step() -> None:
        with torch.inference_mode():
            unet(latents, timestep, encoder_hidden_states=text)

    def preview(decoder: PreviewDecoder) -> Any:
        def make() -> None:
            pictures = decoder.images(None, latents[:1], (256, 256))
            assert pictures is not None
            pictures[0].save(io.BytesIO(), format="JPEG", quality=80)

        return make

    step_s = timed(step, max(2, repeats // 2))
    taesd_s = timed(preview(PreviewDecoder(tiny=taesd)), repeats * 4)
    linear_s = timed(preview(PreviewDecoder(tiny=None)), repeats * 4)
    return {
        "unet_params_m": round(sum(p.numel() for p in unet.parameters()) / 1e6, 1),
        "taesd_params_m": round(sum(p.numel() for p in taesd.parameters()) / 1e6, 2),
        "resolution": 256,
        "step_s": round(step_s, 4),
        "taesd_preview_s": round(taesd_s, 4),
        "linear_preview_s": round(linear_s, 5),
        "taesd_cost_at_1_per_4_steps": round(taesd_s / (EVERY * step_s), 4),
        "linear_cost_at_1_per_4_steps": round(linear_s / (EVERY * step_s), 5),
    }


def through_server(steps: int, repeats: int) -> dict[str, Any]:
    catalog = Path(tempfile.mkdtemp(prefix="limner-bench-previews-")) / "catalog.yaml"
    catalog.write_text(CATALOG)
    with (
        Server(workers=1, env={"LIMNER_THREADS": "1"}, args=["--catalog", str(catalog)]) as server,
        httpx.Client(base_url=server.base, timeout=120) as http,
    ):
        server.wait_ready()

        def inference_s(preview: bool, seed: int) -> float:
            body = {"prompt": "a lighthouse", "seed": seed, "num_inference_steps": steps, "preview": preview}
            out = http.post(f"/v1/run/{MODEL}", json=body, headers={"X-Limner-Cache": "off"})
            assert out.status_code == 200, out.text
            return float(out.json()["timings"]["inference_s"])

        inference_s(True, 0)  # load the model and the preview decoder
        plain, with_previews = [], []
        for seed in range(1, repeats + 1):  # interleaved, so drift in the machine's load hits both
            plain.append(inference_s(False, seed))
            with_previews.append(inference_s(True, seed))
    base, previewed = statistics.median(plain), statistics.median(with_previews)
    return {
        "steps": steps,
        "previews_per_job": (steps - 1) // EVERY,
        "step_ms": round(1000 * base / steps, 3),
        "inference_s_without": round(base, 4),
        "inference_s_with": round(previewed, 4),
        "overhead_ratio": round(previewed / base - 1, 4),
        "ms_per_preview": round(1000 * (previewed - base) / ((steps - 1) // EVERY), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    real = real_size(args.repeats)
    print(
        f"real-size SD 1.5 UNet step at 256 px: {real['step_s']:.3f} s; "
        f"TAESD preview {real['taesd_preview_s'] * 1000:.1f} ms "
        f"-> {100 * real['taesd_cost_at_1_per_4_steps']:.2f}% at 1 preview / 4 steps; linear map "
        f"{real['linear_preview_s'] * 1000:.2f} ms -> {100 * real['linear_cost_at_1_per_4_steps']:.3f}%"
    )
    served = through_server(args.steps, args.repeats)
    print(
        f"tiny SD through the server ({served['step_ms']:.2f} ms a step): {served['inference_s_without']:.3f} s "
        f"without previews, {served['inference_s_with']:.3f} s with one every 4 steps "
        f"(+{100 * served['overhead_ratio']:.1f}%, {served['ms_per_preview']:.2f} ms a preview)"
    )
    write_result("previews", {"real_size": real, "tiny_through_server": served, "every": EVERY})


if __name__ == "__main__":
    main()
