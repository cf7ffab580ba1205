"""Tiny random-weight SAM 2 (transformers ``Sam2Model``), built offline.

The real architecture (Hiera backbone, FPN neck, prompt encoder, two-way mask decoder) at toy
width and a 128-pixel input instead of 1024, saved with ``save_pretrained`` next to a
``preprocessor_config.json`` in the layout of facebook/sam2.1-hiera-*, so the product loads it
the way it loads the real checkpoint.
"""

from __future__ import annotations

import json
from pathlib import Path

from limner.tiny.sd import lib, seed_everything

IMAGE_SIZE = 128
IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]


def build_sam2(dest: Path) -> None:
    transformers = lib("transformers")
    size = IMAGE_SIZE
    backbone = transformers.Sam2HieraDetConfig(
        hidden_size=8,
        image_size=[size, size],
        blocks_per_stage=[1, 1, 2, 1],
        embed_dim_per_stage=[8, 16, 32, 64],
        num_attention_heads_per_stage=[1, 1, 1, 1],
        window_size_per_stage=[4, 4, 4, 4],
        global_attention_blocks=[3],  # a block without query pooling (blocks 1, 2 and 4 pool)
        window_positional_embedding_background_size=[2, 2],
    )
    vision = transformers.Sam2VisionConfig(
        backbone_config=backbone,
        backbone_channel_list=[64, 32, 16, 8],
        backbone_feature_sizes=[[size // 4, size // 4], [size // 8, size // 8], [size // 16, size // 16]],
        fpn_hidden_size=32,
    )
    config = transformers.Sam2Config(
        vision_config=vision,
        prompt_encoder_config=transformers.Sam2PromptEncoderConfig(
            hidden_size=32, image_size=size, patch_size=16, mask_input_channels=4
        ),
        mask_decoder_config=transformers.Sam2MaskDecoderConfig(
            hidden_size=32, mlp_dim=64, num_attention_heads=2, iou_head_hidden_dim=32
        ),
    )
    seed_everything()
    transformers.Sam2Model(config).eval().save_pretrained(dest)
    preprocessor = {
        "image_processor_type": "Sam2ImageProcessor",
        "image_mean": IMAGENET_MEAN,
        "image_std": IMAGENET_STD,
        "size": {"height": size, "width": size},
        "mask_size": {"height": size // 4, "width": size // 4},
    }
    (dest / "preprocessor_config.json").write_text(json.dumps(preprocessor, indent=2))
