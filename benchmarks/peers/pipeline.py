"""The one text-to-image call every peer makes: the same tiny://sd build (made by the driver with
``limner.tiny.build_tiny("sd", dir)``), loaded through ``DiffusionPipeline.from_pretrained`` as
limner's diffusers-image adapter loads it, called with one seeded generator per image, and each
image encoded as a PNG with Pillow's defaults, as ``limner.media.images.encode_image`` does.

No limner import here: the peers run in their own venv.
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping, Sequence
from typing import Any

from PIL import Image


def load(model_dir: str) -> Any:
    """The pipeline, on CPU, float32, safetensors only; one torch thread per process unless
    PEER_THREADS says otherwise (limner's workers get cores // workers, i.e. 1 here)."""
    import diffusers
    import torch

    torch.set_num_threads(int(os.environ.get("PEER_THREADS", "1")))
    pipeline_class: Any = diffusers.DiffusionPipeline  # untyped library
    pipe: Any = pipeline_class.from_pretrained(model_dir, dtype=torch.float32, use_safetensors=True)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def generate(pipe: Any, jobs: Sequence[Mapping[str, Any]]) -> list[Image.Image]:
    """One forward pass over ``jobs`` (which share size, steps and guidance): an image each."""
    import torch

    first = jobs[0]
    with torch.inference_mode():
        result = pipe(
            prompt=[str(job["prompt"]) for job in jobs],
            num_inference_steps=int(first["num_inference_steps"]),
            guidance_scale=float(first.get("guidance_scale", 5.0)),
            num_images_per_prompt=1,
            output_type="pil",
            generator=[torch.Generator(device="cpu").manual_seed(int(job["seed"])) for job in jobs],
            width=int(first["width"]),
            height=int(first["height"]),
        )
    return list(result.images)


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()
