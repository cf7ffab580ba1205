"""Tiny random-weight AnimateDiff motion adapter, built offline.

AnimateDiff is a Stable Diffusion 1.5 checkpoint plus a ``MotionAdapter`` (temporal attention
blocks spliced into the UNet), published separately: ``guoyww/animatediff-motion-adapter-v1-5-2``
on any SD 1.5 base. The tiny build mirrors that: this adapter matches the tiny SD 1.x UNet of
``limner.tiny.sd`` (same block widths, layers and group norms), and the catalog pairs the two
the way it pairs the real ones (``source: tiny://sd`` + ``components: {motion_adapter: ...}``).
``save_pretrained`` writes a plain model folder (``config.json`` + safetensors), as on the hub.

torch / diffusers are imported inside the functions.
"""

from __future__ import annotations

from pathlib import Path

from limner.tiny.sd import lib, seed_everything

UNET_BLOCKS = (16, 32)  # limner.tiny.sd's UNet block_out_channels
UNET_GROUPS = 8


def build_motion_adapter(dest: Path) -> None:
    """Build the tiny motion adapter and ``save_pretrained`` it into ``dest``."""
    seed_everything()
    adapter = lib("diffusers").MotionAdapter(
        block_out_channels=UNET_BLOCKS,
        motion_layers_per_block=1,
        motion_norm_num_groups=UNET_GROUPS,
        motion_num_attention_heads=2,
        motion_max_seq_length=32,  # as the v1-5-2 adapter: at most 32 frames
        use_motion_mid_block=True,
    )
    adapter.save_pretrained(dest, safe_serialization=True)
