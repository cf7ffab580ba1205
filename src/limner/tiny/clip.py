"""A tiny random-weight CLIP (transformers ``CLIPModel``) with the real CLIP tokenizer.

The tokenizer is the exact one of OpenAI's CLIP: its byte-level BPE vocabulary is built from
``bpe_simple_vocab_16e6.txt.gz``, the merges file that open-clip-torch ships (found on disk
without importing open_clip, which would import torchvision). The model is built from a tiny
config, saved with ``save_pretrained`` and loaded back through ``from_pretrained`` like a
real checkpoint; it scores nonsense, but every step of quality scoring runs for real.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import shutil
from pathlib import Path
from typing import Any

from limner.errors import ModelUnavailable

VOCAB_FILE = "bpe_simple_vocab_16e6.txt.gz"
# The merges open_clip (and OpenAI's CLIP) use: lines 1 .. 48894 of the file.
MERGES = 49152 - 256 - 2
BOS, EOS = "<|startoftext|>", "<|endoftext|>"


def open_clip_vocab_path() -> Path:
    """The BPE merges file inside the installed open-clip-torch wheel."""
    spec = importlib.util.find_spec("open_clip")
    if spec is None or not spec.submodule_search_locations:
        raise ModelUnavailable(
            "the CLIP tokenizer vocabulary comes from the open-clip-torch wheel: "
            "pip install --no-deps open-clip-torch (make install does)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / VOCAB_FILE
    if not path.is_file():
        raise ModelUnavailable(f"{path} is missing from the installed open-clip-torch")
    return path


def _bytes_to_unicode() -> list[str]:
    """GPT-2's printable stand-ins for the 256 byte values, in CLIP's order."""
    chars = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    codes = list(chars)
    extra = 0
    for b in range(256):
        if b not in chars:
            chars.append(b)
            codes.append(256 + extra)
            extra += 1
    return [chr(c) for c in codes]


def write_clip_tokenizer_files(dest: Path) -> tuple[Path, Path]:
    """vocab.json and merges.txt of OpenAI's CLIP tokenizer, made from open_clip's merges
    exactly the way its SimpleTokenizer builds its encoder."""
    with gzip.open(open_clip_vocab_path()) as handle:
        lines = handle.read().decode("utf-8").split("\n")
    merges = [tuple(line.split()) for line in lines[1 : MERGES + 1]]
    symbols = _bytes_to_unicode()
    vocab = symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges] + [BOS, EOS]
    dest.mkdir(parents=True, exist_ok=True)
    vocab_path, merges_path = dest / "vocab.json", dest / "merges.txt"
    vocab_path.write_text(json.dumps({token: i for i, token in enumerate(vocab)}, ensure_ascii=False))
    merges_path.write_text("#version: 0.2\n" + "\n".join(" ".join(m) for m in merges) + "\n", encoding="utf-8")
    return vocab_path, merges_path


def build_clip(dest: Path) -> None:
    """Tiny CLIPModel + the real tokenizer + an image processor, saved to ``dest``."""
    import torch
    from transformers import CLIPConfig, CLIPImageProcessorPil, CLIPModel, CLIPProcessor, CLIPTokenizer

    vocab_path, merges_path = write_clip_tokenizer_files(dest / "tokenizer-src")
    tokenizer = CLIPTokenizer(str(vocab_path), str(merges_path), model_max_length=77)
    torch.manual_seed(0)
    config = CLIPConfig(
        text_config={
            "vocab_size": len(tokenizer),
            "hidden_size": 32,
            "intermediate_size": 37,
            "num_hidden_layers": 1,
            "num_attention_heads": 4,
            "max_position_embeddings": 77,
            "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id,
            "pad_token_id": tokenizer.pad_token_id,
        },
        vision_config={
            "image_size": 32,
            "patch_size": 8,
            "hidden_size": 32,
            "intermediate_size": 37,
            "num_hidden_layers": 1,
            "num_attention_heads": 4,
        },
        projection_dim=16,
    )
    model: Any = CLIPModel(config)
    model.eval()
    images = CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    model.save_pretrained(str(dest))
    processor_class: Any = CLIPProcessor
    processor = processor_class(image_processor=images, tokenizer=tokenizer)
    processor.save_pretrained(str(dest))
    shutil.rmtree(dest / "tokenizer-src")
