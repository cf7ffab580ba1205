"""Tiny random-weight Stable Audio Open pipeline, built offline.

The components and wiring of ``stabilityai/stable-audio-open-1.0`` (``StableAudioPipeline``: a
T5 text encoder, the seconds-conditioning projection model, a DiT over Oobleck VAE latents with
the real 2048-sample hop, stereo output), at toy width. Two differences, both for CPU test
speed: 16 kHz audio and 80 latent frames (10.24 s at most) instead of 44.1 kHz and 1024 frames
(47.55 s); the pipeline always denoises and decodes the model's full length, then trims.
The scheduler is EDM DPM-Solver++: the real model's cosine variant needs ``torchsde``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from limner.tiny.sd import lib, seed_everything
from limner.tiny.t5 import t5_encoder
from limner.tiny.tokenizers import build_t5_tokenizer

SAMPLING_RATE = 16000
LATENT_FRAMES = 80
LATENT_CHANNELS = 8
DOWNSAMPLING = (2, 4, 4, 8, 8)  # product 2048, as in the real Oobleck VAE
TEXT_HIDDEN = 32
CONDITIONING = 16


def _transformer() -> Any:
    seed_everything()
    return lib("diffusers").StableAudioDiTModel(
        sample_size=LATENT_FRAMES,
        in_channels=LATENT_CHANNELS,
        out_channels=LATENT_CHANNELS,
        num_layers=2,
        attention_head_dim=8,
        num_attention_heads=2,
        num_key_value_attention_heads=1,
        cross_attention_dim=CONDITIONING,
        cross_attention_input_dim=CONDITIONING,
        global_states_input_dim=2 * CONDITIONING,  # start and end seconds, concatenated
        time_proj_dim=16,
    )


def _vae() -> Any:
    seed_everything()
    return lib("diffusers").AutoencoderOobleck(
        encoder_hidden_size=4,
        downsampling_ratios=list(DOWNSAMPLING),
        channel_multiples=[1, 2, 2, 4, 4],
        decoder_channels=4,
        decoder_input_channels=LATENT_CHANNELS,
        audio_channels=2,
        sampling_rate=SAMPLING_RATE,
    )


def _text_encoder(vocab_size: int, pad: int, eos: int) -> Any:
    # t5-base (ReLU feed-forward), as in Stable Audio Open
    return t5_encoder(vocab_size, pad, eos, d_model=TEXT_HIDDEN, feed_forward_proj="relu")


def _projection() -> Any:
    seed_everything()
    return lib("diffusers").StableAudioProjectionModel(
        text_encoder_dim=TEXT_HIDDEN, conditioning_dim=CONDITIONING, min_value=0, max_value=512
    )


def _scheduler() -> Any:
    return lib("diffusers").EDMDPMSolverMultistepScheduler(
        solver_order=2,
        prediction_type="v_prediction",
        sigma_data=1.0,
        sigma_schedule="exponential",
        sigma_min=0.3,
        sigma_max=500.0,
    )


def build_stable_audio(dest: Path) -> None:
    """Build the tiny Stable Audio Open pipeline and ``save_pretrained`` it into ``dest``."""
    tokenizer = build_t5_tokenizer()
    pipe = lib("diffusers").StableAudioPipeline(
        vae=_vae(),
        text_encoder=_text_encoder(len(tokenizer), tokenizer.pad_token_id, tokenizer.eos_token_id),
        projection_model=_projection(),
        tokenizer=tokenizer,
        transformer=_transformer(),
        scheduler=_scheduler(),
    )
    pipe.save_pretrained(dest, safe_serialization=True)
