"""Family ``birefnet``: general (not only people) background removal with BiRefNet.

ZhengPeng7/BiRefNet is not a transformers architecture: its repository ships its own Python
code, which ``AutoModelForImageSegmentation.from_pretrained(..., trust_remote_code=True)``
downloads and runs. limner never does that silently: an entry must say
``runtime.trust_remote_code: true`` (shown in /v1/models) for the code to be loaded, and an
entry without it fails to load with a message saying so. Pin ``revision`` to the commit whose
code you read.

The model finds the salient object by itself, so prompts are refused (Family.unsupported_fields).

Steps: 1. load (the explicit opt-in, then resolve the source, from_pretrained, place)
       2. check (prompts are refused at submit: the family declares them)  3. prepare (the
       image's bytes)  4. call (one image: resize to the model's square input, ImageNet
       normalisation, forward)  5. encode (cutout and soft mask, or a binary mask)
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from transformers import AutoModelForImageSegmentation

from limner.adapters.base import LoadedModel, LoadEnv
from limner.adapters.loading import module_bytes, quiet_runtimes, release, resolve_dtype, resolve_source
from limner.adapters.mask_steps import OneMaskAdapter
from limner.catalog.entry import CatalogEntry
from limner.errors import ModelUnavailable

INPUT_SIZE = 1024  # the released BiRefNet checkpoints' training resolution
IMAGENET_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
IMAGENET_STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


class BiRefNetAdapter(OneMaskAdapter):
    # -- 1. load ---------------------------------------------------------------------------

    def load(self, entry: CatalogEntry, env: LoadEnv) -> LoadedModel:
        if not entry.runtime.trust_remote_code:
            raise ModelUnavailable(
                f"{entry.id} runs Python code from its model repository ({entry.source}); limner loads it only "
                "when the catalog entry sets runtime.trust_remote_code: true. Read that code at a fixed revision, "
                "then override the entry with --catalog (same id, runtime.trust_remote_code: true, revision: <commit>)."
            )
        path, revision = resolve_source(entry, env, marker="config.json")
        dtype = resolve_dtype(entry.runtime.dtype, env.device)
        try:
            model = AutoModelForImageSegmentation.from_pretrained(
                str(path), trust_remote_code=True, dtype=dtype, use_safetensors=True
            )
        except (OSError, ValueError, ImportError) as exc:
            raise ModelUnavailable(f"cannot load {entry.id} from {path}: {exc}") from exc
        model = model.to(env.device).eval()
        return LoadedModel(handle=(model, dtype), revision=revision, size_bytes=module_bytes(model), device=env.device)

    def unload(self, model: LoadedModel) -> None:
        model.handle = None
        release(model.device)

    # -- 4. call (3. prepare and 5. encode: mask_steps.OneMaskAdapter) ------------------------

    def foreground(self, model: LoadedModel, image: Image.Image) -> np.ndarray[Any, Any]:
        net, dtype = model.handle
        return foreground(net, image, dtype, model.device)


def make_adapter() -> BiRefNetAdapter:
    quiet_runtimes()
    return BiRefNetAdapter()


def foreground(net: Any, image: Image.Image, dtype: torch.dtype, device: str) -> np.ndarray[Any, Any]:
    """Foreground probability (HxW float in [0, 1]) at the input image's size."""
    resized = image.resize((INPUT_SIZE, INPUT_SIZE), Image.Resampling.BILINEAR)
    pixels = torch.from_numpy(np.asarray(resized, dtype=np.float32) / 255.0).permute(2, 0, 1).unsqueeze(0)
    pixels = (pixels - IMAGENET_MEAN) / IMAGENET_STD
    with torch.inference_mode():
        # BiRefNet returns its side outputs coarse to fine; the last one is the prediction.
        logits = net(pixels.to(device, dtype))[-1].float()
        probability = F.interpolate(logits.sigmoid(), (image.height, image.width), mode="bilinear")
    result: np.ndarray[Any, Any] = probability[0, 0].cpu().numpy()
    return result
