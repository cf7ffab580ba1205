"""Tiny random-weight Depth Anything (transformers ``DepthAnythingForDepthEstimation``), offline.

A DINOv2 backbone and DPT head at toy width with a 56-pixel input, saved with
``save_pretrained`` next to its image processor's config, in the layout of
depth-anything/Depth-Anything-V2-Small-hf: the depth ControlNet's preprocessor loads it through
``transformers.pipeline("depth-estimation")`` exactly as it loads the real one.
"""

from __future__ import annotations

from pathlib import Path

from limner.tiny.sd import lib, seed_everything

IMAGE_SIZE = 56  # 4 x 4 patches of 14 pixels


def build_depth_anything(dest: Path) -> None:
    transformers = lib("transformers")
    backbone = transformers.Dinov2Config(
        hidden_size=32,
        num_hidden_layers=4,
        num_attention_heads=2,
        intermediate_size=37,
        image_size=IMAGE_SIZE,
        patch_size=14,
        out_features=["stage1", "stage2", "stage3", "stage4"],
        reshape_hidden_states=False,
    )
    config = transformers.DepthAnythingConfig(
        backbone_config=backbone,
        reassemble_hidden_size=32,
        neck_hidden_sizes=[8, 16, 32, 32],
        fusion_hidden_size=16,
        head_hidden_size=8,
        patch_size=14,
    )
    seed_everything()
    transformers.DepthAnythingForDepthEstimation(config).eval().save_pretrained(dest)
    processor = transformers.DPTImageProcessorPil(
        size={"height": IMAGE_SIZE, "width": IMAGE_SIZE},
        keep_aspect_ratio=True,
        ensure_multiple_of=14,
        do_pad=False,
        image_mean=[0.485, 0.456, 0.406],
        image_std=[0.229, 0.224, 0.225],
    )
    processor.save_pretrained(dest)
