"""Is this file a safetensors LoRA? Told from its header, without torch and without loading it.

A LoRA request may name a file anywhere on the web. A pickled PyTorch checkpoint (``.bin``,
``.pt``, ``.ckpt``) runs code when it is loaded, so limner takes safetensors only, and says
why when it refuses anything else. The safetensors format is an 8-byte little-endian header
length, a JSON header (tensor name → dtype, shape, byte offsets), then the raw bytes; the
header is parsed and checked against the file's size here (the format's own rules), and its
tensor names must be those of a LoRA (``lora_A``/``lora_B``, ``lora_down``/``lora_up``, …).
Written by hand because the ``safetensors`` package needs a tensor framework to read a file,
and the API process imports none.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from typing import Any

from limner.errors import InvalidInput

MAX_HEADER = 100 * 1024 * 1024
LORA_MARKERS = ("lora_A", "lora_B", "lora_down", "lora_up", "lora.down", "lora.up", "lora_te", "lora_unet")
DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}
DTYPE_BYTES |= {"F8_E4M3": 1, "F8_E5M2": 1, "U16": 2, "U32": 4, "U64": 8}


@dataclass(frozen=True)
class LoraHeader:
    tensors: int
    metadata: dict[str, str]
    rank: int | None  # the largest LoRA rank among its down/A matrices


def looks_pickled(data: bytes) -> str | None:
    """What a non-safetensors file most likely is, for the refusal's message."""
    if data[:2] in (b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05"):
        return "a Python pickle (a PyTorch checkpoint saved with torch.save)"
    if data[:4] == b"PK\x03\x04":
        return "a zip archive (PyTorch's torch.save format, pickled inside)"
    return None


def check_lora_file(data: bytes, field: str) -> LoraHeader:
    """The file's header, if it is a safetensors file holding LoRA weights; else a 422 naming why."""
    kind = looks_pickled(data)
    if kind is not None:
        raise InvalidInput(
            f"{field} is {kind}, not safetensors: loading a pickle can run arbitrary code, so limner takes "
            "LoRAs only as .safetensors (convert it with safetensors' save_file)",
            loc=("body", field),
        )
    if len(data) < 8:
        raise InvalidInput(f"{field} is not a safetensors file (it is {len(data)} bytes)", loc=("body", field))
    (length,) = struct.unpack("<Q", data[:8])
    if length > min(MAX_HEADER, len(data) - 8) or length < 2:
        raise InvalidInput(f"{field} is not a safetensors file (its header length is wrong)", loc=("body", field))
    try:
        header: Any = json.loads(data[8 : 8 + length])
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise InvalidInput(f"{field} is not a safetensors file (its header is not JSON)", loc=("body", field)) from None
    if not isinstance(header, dict):
        raise InvalidInput(f"{field} is not a safetensors file (its header is not an object)", loc=("body", field))
    metadata = header.pop("__metadata__", None) or {}
    body = len(data) - 8 - length
    rank: int | None = None
    for name, spec in header.items():
        _check_tensor(name, spec, body, field)
        shape = spec["shape"]
        if any(m in name for m in ("lora_A", "lora_down", "lora.down")) and len(shape) >= 2:
            rank = max(rank or 0, int(shape[0]))
    if not header:
        raise InvalidInput(f"{field} is a safetensors file with no tensors", loc=("body", field))
    if not any(any(marker in name for marker in LORA_MARKERS) for name in header):
        raise InvalidInput(
            f"{field} is a safetensors file but holds no LoRA weights (no lora_A/lora_B or lora_down/lora_up tensors)",
            loc=("body", field),
        )
    return LoraHeader(len(header), {str(k): str(v) for k, v in dict(metadata).items()}, rank)


def _check_tensor(name: str, spec: Any, body: int, field: str) -> None:
    bad = InvalidInput(f"{field} is not a valid safetensors file (tensor {name!r})", loc=("body", field))
    if not isinstance(spec, dict) or spec.get("dtype") not in DTYPE_BYTES:
        raise bad
    shape, offsets = spec.get("shape"), spec.get("data_offsets")
    if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
        raise bad
    if not isinstance(offsets, list) or len(offsets) != 2 or not all(isinstance(o, int) for o in offsets):
        raise bad
    start, end = offsets
    count = 1
    for dim in shape:
        count *= dim
    if not 0 <= start <= end <= body or end - start != count * DTYPE_BYTES[spec["dtype"]]:
        raise bad
