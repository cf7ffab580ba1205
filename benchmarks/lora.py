"""LoRA training and LoRAs at inference on the tiny SD, all measured in one run:

1. training through the server (API + worker): the loss over the first 10% of steps against
   the last 10%;
2. an image of the training subject made with the LoRA against without (same seed): its
   distance to the training image must fall;
3. training steps/s through the worker against a plain peft loop in one process on the same
   tiny model (same rank, optimizer, resolution), timed over the same window of steps;
4. a LoRA swap between requests (load another LoRA's weights and make it active, on a resident
   pipeline) against a full load of the base pipeline from disk.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/lora.py [--steps 200]
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import io
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.harness import Server, write_result

TRAIN = "limner/train-lora-tiny-sd"
TINY = Path("/tmp/limner-bench-tiny-sd")
SD = "limner/tiny-sd"
RANK, LR, SIZE = 8, 1e-2, 64


def subject() -> Image.Image:
    """The training subject: a cat's face from scikit-image's bundled data (read from the
    installed wheel's files; scikit-image itself is installed without its dependencies)."""
    spec = importlib.util.find_spec("skimage")
    assert spec is not None and spec.submodule_search_locations
    with Image.open(Path(next(iter(spec.submodule_search_locations))) / "data" / "chelsea.png") as image:
        return image.convert("RGB").resize((SIZE, SIZE), Image.Resampling.LANCZOS)


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def through_server(steps: int) -> dict[str, Any]:
    with (
        Server(workers=1, env={"LIMNER_THREADS": "1"}) as server,
        httpx.Client(base_url=server.base, timeout=60) as http,
    ):
        server.wait_ready()
        image = http.post("/v1/files", content=png(subject())).json()["url"]
        body = {"images": [image], "trigger_word": "zxq", "steps": steps, "rank": RANK, "learning_rate": LR,
                "resolution": SIZE, "checkpoint_every": steps, "seed": 1}  # fmt: skip
        handle = http.post(f"/v1/queue/{TRAIN}", json=body).json()
        marks: list[tuple[float, int]] = []
        while True:
            status = http.get(handle["status_url"]).json()
            progress = status["progress"]
            if progress["stage"] == "training" and progress["step"]:
                marks.append((time.monotonic(), progress["step"]))
            if status["status"] == "COMPLETED":
                break
            time.sleep(0.05)
        out = http.get(handle["response_url"]).json()
        window = [m for m in marks if m[1] >= steps // 10]
        rate = (window[-1][1] - window[0][1]) / (window[-1][0] - window[0][0])
        curve = [p["loss"] for p in out["loss_curve"]]
        tenth = max(1, len(curve) // 10)
        prompt = {"prompt": "a photo of zxq", "seed": 5}
        target = np.asarray(subject(), dtype=float)
        distances = {}
        for name, extra in (("without", {}), ("with", {"loras": [{"path": out["lora"]["id"], "scale": 1.0}]})):
            made = http.post(f"/v1/run/{SD}", json={**prompt, **extra}).json()
            drawn = Image.open(io.BytesIO(http.get(made["images"][0]["url"]).content)).convert("RGB")
            distances[name] = float(np.abs(np.asarray(drawn, dtype=float) - target).mean())
        latent = latent_distances(http.get(out["lora"]["url"]).content)
        return {
            **latent,
            "steps": steps,
            "loss_first_10pct": statistics.fmean(curve[:tenth]),
            "loss_last_10pct": statistics.fmean(curve[-tenth:]),
            "distance_without_lora": distances["without"],
            "distance_with_lora": distances["with"],
            "worker_steps_per_s": rate,
            "lora_bytes": out["lora"]["file_size"],
        }


def latent_distances(lora: bytes, seeds: int = 4) -> dict[str, float]:
    """The subject's distance in the model's latent space, with and without the LoRA: the
    tiny VAE has random weights (only the UNet is trained), so its pixels cannot show a cat,
    but the latents the UNet denoises to can move toward the training image's."""
    import hashlib

    import torch

    from limner.adapters.lora_slots import LoraSlots
    from limner.tasks.image import LoraWeight

    diffusers: Any = importlib.import_module("diffusers")
    pipe = diffusers.DiffusionPipeline.from_pretrained(str(TINY), use_safetensors=True)
    pipe.set_progress_bar_config(disable=True)
    pixels = torch.from_numpy(np.asarray(subject(), dtype=np.float32) / 127.5 - 1).permute(2, 0, 1)[None]
    with torch.no_grad():
        target = (pipe.vae.encode(pixels).latent_dist.mean * pipe.vae.config.scaling_factor).numpy()

    def distance() -> float:
        found = []
        for seed in range(seeds):
            with torch.no_grad():
                made = pipe("a photo of zxq", num_inference_steps=20, guidance_scale=5.0, width=SIZE, height=SIZE,
                            output_type="latent", generator=torch.Generator().manual_seed(seed)).images  # fmt: skip
            found.append(float(np.abs(made.numpy() - target).mean()))
        return statistics.fmean(found)

    class Owner:
        size_bytes = 0

    without = distance()
    sha = hashlib.sha256(lora).hexdigest()
    LoraSlots(pipe, 0, 1).apply([LoraWeight(path="x", sha256=sha, file="storage://x")], {f"lora:{sha}": lora}, Owner())
    return {"latent_distance_without_lora": without, "latent_distance_with_lora": distance()}


def plain_peft_loop(steps: int, folder: Path) -> float:
    """The baseline: the same tiny pipeline, a peft LoRA on its UNet, AdamW, one process."""
    import torch
    import torch.nn.functional as F
    from peft import LoraConfig

    diffusers: Any = importlib.import_module("diffusers")  # untyped: keep mypy's strictness for ours

    torch.set_num_threads(1)
    pipe = diffusers.StableDiffusionPipeline.from_pretrained(str(folder), use_safetensors=True)
    unet, vae = pipe.unet, pipe.vae
    for part in (unet, vae, pipe.text_encoder):
        part.requires_grad_(False)
    targets = ["to_k", "to_q", "to_v", "to_out.0", "add_k_proj", "add_v_proj"]
    unet.add_adapter(LoraConfig(r=RANK, lora_alpha=RANK, init_lora_weights="gaussian", target_modules=targets))
    params = [p for p in unet.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=LR, weight_decay=1e-4)
    scheduler = diffusers.DDPMScheduler.from_config(pipe.scheduler.config)
    pixels = torch.from_numpy(np.asarray(subject(), dtype=np.float32) / 127.5 - 1).permute(2, 0, 1)[None]
    with torch.no_grad():
        dist = vae.encode(pixels).latent_dist
        hidden, _ = pipe.encode_prompt("a photo of zxq", "cpu", 1, False)
    unet.train()
    marks = []
    for step in range(1, steps + 1):
        latents = dist.sample() * vae.config.scaling_factor
        noise = torch.randn_like(latents)
        t = torch.randint(0, scheduler.config.num_train_timesteps, (1,))
        pred = unet(scheduler.add_noise(latents, noise, t), t, hidden).sample
        loss = F.mse_loss(pred.float(), noise.float())
        loss.backward()  # type: ignore[no-untyped-call]
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        marks.append((time.monotonic(), step))
    window = [m for m in marks if m[1] >= steps // 10]
    return (window[-1][1] - window[0][1]) / (window[-1][0] - window[0][0])


def swap_vs_load(folder: Path, lora_files: list[bytes], rounds: int = 5) -> dict[str, float]:
    import hashlib

    import torch

    diffusers: Any = importlib.import_module("diffusers")
    from limner.adapters.lora_slots import LoraSlots
    from limner.tasks.image import LoraWeight

    torch.set_num_threads(1)
    loads = []
    for _ in range(rounds):
        started = time.perf_counter()
        pipe = diffusers.DiffusionPipeline.from_pretrained(str(folder), use_safetensors=True)
        loads.append(time.perf_counter() - started)

    class Owner:
        size_bytes = 0

    files = {f"lora:{hashlib.sha256(d).hexdigest()}": d for d in lora_files}
    weights = [LoraWeight(path="x", sha256=key.split(":")[1], file="storage://x") for key in files]

    def swaps(slots: LoraSlots) -> float:
        slots.apply([weights[0]], files, Owner())  # warm: the first load is not a swap
        times = []
        for index in range(1, rounds * 2 + 1):
            started = time.perf_counter()
            slots.apply([weights[index % len(weights)]], files, Owner())
            times.append(time.perf_counter() - started)
        return statistics.median(times)

    # cold: one LoRA kept, so each swap loads the other from its bytes (peft injects its layers);
    # resident: both kept (LRU), so a swap only switches the active adapter;
    # hotswap: fixed slots, new weights copied into the loaded layers (compiled pipelines).
    cold = swaps(LoraSlots(pipe, 0, max_loaded=1))
    pipe = diffusers.DiffusionPipeline.from_pretrained(str(folder), use_safetensors=True)
    resident = swaps(LoraSlots(pipe, 0, max_loaded=2))
    pipe = diffusers.DiffusionPipeline.from_pretrained(str(folder), use_safetensors=True)
    hot = swaps(LoraSlots(pipe, 0, max_loaded=1, hotswap_rank=RANK))
    return {
        "base_load_s": statistics.median(loads),
        "lora_swap_cold_s": cold,
        "lora_swap_resident_s": resident,
        "lora_swap_hotswap_s": hot,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=300)
    args = parser.parse_args()
    from limner.tiny import build_tiny

    folder = TINY
    build_tiny("sd", folder)
    served = through_server(args.steps)
    baseline = plain_peft_loop(args.steps, folder)
    loras = [_lora_file(folder, seed) for seed in (1, 2)]
    swap = swap_vs_load(folder, loras)
    payload = {
        **served,
        "plain_loop_steps_per_s": baseline,
        "worker_vs_plain": served["worker_steps_per_s"] / baseline,
        **swap,
        "cold_swap_vs_load": swap["lora_swap_cold_s"] / swap["base_load_s"],
        "resident_swap_vs_load": swap["lora_swap_resident_s"] / swap["base_load_s"],
        "hotswap_vs_load": swap["lora_swap_hotswap_s"] / swap["base_load_s"],
    }
    for key, value in payload.items():
        print(f"{key:28} {value:.4g}" if isinstance(value, float) else f"{key:28} {value}")
    print("wrote", write_result("lora", payload))


def _lora_file(folder: Path, seed: int) -> bytes:
    """A LoRA for the swap timing: the trainer's own run, in process (no server)."""
    from benchmarks.harness import QuietContext
    from limner.adapters.base import LoadEnv, work_item
    from limner.adapters.lora_trainer import make_adapter
    from limner.catalog import load_catalog

    entry = load_catalog(()).get(TRAIN)
    entry = entry.model_copy(update={"source": f"file://{folder}"})
    adapter = make_adapter()
    model = adapter.load(entry, LoadEnv(device="cpu", models_dir=folder.parent))
    fields = {"images": [{"url": "storage://x/a.png"}], "steps": 10, "rank": RANK, "resolution": SIZE, "seed": seed}
    item = work_item("lora-training", f"bench-{seed}", fields, {"images.0": png(subject())})
    return adapter.run(model, entry, [item], QuietContext())[0].files["lora"][0].data


if __name__ == "__main__":
    main()
