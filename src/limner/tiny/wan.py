"""Tiny random-weight Wan2.1 pipelines (text to video and image to video), built offline.

Same component classes and wiring as ``Wan-AI/Wan2.1-T2V-1.3B-Diffusers`` and
``Wan2.1-I2V-14B-480P-Diffusers`` (``WanTransformer3DModel``, ``AutoencoderKLWan`` with its
8x spatial and 4x temporal compression, a UMT5 text encoder, ``FlowMatchEulerDiscreteScheduler``;
the image-to-video one adds a CLIP vision encoder and a 36-channel transformer input), at
the sizes diffusers' own tests use. Frame counts follow the real rule: ``num_frames - 1``
must be a multiple of 4. Sizes must be multiples of 16 (8x VAE, 2x2 patches). The
image-to-video transformer splits its context at a hard-coded 512 text tokens, so that
pipeline must run with the default ``max_sequence_length`` of 512.

torch / diffusers / transformers are imported inside the functions.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from limner.tiny.sd import lib, seed_everything
from limner.tiny.t5 import t5_encoder
from limner.tiny.tokenizers import build_t5_tokenizer

if TYPE_CHECKING:
    from transformers import T5Tokenizer

TEXT_DIM = 32
LATENT_CHANNELS = 16
VISION_HIDDEN = 4
VISION_SIZE = 32
HEADS, HEAD_DIM = 2, 12


def umt5_encoder(tokenizer: T5Tokenizer) -> Any:
    """A 2-layer, 32-wide UMT5 encoder (Wan's text encoder class) for ``tokenizer``."""
    return t5_encoder(len(tokenizer), tokenizer.pad_token_id, tokenizer.eos_token_id, d_model=TEXT_DIM, umt5=True)


def _vae() -> Any:
    seed_everything()
    return lib("diffusers").AutoencoderKLWan(
        base_dim=3,
        z_dim=LATENT_CHANNELS,
        dim_mult=[1, 1, 1, 1],
        num_res_blocks=1,
        temperal_downsample=[False, True, True],
    )


def _transformer(image: bool) -> Any:
    seed_everything()
    return lib("diffusers").WanTransformer3DModel(
        patch_size=(1, 2, 2),
        num_attention_heads=HEADS,
        attention_head_dim=HEAD_DIM,
        # Image to video: noise + encoded first frame + a 4-channel frame mask.
        in_channels=LATENT_CHANNELS * 2 + 4 if image else LATENT_CHANNELS,
        out_channels=LATENT_CHANNELS,
        text_dim=TEXT_DIM,
        freq_dim=256,
        ffn_dim=32,
        num_layers=2,
        cross_attn_norm=True,
        qk_norm="rms_norm_across_heads",
        rope_max_seq_len=32,
        image_dim=VISION_HIDDEN if image else None,
        added_kv_proj_dim=HEADS * HEAD_DIM if image else None,  # image tokens projected to the inner width
    )


def _scheduler() -> Any:
    """Wan2.1's flow-matching schedule (shift 3.0, the 480p setting)."""
    return lib("diffusers").FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=3.0)


def build_wan(dest: Path) -> None:
    """Build the tiny Wan2.1 text-to-video pipeline and ``save_pretrained`` it into ``dest``."""
    tokenizer = build_t5_tokenizer()
    pipe = lib("diffusers").WanPipeline(
        tokenizer=tokenizer,
        text_encoder=umt5_encoder(tokenizer),
        vae=_vae(),
        scheduler=_scheduler(),
        transformer=_transformer(image=False),
    )
    pipe.save_pretrained(dest, safe_serialization=True)


def build_wan_i2v(dest: Path) -> None:
    """Build the tiny Wan2.1 image-to-video pipeline and ``save_pretrained`` it into ``dest``."""
    transformers = lib("transformers")
    tokenizer = build_t5_tokenizer()
    vision = transformers.CLIPVisionConfig(
        hidden_size=VISION_HIDDEN,
        projection_dim=VISION_HIDDEN,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=VISION_SIZE,
        intermediate_size=16,
        patch_size=4,
    )
    seed_everything()
    image_encoder = transformers.CLIPVisionModel(vision).eval()
    pipe = lib("diffusers").WanImageToVideoPipeline(
        tokenizer=tokenizer,
        text_encoder=umt5_encoder(tokenizer),
        vae=_vae(),
        scheduler=_scheduler(),
        image_processor=transformers.CLIPImageProcessor(crop_size=VISION_SIZE, size=VISION_SIZE),
        image_encoder=image_encoder,
        transformer=_transformer(image=True),
    )
    pipe.save_pretrained(dest, safe_serialization=True)
