"""Canonical cache keys of a job.

A cached result may answer a request only if the output would be the same: same weights,
same task, same inputs. Three keys per job, each a sha256 of canonical JSON:

- ``exact_key``: the model's revision key, the task and the whole validated input,
  seed included (file inputs are already content-addressed storage references).
- ``input_key``: the same without the seed (an unseeded request accepts any seed).
- ``group_key``: the same without the seed and the prompt: the parameters a semantic hit
  must share (size, steps, guidance, negative prompt, input images, format, outputs).

The revision key is what the catalog says decides the weights and the numerics (family,
source, pinned revision, variant, dtype, quantization, offload, call arguments). The revision
a worker actually loaded (a hub repo moves on) is stored with each entry and checked at lookup.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from limner.catalog.entry import CatalogEntry

NOT_IN_GROUP = ("prompt", "seed")
# Fields that change how a job reports its progress, never its output (step previews).
NOT_IN_OUTPUT = ("preview",)


def _output_fields(job_input: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in job_input.items() if k not in NOT_IN_OUTPUT}


def _digest(value: Any) -> str:
    canonical = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def revision_key(entry: CatalogEntry) -> str:
    return _digest({"weights": json.loads(entry.residency_key), "task": entry.task, "call_args": entry.call_args})[:32]


def exact_key(entry: CatalogEntry, job_input: dict[str, Any]) -> str:
    fields = _output_fields(job_input)
    return _digest({"model": entry.id, "revision": revision_key(entry), "task": entry.task, "input": fields})


def input_key(entry: CatalogEntry, job_input: dict[str, Any]) -> str:
    rest = {k: v for k, v in _output_fields(job_input).items() if k != "seed"}
    return _digest({"model": entry.id, "revision": revision_key(entry), "task": entry.task, "input": rest})


def group_key(entry: CatalogEntry, job_input: dict[str, Any]) -> str:
    rest = {k: v for k, v in _output_fields(job_input).items() if k not in NOT_IN_GROUP}
    return _digest({"model": entry.id, "revision": revision_key(entry), "task": entry.task, "group": rest})


def scope_of(entry: CatalogEntry, project: str) -> str:
    """Whose requests a result may answer: its project's, or everyone's when the model's
    catalog entry says ``cache: {shared: true}``."""
    return "*" if entry.cache.shared else project


def prompt_of(job_input: dict[str, Any]) -> str:
    prompt = job_input.get("prompt")
    return prompt if isinstance(prompt, str) else ""
