"""What becomes of a batch's jobs once the model has run: each job's files stored and its
result written (timings, usage, provenance, the cache's and a training run's records in the
same transaction), or its error recorded (a retry when the error is retryable). The worker's
batches and the remote lane's calls end here alike."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection

from limner.adapters.base import JobOutput, LoadedModel
from limner.cache.worker import WorkerCache
from limner.catalog import CatalogEntry
from limner.errors import LimnerError, ModelError, OutOfMemory
from limner.media.images import MediaFile
from limner.quality.monitor import QualityMonitor
from limner.runtime.accounting import job_usage, per_token
from limner.runtime.checkpoints import register_training
from limner.runtime.context import BatchContext
from limner.runtime.coordinators import WorkerCoordinators
from limner.runtime.provenance import model_provenance, result_provenance
from limner.settings import Settings
from limner.storage import Storage
from limner.storage.base import ref, result_key
from limner.store.queue import WorkQueue
from limner.store.records import Job

log = logging.getLogger("limner.worker")
TRAINING_TASK = "lora-training"


@dataclass
class Outcomes:
    worker_id: str
    settings: Settings
    device: str
    environment: dict[str, Any]
    queue: WorkQueue
    storage: Storage
    cache: WorkerCache
    quality: QualityMonitor
    coordinators: WorkerCoordinators

    def finish(
        self,
        ctx: BatchContext,
        entry: CatalogEntry,
        loaded: LoadedModel,
        job: Job,
        output: JobOutput,
        times: dict[str, float],
        batch_size: int,
    ) -> None:
        if job.id in ctx.lost:
            log.info("job %s: lease lost, discarding its output", job.id)
            return
        if job.id in ctx.canceled:
            self.queue.finish_canceled(self.worker_id, job.id)
            return
        if output.error is not None:
            self.queue.fail(
                self.worker_id, job.id, output.error.error_type, output.error.message, retry=output.error.retryable
            )
            return
        result: dict[str, Any] = {}
        for key, files in output.files.items():
            result[key] = [self.store(job, key, index, f) for index, f in enumerate(files)]
        stored = time.time()
        result.update(output.extra)
        result.update(
            {
                "seed": job.input.get("seed"),
                "timings": {
                    "queue_s": round((job.started_at or times["start"]) - job.created_at, 4),
                    "load_s": round(times["loaded"] - times["start"], 4),
                    "inference_s": round(times["ran"] - times["loaded"], 4),
                    "upload_s": round(stored - times["ran"], 4),
                    "total_s": round(stored - job.created_at, 4),
                },
                "batch_size": batch_size,
                "model": {"id": entry.id, "revision": loaded.revision},
                "input": job.input,
                "provenance": result_provenance(
                    loaded.provenance or model_provenance(entry, loaded), self.environment, job.input, output.extra
                ),
            }
        )
        inference_s = times["ran"] - times["loaded"]
        # A text job's token counts (output.extra's usage) stay beside its device time and cost.
        result["usage"] = per_token(
            {**result.get("usage", {})}
            | job_usage(
                entry,
                self.settings,
                self.device,
                output,
                inference_s=inference_s,
                batch_outputs=int(times["outputs"]),
                batch_jobs=batch_size,
            )
        )
        register = None
        if entry.task == TRAINING_TASK and output.files.get("lora"):
            register = register_training(entry, loaded.revision, job, result, output.files["lora"][0])
        remember = self.cache.remember(entry, loaded.revision, job, result)
        if register is not None:
            remember = _both(remember, register)
        if not self.queue.complete(self.worker_id, job.id, result, also=remember):
            log.info("job %s: finished after its lease was lost; result discarded", job.id)
        elif entry.quality.enabled:
            self.quality.submit(entry, job, result)  # scored off the job's critical path

    def store(self, job: Job, output_key: str, index: int, media: MediaFile) -> dict[str, Any]:
        # One key per job and output index: a re-run after a crash overwrites, never duplicates.
        key = result_key(job.project, job.id, f"{output_key}-{index}.{media.extension}")
        self.storage.put(key, media.data, media.content_type)
        return {"url": ref(key), "content_type": media.content_type, "file_size": len(media.data), **media.properties}

    def fail(self, ctx: BatchContext, jobs: list[Job], exc: LimnerError) -> None:
        log.warning("batch of %d %s job(s) failed: %s: %s", len(jobs), jobs[0].model_id, exc.error_type, exc.message)
        for job in jobs:
            if job.id in ctx.lost:
                continue
            if job.id in ctx.canceled:
                self.queue.finish_canceled(self.worker_id, job.id)
                continue
            self.queue.fail(self.worker_id, job.id, exc.error_type, exc.message, retry=exc.retryable)
        self.coordinators.after(jobs)


def _both(
    first: Callable[[Connection], None] | None, second: Callable[[Connection], None]
) -> Callable[[Connection], None]:
    def run(conn: Connection) -> None:
        if first is not None:
            first(conn)
        second(conn)

    return run


def classify(exc: BaseException) -> LimnerError:
    """Name a model's exception by kind: out of memory, or a model error."""
    if isinstance(exc, LimnerError):
        return exc
    if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError":
        return OutOfMemory(f"out of memory: {exc}")
    return ModelError(f"{type(exc).__name__}: {exc}")
