"""Tiny random-weight ControlNet and IP-Adapter for the tiny SD 1.x pipeline, built offline.

``sd-controlnet``: a ``ControlNetModel`` shaped after the tiny SD UNet (``from_unet``, as
diffusers does to start a ControlNet from its base model), saved as a model folder like
lllyasviel/sd-controlnet-canny. Its zero-convolutions start at zero in ``from_unet``, which
would make the control map do nothing; here they get random weights instead, so the
control map visibly steers the tiny model (what the tests check).

``ip-adapter-sd``: the h94/IP-Adapter layout that diffusers' ``load_ip_adapter`` reads:
``models/ip-adapter_sd15.safetensors`` (``image_proj.*`` and ``ip_adapter.*`` tensors) and a
``models/image_encoder/`` CLIP vision model with projection.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from limner.tiny.sd import _unet, lib, seed_everything

CONDITIONING_CHANNELS = (8, 8, 16, 16)  # three stride-2 steps: the control map at 1/8 = latent size
IMAGE_EMBED_DIM = 32
CROSS_ATTENTION_DIM = 32  # the tiny SD text width (limner.tiny.sd.TEXT_HIDDEN)
IP_TOKENS = 4  # tokens an IP-Adapter (not Plus) adds per image


def build_sd_controlnet(dest: Path) -> None:
    import torch

    controlnet = lib("diffusers").ControlNetModel.from_unet(
        _unet(), conditioning_embedding_out_channels=CONDITIONING_CHANNELS
    )
    seed_everything(1)
    with torch.no_grad():
        for module in [*controlnet.controlnet_down_blocks, controlnet.controlnet_mid_block]:
            module.weight.normal_(0.0, 0.5)
        # He-initialised so the map's variation survives the eight small convolutions of the
        # conditioning embedding (the default init shrinks it ~1000-fold at this width).
        for conv in controlnet.controlnet_cond_embedding.modules():
            if isinstance(conv, torch.nn.Conv2d):
                torch.nn.init.kaiming_normal_(conv.weight, nonlinearity="relu")
        controlnet.controlnet_cond_embedding.conv_out.weight.mul_(4.0)
    controlnet.save_pretrained(dest, safe_serialization=True)


def build_ip_adapter_sd(dest: Path) -> None:
    import torch
    from safetensors.torch import save_file

    transformers = lib("transformers")
    encoder_config = transformers.CLIPVisionConfig(
        hidden_size=32,
        intermediate_size=37,
        projection_dim=IMAGE_EMBED_DIM,
        num_hidden_layers=2,
        num_attention_heads=4,
        image_size=32,
        patch_size=8,
    )
    seed_everything()
    encoder = transformers.CLIPVisionModelWithProjection(encoder_config).eval()
    encoder.save_pretrained(dest / "models" / "image_encoder")
    seed_everything(2)
    tensors: dict[str, Any] = {
        "image_proj.proj.weight": torch.randn(IP_TOKENS * CROSS_ATTENTION_DIM, IMAGE_EMBED_DIM) * 0.2,
        "image_proj.proj.bias": torch.zeros(IP_TOKENS * CROSS_ATTENTION_DIM),
        "image_proj.norm.weight": torch.ones(CROSS_ATTENTION_DIM),
        "image_proj.norm.bias": torch.zeros(CROSS_ATTENTION_DIM),
    }
    # One key/value projection pair per cross-attention layer, numbered 1, 3, 5, … in the
    # order of the UNet's attention processors (how diffusers maps the original checkpoints).
    key_id = 1
    for name in _unet().attn_processors:
        if name.endswith("attn1.processor"):
            continue  # self-attention takes no image tokens
        hidden = _hidden_size(name)
        for projection in ("to_k_ip", "to_v_ip"):
            tensors[f"ip_adapter.{key_id}.{projection}.weight"] = torch.randn(hidden, CROSS_ATTENTION_DIM) * 0.3
        key_id += 2
    (dest / "models").mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(dest / "models" / "ip-adapter_sd15.safetensors"))


def _hidden_size(processor_name: str) -> int:
    """The width of the tiny UNet block an attention processor sits in (block_out_channels 16, 32)."""
    channels = (16, 32)
    if processor_name.startswith("mid_block"):
        return channels[-1]
    block = int(processor_name.split(".")[1])
    return channels[::-1][block] if processor_name.startswith("up_blocks") else channels[block]
