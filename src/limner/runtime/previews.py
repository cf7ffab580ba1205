"""Where a batch's step previews go: a file in storage, then the job's ``progress.preview_url``.

The adapter decodes a preview on its own thread (between two denoising steps) and hands the
picture here; encoding, the storage write and the progress write run on one thread of this
sink's, in order, so the next step does not wait for a disk or the job store. Each preview is
written at once (not coalesced with the 0.2 s progress writes), so none is lost, and
``close`` waits for the last before the batch's jobs complete.
"""

from __future__ import annotations

import io
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

from PIL import Image

from limner.storage import Storage
from limner.storage.base import ref, result_key

log = logging.getLogger("limner.worker")
QUALITY = 80  # a preview is a glance, not a result: small JPEGs


class PreviewTarget(Protocol):
    def preview(self, job_id: str, url: str) -> None:
        """Set the job's preview_url and write its progress now."""


class PreviewSink:
    def __init__(self, storage: Storage, target: PreviewTarget, projects: dict[str, str]) -> None:
        self.storage = storage
        self.target = target
        self.projects = projects
        self.published = 0
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="previews")

    def publish(self, job_id: str, step: int, image: Image.Image) -> None:
        """Store ``image`` as the job's preview at ``step`` (returns at once)."""
        self._pool.submit(self._write, job_id, step, image.copy())

    def close(self) -> None:
        self._pool.shutdown(wait=True)

    def _write(self, job_id: str, step: int, image: Image.Image) -> None:
        try:
            buffer = io.BytesIO()
            image.convert("RGB").save(buffer, format="JPEG", quality=QUALITY)
            # One file per step: a client that fetches an older URL late still gets that picture.
            key = result_key(self.projects[job_id], job_id, f"preview-{step:05d}.jpg")
            self.storage.put(key, buffer.getvalue(), "image/jpeg")
            self.target.preview(job_id, ref(key))
            self.published += 1
        except Exception as exc:  # a lost preview must never fail the job
            log.warning("job %s: preview at step %d not stored: %s", job_id, step, type(exc).__name__)
