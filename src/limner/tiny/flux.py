"""Tiny random-weight FLUX.1 pipeline, built offline.

Same component classes and wiring as a real FLUX.1-dev checkpoint
(``FluxPipeline`` with ``FluxTransformer2DModel`` (guidance-distilled),
a flux-style ``AutoencoderKL`` without quant convs, ``CLIPTextModel`` +
``CLIPTokenizer``, ``T5EncoderModel`` + ``T5Tokenizer`` and
``FlowMatchEulerDiscreteScheduler`` with dynamic shifting), with the tiny
transformer sizes diffusers' own tests use. The VAE keeps the real scale
factor of 8, so height and width must be multiples of 16 (8 x 2x2 packing):
a 64x64 image is an 8x8 latent, i.e. 16 image tokens.

torch / diffusers / transformers are imported inside the functions so that
importing this module is cheap.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from limner.tiny.sd import (
    LATENT_CHANNELS,
    TEXT_HIDDEN,
    VAE_BLOCKS,
    VAE_GROUPS,
    clip_text_encoder,
    lib,
    seed_everything,
    vae_blocks,
)
from limner.tiny.t5 import t5_encoder
from limner.tiny.tokenizers import build_clip_tokenizer, build_t5_tokenizer

if TYPE_CHECKING:
    from transformers import T5Tokenizer

T5_HIDDEN = 32


def _transformer() -> Any:
    seed_everything()
    return lib("diffusers").FluxTransformer2DModel(
        patch_size=1,
        in_channels=LATENT_CHANNELS * 4,  # latents are packed 2x2 into tokens
        num_layers=1,
        num_single_layers=1,
        attention_head_dim=16,
        num_attention_heads=2,
        joint_attention_dim=T5_HIDDEN,
        pooled_projection_dim=TEXT_HIDDEN,
        guidance_embeds=True,
        axes_dims_rope=(4, 4, 8),  # must sum to attention_head_dim
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
        scaling_factor=0.3611,
        shift_factor=0.1159,
        use_quant_conv=False,
        use_post_quant_conv=False,
    )


def _t5_encoder(tokenizer: T5Tokenizer) -> Any:
    # T5 v1.1 (gated GELU), as in FLUX's T5-XXL
    return t5_encoder(len(tokenizer), tokenizer.pad_token_id, tokenizer.eos_token_id, d_model=T5_HIDDEN)


def _scheduler() -> Any:
    """FLUX.1-dev's scheduler config: resolution-dependent shift (mu)."""
    return lib("diffusers").FlowMatchEulerDiscreteScheduler(
        num_train_timesteps=1000,
        shift=3.0,
        use_dynamic_shifting=True,
        base_shift=0.5,
        max_shift=1.15,
        base_image_seq_len=256,
        max_image_seq_len=4096,
    )


def build_flux(dest: Path) -> None:
    """Build the tiny FLUX.1 pipeline and ``save_pretrained`` it into ``dest``."""
    clip_tokenizer = build_clip_tokenizer()
    t5_tokenizer = build_t5_tokenizer()
    pipe = lib("diffusers").FluxPipeline(
        scheduler=_scheduler(),
        vae=_vae(),
        text_encoder=clip_text_encoder(clip_tokenizer),
        tokenizer=clip_tokenizer,
        text_encoder_2=_t5_encoder(t5_tokenizer),
        tokenizer_2=t5_tokenizer,
        transformer=_transformer(),
    )
    pipe.save_pretrained(dest, safe_serialization=True)
