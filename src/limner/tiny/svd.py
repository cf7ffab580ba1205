"""Tiny random-weight Stable Video Diffusion pipeline (image to video), built offline.

Same component classes and wiring as ``stabilityai/stable-video-diffusion-img2vid-xt``
(``UNetSpatioTemporalConditionModel`` conditioned on the image's CLIP embedding, fps, motion
bucket and noise augmentation; ``AutoencoderKLTemporalDecoder``; ``CLIPVisionModelWithProjection``
+ ``CLIPImageProcessor``; the continuous-time, v-prediction Karras ``EulerDiscreteScheduler``),
at the sizes diffusers' own tests use. The VAE keeps the real 8x spatial scale factor (its
group norms need 32 channels per block), so sizes are multiples of 8; any frame count works.

torch / diffusers / transformers are imported inside the functions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from limner.tiny.sd import lib, seed_everything

HIDDEN = 32
VISION_SIZE = 224  # the pipeline resizes the conditioning image to 224x224, always
ADDED_TIME_DIM = 32  # fps, motion bucket and noise augmentation: 3 x 32 = 96 inputs


def _unet() -> Any:
    seed_everything()
    return lib("diffusers").UNetSpatioTemporalConditionModel(
        block_out_channels=(32, 64),
        layers_per_block=1,
        sample_size=4,
        in_channels=8,  # noisy latents + the encoded conditioning image
        out_channels=4,
        down_block_types=("CrossAttnDownBlockSpatioTemporal", "DownBlockSpatioTemporal"),
        up_block_types=("UpBlockSpatioTemporal", "CrossAttnUpBlockSpatioTemporal"),
        cross_attention_dim=HIDDEN,
        num_attention_heads=(2, 4),
        projection_class_embeddings_input_dim=3 * ADDED_TIME_DIM,
        addition_time_embed_dim=ADDED_TIME_DIM,
        num_frames=8,
    )


def _vae() -> Any:
    seed_everything()
    return lib("diffusers").AutoencoderKLTemporalDecoder(
        block_out_channels=(32, 32, 32, 32),
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        latent_channels=4,
        layers_per_block=1,
    )


def _image_encoder() -> Any:
    transformers = lib("transformers")
    config = transformers.CLIPVisionConfig(
        hidden_size=HIDDEN,
        projection_dim=HIDDEN,
        num_hidden_layers=2,
        num_attention_heads=4,
        image_size=VISION_SIZE,
        intermediate_size=37,
        patch_size=32,  # 7x7 patches, as a ViT-B/32
    )
    seed_everything()
    return transformers.CLIPVisionModelWithProjection(config).eval()


def _scheduler() -> Any:
    """SVD's scheduler config: continuous-time Euler with Karras sigmas, v-prediction."""
    return lib("diffusers").EulerDiscreteScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        interpolation_type="linear",
        num_train_timesteps=1000,
        prediction_type="v_prediction",
        sigma_max=700.0,
        sigma_min=0.002,
        steps_offset=1,
        timestep_spacing="leading",
        timestep_type="continuous",
        use_karras_sigmas=True,
    )


def build_svd(dest: Path) -> None:
    """Build the tiny SVD pipeline and ``save_pretrained`` it into ``dest``."""
    transformers = lib("transformers")
    pipe = lib("diffusers").StableVideoDiffusionPipeline(
        vae=_vae(),
        image_encoder=_image_encoder(),
        unet=_unet(),
        scheduler=_scheduler(),
        feature_extractor=transformers.CLIPImageProcessor(crop_size=VISION_SIZE, size=VISION_SIZE),
    )
    pipe.save_pretrained(dest, safe_serialization=True)
