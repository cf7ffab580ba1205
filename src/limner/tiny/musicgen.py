"""Tiny random-weight MusicGen and MusicGen Melody, built offline.

The real classes and wiring of ``facebook/musicgen-small`` / ``-melody`` (a T5 text encoder, an
EnCodec audio codec at 32 kHz with 4 codebooks at 50 frames a second, and the MusicGen decoder
with its codebook delay pattern), at toy width. The folder holds what a hub snapshot holds:
``config.json``, ``generation_config.json``, ``model.safetensors``, the tokenizer files and, for
the melody variant, ``preprocessor_config.json``. It loads through the same ``from_pretrained``
path as a real checkpoint.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from limner.tiny.sd import lib, seed_everything
from limner.tiny.tokenizers import build_t5_tokenizer

SAMPLING_RATE = 32000
CODEBOOK_SIZE = 64  # 2048 in the real codec; the pad/start token is the id just past the codes, as there
NUM_CODEBOOKS = 4
# The real 32 kHz EnCodec's ratios (hop 640 samples = 50 frames/s); 2.2 kbps gives 4 codebooks.
UPSAMPLING_RATIOS = (8, 5, 4, 4)
BANDWIDTH_KBPS = 2.2
NUM_CHROMA = 12
CHROMA_LENGTH = 235  # 30 s of 32 kHz audio at hop 4096, as in facebook/musicgen-melody

# What facebook/musicgen-melody's preprocessor_config.json says. Written as JSON because the
# feature extractor class needs torchaudio to be constructed, and the adapter reads these
# numbers itself (see limner.adapters.musicgen).
MELODY_PREPROCESSOR: dict[str, Any] = {
    "feature_extractor_type": "MusicgenMelodyFeatureExtractor",
    "processor_class": "MusicgenMelodyProcessor",
    "chunk_length": 30,
    "feature_size": NUM_CHROMA,
    "hop_length": 4096,
    "n_fft": 16384,
    "num_chroma": NUM_CHROMA,
    "padding_side": "left",
    "padding_value": 0.0,
    "return_attention_mask": True,
    "sampling_rate": SAMPLING_RATE,
    "stem_indices": [3, 2],
}


def _text_encoder_config(vocab_size: int, pad: int, eos: int) -> Any:
    return lib("transformers").T5Config(
        vocab_size=vocab_size,
        d_model=32,
        d_kv=8,
        d_ff=37,
        num_layers=2,
        num_heads=4,
        relative_attention_num_buckets=8,
        feed_forward_proj="relu",  # T5 v1.0, as in MusicGen's t5-base
        dropout_rate=0.0,
        pad_token_id=pad,
        eos_token_id=eos,
    )


def _codec_config() -> Any:
    return lib("transformers").EncodecConfig(
        sampling_rate=SAMPLING_RATE,
        audio_channels=1,
        hidden_size=16,
        num_filters=4,
        num_residual_layers=1,
        upsampling_ratios=list(UPSAMPLING_RATIOS),
        codebook_size=CODEBOOK_SIZE,
        codebook_dim=16,
        num_lstm_layers=1,
        target_bandwidths=[BANDWIDTH_KBPS],
        use_causal_conv=False,
        normalize=False,
    )


def _decoder_kwargs() -> dict[str, Any]:
    return {
        "vocab_size": CODEBOOK_SIZE,
        "max_position_embeddings": 8192,
        "num_hidden_layers": 1,
        "ffn_dim": 32,
        "num_attention_heads": 2,
        "hidden_size": 16,
        "num_codebooks": NUM_CODEBOOKS,
        "dropout": 0.0,
        "pad_token_id": CODEBOOK_SIZE,
        "bos_token_id": CODEBOOK_SIZE,
        # 10x the usual init std: logits spread like a trained model's, so the prompt and the
        # melody visibly change which codes get sampled (at 0.02 they barely move them).
        "initializer_factor": 0.2,
    }


def _generation_config() -> Any:
    """The sampling settings MusicGen checkpoints ship (top-k sampling, guidance 3)."""
    return lib("transformers").GenerationConfig(
        decoder_start_token_id=CODEBOOK_SIZE,
        pad_token_id=CODEBOOK_SIZE,
        bos_token_id=CODEBOOK_SIZE,
        do_sample=True,
        top_k=50,
        guidance_scale=3.0,
        max_length=1500,
    )


def _build(dest: Path, *, melody: bool) -> None:
    transformers = lib("transformers")
    tokenizer = build_t5_tokenizer()
    text = _text_encoder_config(len(tokenizer), tokenizer.pad_token_id, tokenizer.eos_token_id)
    if melody:
        decoder = transformers.MusicgenMelodyDecoderConfig(**_decoder_kwargs())
        config = transformers.MusicgenMelodyConfig(
            text_encoder=text,
            audio_encoder=_codec_config(),
            decoder=decoder,
            num_chroma=NUM_CHROMA,
            chroma_length=CHROMA_LENGTH,
        )
        model_class = transformers.MusicgenMelodyForConditionalGeneration
    else:
        decoder = transformers.MusicgenDecoderConfig(**_decoder_kwargs())
        config = transformers.MusicgenConfig(text_encoder=text, audio_encoder=_codec_config(), decoder=decoder)
        model_class = transformers.MusicgenForConditionalGeneration
    seed_everything()
    model = model_class(config).eval()
    _spread_codebooks(model)
    model.generation_config = _generation_config()
    model.save_pretrained(dest, safe_serialization=True)
    tokenizer.save_pretrained(dest)
    if melody:
        (dest / "preprocessor_config.json").write_text(json.dumps(MELODY_PREPROCESSOR, indent=2) + "\n")


def _spread_codebooks(model: Any) -> None:
    """EnCodec initialises its codebooks to zeros (training fills them), so every code would
    decode to the same sound; random codebooks make the output depend on the codes, and so on
    the prompt and the seed, as with a trained codec. Zero conv biases keep the random decoder
    from drifting to a constant offset (silence at +0.8, not audio around 0)."""
    import torch

    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for layer in model.audio_encoder.quantizer.layers:
            codebook = layer.codebook
            codebook.embed.copy_(torch.randn(codebook.embed.shape, generator=generator))
            codebook.embed_avg.copy_(codebook.embed)
            codebook.cluster_size.fill_(1.0)
        for name, parameter in model.audio_encoder.decoder.named_parameters():
            if name.endswith("conv.bias"):
                parameter.zero_()


def build_musicgen(dest: Path) -> None:
    """Build the tiny MusicGen (text to music) into ``dest``."""
    _build(dest, melody=False)


def build_musicgen_melody(dest: Path) -> None:
    """Build the tiny MusicGen Melody (text and a melody to music) into ``dest``."""
    _build(dest, melody=True)
