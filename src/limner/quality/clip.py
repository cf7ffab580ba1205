"""CLIP through transformers: text-image alignment scores and image features.

The model comes from ``LIMNER_CLIP_MODEL``: ``hf://openai/clip-vit-base-patch32`` (the hub or
its local cache), ``file:///path`` (a saved CLIPModel folder) or ``tiny://clip`` (a tiny
random-weight build with the real tokenizer, see ``limner.tiny.clip``). When the weights are
not present, quality scoring is skipped with one warning; jobs are never affected.

CLIP score is torchmetrics' definition: 100 * max(cos(image embedding, text embedding), 0).
The image embeddings are also the features of the FID window (see ``limner.quality``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from limner.errors import ModelUnavailable


def resolve_clip(source: str, models_dir: Path) -> Path:
    """A local folder holding the CLIP model named by ``source``."""
    if source.startswith("tiny://"):
        dest = models_dir / "tiny" / source.removeprefix("tiny://")
        if not (dest / "config.json").is_file():
            from limner.tiny.clip import build_clip

            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.tmp-", dir=dest.parent))
            try:
                build_clip(tmp)
                with contextlib.suppress(OSError):  # another process may have built it first
                    os.rename(tmp, dest)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
        return dest
    if source.startswith("file://"):
        path = Path(source.removeprefix("file://"))
        if not (path / "config.json").is_file():
            raise ModelUnavailable(f"CLIP model folder {path} has no config.json")
        return path
    repo = source.removeprefix("hf://")
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo, allow_patterns=["*.json", "*.txt", "*.safetensors"]))
    except Exception as exc:
        raise ModelUnavailable(
            f"CLIP weights {repo} are not on this machine ({type(exc).__name__}); "
            "download them where the hub is reachable or set LIMNER_CLIP_MODEL=file:///path"
        ) from exc


class ClipScorer:
    def __init__(self, source: str, models_dir: Path, device: str = "cpu") -> None:
        from transformers import CLIPModel, CLIPProcessor

        folder = resolve_clip(source, models_dir)
        self.processor: Any = CLIPProcessor.from_pretrained(str(folder))
        model_class: Any = CLIPModel  # untyped library: keep mypy out of it
        self.model: Any = model_class.from_pretrained(str(folder), use_safetensors=True)
        self.model.eval()
        self.model.to(device)
        self.device = device
        self.revision = folder.name
        self._lock = threading.Lock()

    def image_features(self, images: list[Image.Image]) -> np.ndarray[Any, np.dtype[np.float32]]:
        """L2-normalised image embeddings, one row per image."""
        with self._lock, torch.inference_mode():
            pixels = self.processor(images=[i.convert("RGB") for i in images], return_tensors="pt")["pixel_values"]
            features = self.model.get_image_features(pixel_values=pixels.to(self.device))
            features = _as_tensor(features)
            features = features / features.norm(dim=-1, keepdim=True)
        return np.asarray(features.float().cpu().numpy(), dtype=np.float32)

    def text_features(self, text: str) -> np.ndarray[Any, np.dtype[np.float32]]:
        with self._lock, torch.inference_mode():
            tokens = self.processor.tokenizer([text], padding=True, truncation=True, return_tensors="pt")
            features = self.model.get_text_features(
                input_ids=tokens["input_ids"].to(self.device), attention_mask=tokens["attention_mask"].to(self.device)
            )
            features = _as_tensor(features)
            features = features / features.norm(dim=-1, keepdim=True)
        return np.asarray(features.float().cpu().numpy()[0], dtype=np.float32)

    def score(self, images: list[Image.Image], prompt: str) -> tuple[list[float], np.ndarray[Any, Any]]:
        """(CLIP score per image, image features)."""
        image_features = self.image_features(images)
        text = self.text_features(prompt)
        scores = [float(100.0 * max(float(row @ text), 0.0)) for row in image_features]
        return scores, image_features


def _as_tensor(output: Any) -> torch.Tensor:
    """transformers 5 returns a model output with pooler_output; 4.x a tensor."""
    if isinstance(output, torch.Tensor):
        return output
    pooled = getattr(output, "pooler_output", None)
    if isinstance(pooled, torch.Tensor):
        return pooled
    raise TypeError(f"unexpected CLIP features output {type(output).__name__}")
