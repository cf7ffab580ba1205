"""The tiny T5-family text encoder that FLUX, Wan, CogVideoX and Stable Audio builds share:
two layers, 32 wide, seeded. Only the class (UMT5 for Wan) and the feed-forward kind
(gated GELU for T5 v1.1, ReLU for t5-base) differ between the real models."""

from __future__ import annotations

from typing import Any

from limner.tiny.sd import lib, seed_everything


def t5_encoder(
    vocab_size: int,
    pad_token_id: int,
    eos_token_id: int,
    *,
    d_model: int = 32,
    feed_forward_proj: str = "gated-gelu",
    umt5: bool = False,
) -> Any:
    transformers = lib("transformers")
    config_class, model_class = (
        (transformers.UMT5Config, transformers.UMT5EncoderModel)
        if umt5
        else (transformers.T5Config, transformers.T5EncoderModel)
    )
    config = config_class(
        vocab_size=vocab_size,
        d_model=d_model,
        d_kv=8,
        d_ff=37,
        num_layers=2,
        num_heads=4,
        relative_attention_num_buckets=8,
        feed_forward_proj=feed_forward_proj,
        dropout_rate=0.0,
        is_encoder_decoder=False,
        use_cache=False,
        pad_token_id=pad_token_id,
        eos_token_id=eos_token_id,
    )
    seed_everything()
    return model_class(config).eval()
