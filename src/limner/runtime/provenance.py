"""What made a result: recorded in every result as ``provenance``, for every family.

``provenance`` answers "why do staging and production differ": the model (id, revision: a hub
commit or the sha256 of a tiny/local build's weights, family, source, scheduler, dtype), the
entry's runtime settings and call arguments, the worker's device and library versions, the
LoRAs, the seed and the whole resolved input. ``GET /v1/requests/{a}/diff/{b}`` compares two.
"""

from __future__ import annotations

import platform
from importlib import metadata
from typing import Any

from limner.adapters.base import LoadedModel, describe
from limner.catalog import CatalogEntry

LIBRARIES = ("limner", "torch", "diffusers", "transformers", "accelerate", "peft", "safetensors", "numpy", "pillow")


def environment(device: str) -> dict[str, Any]:
    """The worker's device and library versions (read from installed metadata: nothing is
    imported), computed once per worker."""
    versions: dict[str, str | None] = {}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {"device": device, "python": platform.python_version(), "libraries": versions}


def model_provenance(entry: CatalogEntry, loaded: LoadedModel) -> dict[str, Any]:
    """The model half of a result's provenance, worked out once when the model is loaded."""
    details = describe(loaded.handle)
    return {
        "id": entry.id,
        "revision": loaded.revision,
        "family": entry.family,
        "source": entry.source,
        "task": entry.task,
        "scheduler": details.get("scheduler"),
        "dtype": details.get("dtype") or entry.runtime.dtype,
        "device": loaded.device,
        "runtime": entry.runtime.model_dump(mode="json"),
        "call_args": entry.call_args,
    }


def result_provenance(
    model: dict[str, Any], env: dict[str, Any], job_input: dict[str, Any], extra: dict[str, Any]
) -> dict[str, Any]:
    """One result's provenance: the loaded model's, the worker's environment, and the job's
    own seed, LoRAs (as the family applied them) and resolved input."""
    return {
        "model": model,
        "environment": env,
        "loras": extra.get("loras", job_input.get("loras") or []),
        "seed": job_input.get("seed"),
        "input": job_input,
    }
