"""Tiny random-weight Stable Diffusion 1.x pipeline, built offline.

Same component classes and wiring as a real SD 1.5 checkpoint
(``StableDiffusionPipeline`` with ``UNet2DConditionModel``, ``AutoencoderKL``,
``CLIPTextModel``, ``CLIPTokenizer`` and an Euler scheduler, no safety
checker), but with channel counts of 8-32 so it runs in milliseconds on CPU.
The VAE keeps the real scale factor of 8, so a 64x64 image has an 8x8 latent.

torch / diffusers / transformers are imported inside the functions so that
importing this module is cheap.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from limner.tiny.tokenizers import build_clip_tokenizer

if TYPE_CHECKING:
    from transformers import CLIPTokenizer

SEED = 0
TEXT_HIDDEN = 32
LATENT_CHANNELS = 4
# Four VAE blocks -> vae_scale_factor = 2 ** 3 = 8, as in real SD / FLUX.
VAE_BLOCKS = (8, 8, 16, 16)
VAE_GROUPS = 4


def lib(name: str) -> Any:
    """Import ``diffusers`` / ``transformers`` on first use.

    Typed as ``Any``: their constructors are unannotated (and diffusers' lazy
    module hides methods such as ``save_pretrained`` from mypy).
    """
    return importlib.import_module(name)


def seed_everything(seed: int = SEED) -> None:
    """Reset torch's CPU RNG so each component gets the same weights every build."""
    import torch

    torch.manual_seed(seed)


def clip_text_encoder(tokenizer: CLIPTokenizer) -> Any:
    """A 3-layer, 32-wide CLIP text encoder whose ids match ``tokenizer``."""
    transformers = lib("transformers")
    config = transformers.CLIPTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=TEXT_HIDDEN,
        intermediate_size=37,
        projection_dim=TEXT_HIDDEN,
        num_hidden_layers=3,
        num_attention_heads=4,
        max_position_embeddings=tokenizer.model_max_length,
        hidden_act="gelu",
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    seed_everything()
    return transformers.CLIPTextModel(config).eval()


def vae_blocks(encoder: bool) -> tuple[str, ...]:
    """Block type names for a plain (non-temporal) KL VAE."""
    name = "DownEncoderBlock2D" if encoder else "UpDecoderBlock2D"
    return (name,) * len(VAE_BLOCKS)


def _unet() -> Any:
    seed_everything()
    return lib("diffusers").UNet2DConditionModel(
        sample_size=8,  # default resolution 8 * vae_scale_factor = 64 px
        in_channels=LATENT_CHANNELS,
        out_channels=LATENT_CHANNELS,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        block_out_channels=(16, 32),
        layers_per_block=1,
        norm_num_groups=8,
        cross_attention_dim=TEXT_HIDDEN,
        attention_head_dim=2,
    )


def _vae() -> Any:
    seed_everything()
    return lib("diffusers").AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=vae_blocks(encoder=True),
        up_block_types=vae_blocks(encoder=False),
        block_out_channels=VAE_BLOCKS,
        layers_per_block=1,
        latent_channels=LATENT_CHANNELS,
        norm_num_groups=VAE_GROUPS,
        sample_size=64,
        scaling_factor=0.18215,
    )


def _scheduler() -> Any:
    """SD 1.5 noise schedule with Euler (trailing spacing: sane at 2-4 steps)."""
    return lib("diffusers").EulerDiscreteScheduler(
        num_train_timesteps=1000,
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        prediction_type="epsilon",
        timestep_spacing="trailing",
        steps_offset=1,
    )


def build_sd(dest: Path) -> None:
    """Build the tiny SD 1.x pipeline and ``save_pretrained`` it into ``dest``."""
    tokenizer = build_clip_tokenizer()
    pipe = lib("diffusers").StableDiffusionPipeline(
        vae=_vae(),
        text_encoder=clip_text_encoder(tokenizer),
        tokenizer=tokenizer,
        unet=_unet(),
        scheduler=_scheduler(),
        safety_checker=None,
        feature_extractor=None,
        image_encoder=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(dest, safe_serialization=True)
