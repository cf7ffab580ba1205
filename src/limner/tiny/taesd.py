"""A tiny random-weight ``AutoencoderTiny`` (the TAESD architecture) that fits the tiny SD.

Step previews decode latents with a tiny autoencoder: TAESD, TAESDXL or TAEF1 from the hub
for real models; offline, this build of the same class, with the tiny SD's 4 latent channels
and scale factor 8 (three 2x upsamplings), at 8 channels per block so a decode costs well
under a millisecond. Its pictures are noise, as the tiny SD's are; the path is the real one.
"""

from __future__ import annotations

from pathlib import Path

from limner.tiny.sd import LATENT_CHANNELS, lib, seed_everything

BLOCKS = (8, 8, 8, 8)  # four blocks: three upsamplings of 2 = the SD VAE's factor of 8


def build_taesd(dest: Path) -> None:
    seed_everything(2)
    decoder = lib("diffusers").AutoencoderTiny(
        in_channels=3,
        out_channels=3,
        encoder_block_out_channels=BLOCKS,
        decoder_block_out_channels=BLOCKS,
        num_encoder_blocks=(1, 1, 1, 1),
        num_decoder_blocks=(1, 1, 1, 1),
        latent_channels=LATENT_CHANNELS,
    )
    decoder.save_pretrained(str(dest), safe_serialization=True)
