"""Comparing two requests: their outputs (bytes, then pixels) and what made them (provenance).

Torch-free (the API process runs it): output files are read from storage, hashed, and, when
the bytes differ, images are decoded with Pillow and compared as arrays with numpy.
"""

from __future__ import annotations

import hashlib
import io
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from limner.storage import Storage
from limner.storage.base import key_of
from limner.store.records import Job

# Result fields that differ between any two runs by nature, never by cause.
NOT_COMPARED = frozenset({"timings", "usage", "batch_size", "cache", "quality"})


def record_of(job: Job) -> dict[str, Any]:
    """What made a request: its result's provenance when it has one; else (not finished, or a
    result from before provenance was recorded) the model id and the stored input."""
    provenance = (job.result or {}).get("provenance")
    if isinstance(provenance, dict):
        return provenance
    model = (job.result or {}).get("model") or {"id": job.model_id}
    return {"model": model, "seed": job.input.get("seed"), "input": job.input}


def differences(a: Any, b: Any, path: str = "") -> list[dict[str, Any]]:
    """Every leaf where two JSON values differ, as ``{path, a, b}`` (a missing key is null)."""
    if isinstance(a, dict) and isinstance(b, dict):
        out: list[dict[str, Any]] = []
        for key in list(a) + [k for k in b if k not in a]:
            out += differences(a.get(key), b.get(key), f"{path}.{key}" if path else str(key))
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b, strict=True)) for d in differences(x, y, f"{path}.{i}")]
    return [] if a == b else [{"path": path, "a": a, "b": b}]


def output_files(result: dict[str, Any]) -> dict[str, list[str | None]]:
    """A result's output files by key: storage keys (None where an entry is not a stored file)."""
    files: dict[str, list[str | None]] = {}
    for key, value in result.items():
        if key in NOT_COMPARED or key in ("input", "provenance", "model", "seed"):
            continue
        if isinstance(value, list) and value and all(isinstance(v, dict) and "url" in v for v in value):
            files[key] = [key_of(str(v["url"])) for v in value]
    return files


def compare_outputs(storage: Storage, a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Whether two results' outputs are identical: per file, equal sha256 of the bytes; where
    the bytes differ and both are images of one size, the mean and largest absolute pixel
    difference (0-255 per channel). Values that are not files are compared as JSON."""
    files_a, files_b = output_files(a), output_files(b)
    outputs: list[dict[str, Any]] = []
    for key in list(files_a) + [k for k in files_b if k not in files_a]:
        left, right = files_a.get(key, []), files_b.get(key, [])
        for index in range(max(len(left), len(right))):
            ka = left[index] if index < len(left) else None
            kb = right[index] if index < len(right) else None
            outputs.append({"key": key, "index": index, **_compare_file(storage, ka, kb)})
    other = [
        d for d in differences(_values(a, files_a), _values(b, files_b)) if d["path"].split(".")[0] not in NOT_COMPARED
    ]
    return {
        "identical": all(o["identical"] for o in outputs) and not other,
        "files": outputs,
        "values": other,
    }


def _values(result: dict[str, Any], files: dict[str, Any]) -> dict[str, Any]:
    skip = {"input", "provenance", "model", "seed", *NOT_COMPARED, *files}
    return {k: v for k, v in result.items() if k not in skip}


def _compare_file(storage: Storage, key_a: str | None, key_b: str | None) -> dict[str, Any]:
    if key_a is None or key_b is None:
        return {"identical": False, "missing": "a" if key_a is None else "b"}
    data_a, data_b = storage.get(key_a), storage.get(key_b)
    sha_a, sha_b = hashlib.sha256(data_a).hexdigest(), hashlib.sha256(data_b).hexdigest()
    out: dict[str, Any] = {"identical": sha_a == sha_b, "sha256_a": sha_a, "sha256_b": sha_b}
    if sha_a != sha_b:
        out.update(_pixels(data_a, data_b))
    return out


def _pixels(data_a: bytes, data_b: bytes) -> dict[str, Any]:
    """Pixel difference of two encoded images; nothing when either is not an image."""
    try:
        with Image.open(io.BytesIO(data_a)) as first, Image.open(io.BytesIO(data_b)) as second:
            pa = np.asarray(first.convert("RGB"), dtype=np.int16)
            pb = np.asarray(second.convert("RGB"), dtype=np.int16)
    except (UnidentifiedImageError, OSError):
        return {}
    if pa.shape != pb.shape:
        return {"pixels": {"size_a": list(pa.shape[1::-1]), "size_b": list(pb.shape[1::-1])}}
    diff = np.abs(pa - pb)
    return {"pixels": {"mean_abs_diff": round(float(diff.mean()), 4), "max_abs_diff": int(diff.max())}}
