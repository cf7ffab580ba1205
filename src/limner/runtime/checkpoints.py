"""A training job's checkpoints and its LoRA, on the worker's side.

Each checkpoint's files go to the media storage under the job's results, in its project
(``results/<job>/checkpoints/step-000040/…``: a re-run after a crash overwrites, never
duplicates), and its row goes to the store only while this worker holds the job's lease.
When the job completes, its LoRA is registered under the job's id in the same transaction.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection

from limner.catalog.entry import CatalogEntry
from limner.media.images import MediaFile
from limner.media.types import WEIGHT_TYPES
from limner.storage import Storage
from limner.storage.base import key_of, ref, result_key
from limner.store.loras import Checkpoint, Lora, LoraStore, lora_id_for
from limner.store.records import Job


def checkpoint_entry(checkpoint: Checkpoint) -> dict[str, Any]:
    """A checkpoint as the result and the status show it (storage references become URLs)."""
    return {
        "step": checkpoint.step,
        "url": ref(checkpoint.lora_key),
        "file_size": checkpoint.file_size,
        "sha256": checkpoint.sha256,
        "loss": checkpoint.loss,
        "heldout_loss": checkpoint.heldout_loss,
        "validation_images": [{"url": ref(key), "content_type": "image/png"} for key in checkpoint.validation],
    }


class JobCheckpoints:
    """The CheckpointSink of one batch's training jobs."""

    def __init__(self, storage: Storage, loras: LoraStore, worker_id: str, projects: dict[str, str]) -> None:
        self.storage = storage
        self.loras = loras
        self.worker_id = worker_id
        self.projects = projects

    def save(
        self,
        job_id: str,
        step: int,
        lora: bytes,
        state: bytes,
        images: list[MediaFile],
        loss: float | None,
        heldout_loss: float | None,
    ) -> dict[str, Any]:
        project = self.projects[job_id]
        folder = f"checkpoints/step-{step:06d}"
        lora_key = result_key(project, job_id, f"{folder}/lora.safetensors")
        state_key = result_key(project, job_id, f"{folder}/state.safetensors")
        self.storage.put(lora_key, lora, WEIGHT_TYPES["safetensors"])
        self.storage.put(state_key, state, WEIGHT_TYPES["safetensors"])
        shown = []
        for index, image in enumerate(images):
            key = result_key(project, job_id, f"{folder}/validation-{index}.{image.extension}")
            self.storage.put(key, image.data, image.content_type)
            shown.append(key)
        checkpoint = Checkpoint(
            job_id=job_id,
            step=step,
            project=project,
            lora_key=lora_key,
            state_key=state_key,
            sha256=hashlib.sha256(lora).hexdigest(),
            file_size=len(lora),
            loss=loss,
            heldout_loss=heldout_loss,
            validation=shown,
        )
        self.loras.save_checkpoint(self.worker_id, checkpoint)  # a lost lease records nothing
        return checkpoint_entry(checkpoint)

    def latest_state(self, job_id: str) -> tuple[int, bytes] | None:
        latest = self.loras.latest_checkpoint(job_id)
        if latest is None or not self.storage.exists(latest.state_key):
            return None
        return latest.step, self.storage.get(latest.state_key)

    def entries(self, job_id: str) -> list[dict[str, Any]]:
        return [checkpoint_entry(c) for c in self.loras.checkpoints(job_id)]


def register_training(
    entry: CatalogEntry, revision: str, job: Job, result: dict[str, Any], lora: MediaFile
) -> Callable[[Connection], None]:
    """Turn the result's stored LoRA file into its registered form (``lora: {url, id, …}``)
    and return what registers it, to run in the transaction that completes the job."""
    stored = result["lora"][0]
    key = key_of(stored["url"])
    assert key is not None
    record = Lora(
        id=lora_id_for(job.id),
        project=job.project,
        job_id=job.id,
        trainer=entry.id,
        base_model=entry.source,
        base_revision=revision,
        rank=int(lora.properties.get("rank", 0)),
        trigger_word=job.input.get("trigger_word"),
        file_key=key,
        sha256=hashlib.sha256(lora.data).hexdigest(),
        file_size=len(lora.data),
        step=int(result.get("steps_done") or 0),
        revision=1,
    )
    result["lora"] = lora_view(record)

    def register(conn: Connection) -> None:
        LoraStore.register(conn, record)

    return register


def lora_view(lora: Lora) -> dict[str, Any]:
    """A LoRA as results and ``GET /v1/loras`` show it (its url a storage reference)."""
    return {
        "id": lora.id,
        "url": ref(lora.file_key),
        "file_size": lora.file_size,
        "sha256": lora.sha256,
        "rank": lora.rank,
        "base_model": lora.base_model,
        "base_revision": lora.base_revision,
        "revision": lora.revision,
        "step": lora.step,
        "trigger_word": lora.trigger_word,
        "trainer": lora.trainer,
        "request_id": lora.job_id,
        "project": lora.project,
    }
