"""Tiny random-weight CogVideoX pipelines (text to video and image to video), built offline.

Same component classes and wiring as ``THUDM/CogVideoX-5b`` and ``CogVideoX-5b-I2V``
(``CogVideoXTransformer3DModel`` with rotary position embeddings, ``AutoencoderKLCogVideoX``
with 8x spatial and 4x temporal compression, a T5 v1.1 text encoder read at 226 tokens, and
the v-prediction ``CogVideoXDDIMScheduler`` with zero terminal SNR), at the sizes diffusers'
own tests use. Like the real image-to-video model, the tiny one also has learned position
embeddings, which pin its resolution: it only makes 32x32 videos (the real one 720x480).
``num_frames - 1`` must be a multiple of 4.

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
LATENT_CHANNELS = 4
TEXT_TOKENS = 226  # CogVideoX's max_sequence_length: the transformer's text positions
I2V_SIZE = 32  # pixels; the learned position embeddings cover exactly this size


def _t5_encoder(tokenizer: T5Tokenizer) -> Any:
    return t5_encoder(len(tokenizer), tokenizer.pad_token_id, tokenizer.eos_token_id, d_model=TEXT_DIM)


def _transformer(image: bool) -> Any:
    seed_everything()
    side = I2V_SIZE // 8 if image else 2
    return lib("diffusers").CogVideoXTransformer3DModel(
        # heads x head_dim = 32 = the text width; head_dim 16 for the 3D rotary embedding.
        num_attention_heads=2,
        attention_head_dim=16,
        in_channels=LATENT_CHANNELS * 2 if image else LATENT_CHANNELS,  # + the encoded first frame
        out_channels=LATENT_CHANNELS,
        time_embed_dim=2,
        text_embed_dim=TEXT_DIM,
        num_layers=1,
        sample_width=side,
        sample_height=side,
        sample_frames=9,
        patch_size=2,
        temporal_compression_ratio=4,
        max_text_seq_length=TEXT_TOKENS,
        use_rotary_positional_embeddings=True,
        use_learned_positional_embeddings=image,
    )


def _vae() -> Any:
    seed_everything()
    return lib("diffusers").AutoencoderKLCogVideoX(
        in_channels=3,
        out_channels=3,
        down_block_types=("CogVideoXDownBlock3D",) * 4,
        up_block_types=("CogVideoXUpBlock3D",) * 4,
        block_out_channels=(8, 8, 8, 8),
        latent_channels=LATENT_CHANNELS,
        layers_per_block=1,
        norm_num_groups=2,
        temporal_compression_ratio=4,
    )


def _scheduler() -> Any:
    """CogVideoX-5b's scheduler config (v-prediction, zero terminal SNR, trailing steps)."""
    return lib("diffusers").CogVideoXDDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        prediction_type="v_prediction",
        rescale_betas_zero_snr=True,
        set_alpha_to_one=True,
        snr_shift_scale=1.0,
        timestep_spacing="trailing",
        steps_offset=0,
    )


def _build(dest: Path, pipeline: str, image: bool) -> None:
    tokenizer = build_t5_tokenizer()
    pipe = getattr(lib("diffusers"), pipeline)(
        tokenizer=tokenizer,
        text_encoder=_t5_encoder(tokenizer),
        vae=_vae(),
        transformer=_transformer(image),
        scheduler=_scheduler(),
    )
    pipe.save_pretrained(dest, safe_serialization=True)


def build_cogvideox(dest: Path) -> None:
    """Build the tiny CogVideoX text-to-video pipeline and ``save_pretrained`` it into ``dest``."""
    _build(dest, "CogVideoXPipeline", image=False)


def build_cogvideox_i2v(dest: Path) -> None:
    """Build the tiny CogVideoX image-to-video pipeline and ``save_pretrained`` it into ``dest``."""
    _build(dest, "CogVideoXImageToVideoPipeline", image=True)
