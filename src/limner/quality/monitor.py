"""Quality monitoring in the worker, off the request's critical path.

A job is completed first; then its outputs are queued to a background thread that scores
them with CLIP (text-image alignment), stores the scores and image features, adds a
``quality`` object to the job's result, logs to MLflow, and, every ``window`` outputs of a
model, computes the window's FID against the model's reference images and raises a drift
alert when quality fell. A worker that dies loses at most the scores still queued.

FID features: CLIP image embeddings (the FD-CLIP variant). The Inception-v3 weights that
classic FID uses ship in no registry package and torchvision cannot be installed beside this
torch, while the CLIP model is already here for the scores; CLIP features also track human
judgement of modern generators better (Kynkäänniemi et al., 2023). The reference set's
statistics are computed once per folder and CLIP model and kept as safetensors.
"""

from __future__ import annotations

import hashlib
import io
import logging
import queue
import threading
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from limner.cache.store import stored_files
from limner.catalog.entry import CatalogEntry
from limner.errors import ModelUnavailable
from limner.quality.clip import ClipScorer
from limner.quality.drift import Window, judge
from limner.quality.frechet import frechet_distance, gaussian
from limner.quality.store import QualityStore
from limner.quality.tracking import MlflowTracker
from limner.settings import Settings
from limner.storage import Storage
from limner.store.engine import Engines
from limner.store.records import Job

log = logging.getLogger("limner.quality")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")


class QualityMonitor:
    def __init__(self, settings: Settings, engines: Engines, storage: Storage, device: str = "cpu") -> None:
        self.settings = settings
        self.storage = storage
        self.store = QualityStore(engines)
        self.device = device
        self.tracker = MlflowTracker(settings.mlflow_tracking_uri, (settings.home / "mlflow-artifacts").as_uri())
        self.scored = 0
        self._scorer: ClipScorer | None = None
        self._unavailable: str | None = None
        self._mlflow_ok = True
        self._references: dict[str, tuple[Any, Any]] = {}
        self._queue: queue.Queue[tuple[CatalogEntry, Job, dict[str, Any]] | None] = queue.Queue(maxsize=1000)
        self._thread: threading.Thread | None = None

    def submit(self, entry: CatalogEntry, job: Job, result: dict[str, Any]) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="quality", daemon=True)
            self._thread.start()
        try:
            self._queue.put_nowait((entry, job, result))
        except queue.Full:
            log.warning("quality queue full; job %s is not scored", job.id)

    def stop(self, timeout: float = 5.0) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout)

    def drain(self) -> None:
        """Wait until everything queued so far is scored (tests, shutdown)."""
        self._queue.join()

    def _loop(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                self.process(*item)
            except Exception as exc:  # monitoring must never take the worker down
                log.warning("quality scoring failed: %s: %s", type(exc).__name__, exc)
            finally:
                self._queue.task_done()

    # -- one job ---------------------------------------------------------------------------

    def scorer(self) -> ClipScorer | None:
        if self._scorer is None and self._unavailable is None:
            try:
                self._scorer = ClipScorer(self.settings.clip_model, self.settings.home / "models", self.device)
            except ModelUnavailable as exc:
                self._unavailable = exc.message
                log.warning("quality scores are off: %s", exc.message)
        return self._scorer

    def process(self, entry: CatalogEntry, job: Job, result: dict[str, Any]) -> None:
        scorer = self.scorer()
        if scorer is None:
            return
        images: list[Image.Image] = [Image.open(io.BytesIO(self.storage.get(key))) for key in stored_files(result)]
        if not images:
            return
        scores, features = scorer.score(images, str(job.input.get("prompt") or ""))
        keep = entry.quality.clip_score
        self.store.add_scores(
            job.id,
            entry.id,
            [(i, scores[i] if keep else None, features[i].tobytes()) for i in range(len(images))],
        )
        self.scored += len(images)
        quality: dict[str, Any] = {"clip_model": scorer.revision}
        if keep:
            quality["clip_score"] = [round(s, 4) for s in scores]
        if self.store.window_due(entry.id, entry.quality.window):
            quality["window"] = self.close_window(entry, scorer)
        self.store.merge_result(job.id, quality)
        if keep:
            for score in scores:
                self._track(entry.id, {"clip_score": score})

    def close_window(self, entry: CatalogEntry, scorer: ClipScorer) -> dict[str, Any]:
        rows = self.store.recent(entry.id, entry.quality.window)
        clip = [s for s, _ in rows if s is not None]
        feats = np.stack([np.frombuffer(f, dtype=np.float32) for _, f in rows if f is not None])
        fid = None
        if entry.quality.fid_reference:
            ref_mu, ref_sigma = self.reference(entry.quality.fid_reference, scorer)
            fid = frechet_distance(*gaussian(feats), ref_mu, ref_sigma)
        window = Window(len(rows), float(np.mean(clip)) if clip else None, fid)
        alert = judge(entry.quality, window, self.store.baseline(entry.id))
        self.store.add_window(entry.id, window, alert)
        if alert:
            log.warning("quality drift on %s: %s", entry.id, alert, extra={"model_id": entry.id, "alert": alert})
        metrics = {k: v for k, v in (("clip_window_mean", window.clip_mean), ("fid", fid)) if v is not None}
        self._track(entry.id, metrics, {"drift_alert": alert or ""})
        return {"samples": window.samples, "clip_mean": window.clip_mean, "fid": fid, "alert": alert}

    def reference(self, folder: str, scorer: ClipScorer) -> tuple[Any, Any]:
        """Mean and covariance of the reference images' features (computed once, then cached
        in memory and as safetensors under LIMNER_HOME/quality)."""
        from safetensors.numpy import load_file, save_file

        path = Path(folder.removeprefix("file://"))
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if len(files) < 2:
            raise ModelUnavailable(f"quality.fid_reference {path} needs at least two images")
        digest = hashlib.sha256(
            "|".join([scorer.revision, *(f"{p.name}:{p.stat().st_size}" for p in files)]).encode()
        ).hexdigest()[:16]
        if digest in self._references:
            return self._references[digest]
        cached = self.settings.home / "quality" / f"reference-{digest}.safetensors"
        if cached.is_file():
            stats = load_file(str(cached))
        else:
            feats = np.concatenate(
                [scorer.image_features([Image.open(p) for p in files[i : i + 16]]) for i in range(0, len(files), 16)]
            )
            mu, sigma = gaussian(feats)
            stats = {"mu": mu, "sigma": sigma}
            cached.parent.mkdir(parents=True, exist_ok=True)
            save_file(stats, str(cached))
        self._references[digest] = (stats["mu"], stats["sigma"])
        return self._references[digest]

    def _track(self, model_id: str, metrics: dict[str, float], tags: dict[str, str] | None = None) -> None:
        if not self._mlflow_ok or not metrics:
            return
        try:
            self.tracker.log(model_id, metrics, self.scored, tags)
        except Exception as exc:
            self._mlflow_ok = False
            log.warning("MLflow logging is off: %s: %s", type(exc).__name__, exc)
