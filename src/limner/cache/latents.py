"""Intermediate latents of finished diffusion jobs, for approximate caching (NIRVANA).

One safetensors file per job (``$LIMNER_HOME/cache-latents/<project>/<model>/<job>.safetensors``):
a tensor per saved step (``step_<K>``), the prompt's embedding (``prompt_embedding``), and
string metadata (model, revision and group keys, prompt, total steps). Files are written
atomically, read with safetensors' numpy API (no torch here), and kept under a size budget
(``LIMNER_CACHE_LATENT_BUDGET_MB``) least recently used first: a file's mtime is its last use,
touched on every read, so several worker processes on one machine share one LRU without a
lock. The folder per project is the tenancy boundary: a lookup only lists its own scope.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from safetensors import SafetensorError, safe_open
from safetensors.numpy import save_file

log = logging.getLogger("limner.cache")
SUFFIX = ".safetensors"
EMBEDDING = "prompt_embedding"


@dataclass(frozen=True)
class LatentRecord:
    path: Path
    job_id: str
    model_id: str
    revision_key: str
    group_key: str
    prompt: str
    total_steps: int
    steps: tuple[int, ...]
    embedding: np.ndarray[Any, np.dtype[np.float32]]


def _slug(value: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", value)[:64] + "-" + hashlib.sha256(value.encode()).hexdigest()[:8]


class LatentStore:
    def __init__(self, root: Path, budget_bytes: int) -> None:
        self.root = root
        self.budget_bytes = budget_bytes
        self._records: dict[Path, tuple[int, LatentRecord]] = {}  # path -> (mtime_ns at read, record)
        self._lock = threading.Lock()

    def folder(self, scope: str, model_id: str) -> Path:
        return self.root / _slug(scope) / _slug(model_id)

    # -- writing ---------------------------------------------------------------------------

    def save(
        self,
        scope: str,
        model_id: str,
        job_id: str,
        *,
        revision_key: str,
        group_key: str,
        prompt: str,
        embedding: np.ndarray[Any, Any],
        total_steps: int,
        latents: dict[int, np.ndarray[Any, Any]],
    ) -> Path | None:
        """Store a job's step latents (``{K: latent after K steps}``); None when there is
        nothing to keep or the file alone would not fit the budget."""
        if not latents:
            return None
        tensors = {f"step_{k}": np.ascontiguousarray(v) for k, v in sorted(latents.items())}
        tensors[EMBEDDING] = np.ascontiguousarray(embedding, dtype=np.float32)
        size = sum(t.nbytes for t in tensors.values())
        if size > self.budget_bytes:
            log.info("latents of %s (%d bytes) exceed the whole budget; not kept", job_id, size)
            return None
        folder = self.folder(scope, model_id)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{_slug(job_id)}{SUFFIX}"
        tmp = folder / f".{path.name}.tmp-{os.getpid()}-{threading.get_ident()}"
        metadata = {
            "job_id": job_id,
            "model_id": model_id,
            "scope": scope,
            "revision_key": revision_key,
            "group_key": group_key,
            "prompt": prompt,
            "total_steps": str(total_steps),
            "steps": ",".join(str(k) for k in sorted(latents)),
            "created_at": str(time.time()),
        }
        save_file(tensors, str(tmp), metadata=metadata)
        os.replace(tmp, path)  # readers see a whole file or none
        self.enforce_budget(keep=path)
        return path

    def enforce_budget(self, keep: Path | None = None) -> int:
        """Delete least recently used files until the store fits its budget; returns how many."""
        files: list[tuple[float, int, Path]] = []
        for scope_dir in self._dirs(self.root):
            for model_dir in self._dirs(scope_dir):
                for entry in os.scandir(model_dir):
                    if entry.name.endswith(SUFFIX) and not entry.name.startswith("."):
                        try:
                            stat = entry.stat()
                        except FileNotFoundError:
                            continue  # another worker evicted it meanwhile
                        files.append((stat.st_mtime, stat.st_size, Path(entry.path)))
        total = sum(size for _, size, _ in files)
        evicted = 0
        for _, size, path in sorted(files):
            if total <= self.budget_bytes:
                break
            if path == keep:
                continue
            try:
                path.unlink()
                evicted += 1
            except FileNotFoundError:
                pass
            total -= size
            with self._lock:
                self._records.pop(path, None)
        return evicted

    def total_bytes(self) -> int:
        return sum(
            entry.stat().st_size
            for scope_dir in self._dirs(self.root)
            for model_dir in self._dirs(scope_dir)
            for entry in os.scandir(model_dir)
            if entry.name.endswith(SUFFIX) and not entry.name.startswith(".")
        )

    # -- reading ---------------------------------------------------------------------------

    def records(self, scope: str, model_id: str) -> list[LatentRecord]:
        """Every stored job of this scope and model (headers read once per file and cached)."""
        folder = self.folder(scope, model_id)
        if not folder.is_dir():
            return []
        found: list[LatentRecord] = []
        for entry in os.scandir(folder):
            if not entry.name.endswith(SUFFIX) or entry.name.startswith("."):
                continue
            path = Path(entry.path)
            with self._lock:
                cached = self._records.get(path)
            if cached is not None:
                found.append(cached[1])
                continue
            record = self._read(path)
            if record is not None:
                with self._lock:
                    self._records[path] = (0, record)
                found.append(record)
        live = {r.path for r in found}
        with self._lock:  # forget files another process evicted
            for path in [p for p in self._records if p.parent == folder and p not in live]:
                del self._records[path]
        return found

    def _read(self, path: Path) -> LatentRecord | None:
        try:
            with safe_open(str(path), framework="np") as handle:
                meta = handle.metadata() or {}
                embedding = handle.get_tensor(EMBEDDING)
        except (OSError, SafetensorError) as exc:
            log.info("skipping unreadable latent file %s: %s", path, exc)
            return None
        try:
            steps = tuple(int(k) for k in meta.get("steps", "").split(",") if k)
            return LatentRecord(
                path=path,
                job_id=meta["job_id"],
                model_id=meta["model_id"],
                revision_key=meta["revision_key"],
                group_key=meta["group_key"],
                prompt=meta.get("prompt", ""),
                total_steps=int(meta["total_steps"]),
                steps=steps,
                embedding=np.asarray(embedding, dtype=np.float32),
            )
        except (KeyError, ValueError) as exc:
            log.info("skipping latent file %s with bad metadata: %s", path, exc)
            return None

    def load(self, record: LatentRecord, step: int) -> np.ndarray[Any, Any] | None:
        """The latent after ``step`` steps, or None if the file went meanwhile. Marks the file used."""
        try:
            with safe_open(str(record.path), framework="np") as handle:
                latent: np.ndarray[Any, Any] = handle.get_tensor(f"step_{step}")
            os.utime(record.path)
        except (OSError, SafetensorError):
            with self._lock:
                self._records.pop(record.path, None)
            return None
        return latent

    @staticmethod
    def _dirs(folder: Path) -> list[Path]:
        try:
            return [Path(e.path) for e in os.scandir(folder) if e.is_dir()]
        except FileNotFoundError:
            return []
