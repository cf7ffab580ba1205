"""Step previews for diffusion families: latents mid-denoising -> small pictures.

Two decoders, chosen by the catalog entry's ``runtime.preview_decoder``:

- a tiny autoencoder (diffusers ``AutoencoderTiny``: TAESD for SD 1.x, TAESDXL, TAEF1 for
  FLUX, from the hub; ``tiny://taesd`` offline), decoding at full size in a fraction of the
  VAE's time, used exactly as diffusers uses it when it replaces a pipeline's ``vae``;
- otherwise a linear latent-to-RGB map, for 4-channel (SD 1.x/SDXL-style) latents: each
  latent pixel becomes one RGB pixel through a fixed 4x3 matrix (the factors fitted by the
  ComfyUI project for SD 1.5 latents), at the latent's resolution. Other latent layouts get
  no preview without a tiny decoder.

Which jobs get previews, and how often: a request's ``preview`` (true: every
``runtime.preview_every`` steps, or every 4; false: never), else the entry's
``runtime.preview_every`` (0: off).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from PIL import Image

from limner.adapters.base import Chunk, LoadEnv
from limner.adapters.loading import resolve_source
from limner.catalog.entry import CatalogEntry
from limner.errors import ModelUnavailable

DEFAULT_EVERY = 4
# SD 1.5 latent channels -> RGB (ComfyUI's latent_formats.SD15.latent_rgb_factors).
SD15_RGB = ((0.3512, 0.2297, 0.3227), (0.3250, 0.4974, 0.2350), (-0.2829, 0.1762, 0.2721), (-0.2120, -0.2616, -0.7177))


def every(entry: CatalogEntry, wanted: bool | None) -> int:
    """Steps between a job's previews; 0 for none."""
    if wanted is False:
        return 0
    if wanted is True:
        return entry.runtime.preview_every or DEFAULT_EVERY
    return entry.runtime.preview_every


@dataclass
class PreviewDecoder:
    """Turns a pipeline's latents at a step into one picture per row."""

    tiny: Any | None  # an AutoencoderTiny, or None for the linear map

    def images(self, pipe: Any, latents: torch.Tensor, size: tuple[int, int]) -> list[Image.Image] | None:
        """Pictures of ``latents`` (the rows of a batch); None when this layout has no decoder."""
        with torch.inference_mode():
            if latents.ndim == 3 and hasattr(pipe, "_unpack_latents"):  # FLUX packs latents as tokens
                latents = pipe._unpack_latents(latents, size[1], size[0], pipe.vae_scale_factor)
            if latents.ndim != 4:
                return None
            if self.tiny is not None:
                config = self.tiny.config
                scaled = latents / config.scaling_factor + getattr(config, "shift_factor", 0.0)
                pictures = self.tiny.decode(scaled.to(self.tiny.dtype)).sample  # in [-1, 1]
            elif latents.shape[1] == len(SD15_RGB):
                factors = torch.tensor(SD15_RGB, dtype=torch.float32, device=latents.device)
                pictures = torch.einsum("bchw,cr->brhw", latents.float(), factors)
            else:
                return None
            pixels = ((pictures.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).cpu()
        return [Image.fromarray(p.permute(1, 2, 0).numpy()) for p in pixels]


def load_decoder(entry: CatalogEntry, env: LoadEnv, dtype: torch.dtype) -> PreviewDecoder:
    """The entry's preview decoder (its tiny autoencoder loaded now, if it names one)."""
    source = entry.runtime.preview_decoder
    if not source:
        return PreviewDecoder(tiny=None)
    from diffusers import AutoencoderTiny

    shadow = entry.model_copy(update={"source": source, "variant": None, "revision": None})
    path, _revision = resolve_source(shadow, env, marker="config.json")
    try:
        tiny = AutoencoderTiny.from_pretrained(str(path), torch_dtype=dtype, use_safetensors=True)
    except (OSError, ValueError) as exc:
        raise ModelUnavailable(f"{entry.id}: cannot load its preview decoder {source}: {exc}") from exc
    return PreviewDecoder(tiny=tiny.to(env.device).eval())


def publish_previews(
    decoder: PreviewDecoder,
    pipe: Any,
    entry: CatalogEntry,
    chunk: Chunk[Any, Any],
    done: int,
    total: int,
    tensors: dict[str, Any],
    size: tuple[int, int],
) -> None:
    """After step ``done`` of ``total``: a preview for each job of the call that wants one at
    this step (its first row's picture), to the batch's preview sink. None after the last
    step: the result itself follows."""
    sink = getattr(chunk.ctx, "previews", None)
    latents = tensors.get("latents")
    if sink is None or latents is None or done >= total:
        return
    first_rows: dict[str, int] = {}
    for index, item in enumerate(chunk.items):
        n = every(entry, getattr(item.input, "preview", None))
        if n and done % n == 0 and not chunk.ctx.is_canceled(item.job_id):
            first_rows.setdefault(item.job_id, index)
    if not first_rows:
        return
    rows = list(first_rows.values())
    pictures = decoder.images(pipe, latents[rows], size)
    for job_id, picture in zip(first_rows, pictures or [], strict=False):
        sink.publish(job_id, done, picture)
