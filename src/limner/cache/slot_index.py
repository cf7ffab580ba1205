"""The slots method's index: each model's cache entries grouped by the key of their prompt's
hard slots (``PromptSlots.key``), so a lookup is one dict access, whatever the cache size.

Like the faiss index it is an accelerator over the job store, which stays the truth: it is
persisted beside the store (``$LIMNER_HOME/cache-index/*.slots.npz``, named with the lexicon
version so a lexicon change rebuilds it), loaded at start and caught up from the store before
each lookup, so entries written by other workers are found. One catch-up serves every model:
it reads the entries after the last sequence number seen, by primary key.
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

import numpy as np

from limner.cache.semantic import REREAD, SAVE_EVERY_S
from limner.cache.slots import VERSION, parse
from limner.cache.store import CacheStore

log = logging.getLogger("limner.cache")


@dataclass
class _ModelSlots:
    by_key: dict[str, set[int]] = field(default_factory=dict)
    key_of: dict[int, str] = field(default_factory=dict)
    dirty: bool = False
    saved_at: float = 0.0


class SlotIndex:
    def __init__(self, folder: Path, store: CacheStore) -> None:
        self.folder = folder
        self.store = store
        self._models: dict[str, _ModelSlots] = {}
        self._scanned = 0  # the newest sequence number read, of any model
        self._recent: set[int] = set()  # sequence numbers read within REREAD of it
        self._lock = threading.Lock()

    def _path(self, model_id: str) -> Path:
        slug = re.sub(r"[^A-Za-z0-9._-]+", "_", model_id)
        return self.folder / f"{slug}-{hashlib.sha256(model_id.encode()).hexdigest()[:8]}.{VERSION}.slots.npz"

    def _open(self, model_id: str) -> _ModelSlots:
        if model_id in self._models:
            return self._models[model_id]
        state = _ModelSlots()
        path = self._path(model_id)
        if path.is_file():
            try:
                with np.load(path) as data:
                    for seq, key in zip(data["seqs"].tolist(), data["keys"].tolist(), strict=True):
                        state.key_of[int(seq)] = key.decode()
                        state.by_key.setdefault(key.decode(), set()).add(int(seq))
                state.saved_at = time.time()
            except (OSError, ValueError, KeyError) as exc:  # a damaged file is rebuilt from the store
                log.warning("slot index %s unreadable (%s); rebuilding it", path, exc)
                state = _ModelSlots()
        self._models[model_id] = state
        return state

    def _catch_up(self) -> None:
        while True:
            rows = self.store.entries_after(self._scanned)
            self._add(rows)
            if len(rows) < 5000:
                break
        # Entries of other workers can commit out of sequence order (PostgreSQL sequences): the
        # holes among the last REREAD sequence numbers are looked up again. Holes left by dropped
        # entries stay holes (one primary-key IN query); none at all in the common case.
        floor = max(self._scanned - REREAD, 0)
        holes = [s for s in range(floor + 1, self._scanned) if s not in self._recent]
        if holes:
            self._add(self.store.entries_in(holes))
        self._recent = {s for s in self._recent if s > floor}

    def _add(self, rows: list[tuple[int, str, str]]) -> None:
        for seq, model_id, prompt in rows:
            self._scanned = max(self._scanned, seq)
            self._recent.add(seq)
            state = self._open(model_id)
            if seq not in state.key_of:
                key = parse(prompt).key  # an entry without a prompt gets the empty prompt's key
                state.key_of[seq] = key
                state.by_key.setdefault(key, set()).add(seq)
                state.dirty = True

    def candidates(self, model_id: str, key: str) -> list[int]:
        """Entries whose prompt has these hard slots, newest first."""
        with self._lock:
            self._catch_up()
            state = self._open(model_id)
            self._maybe_save(model_id, state)
            return sorted(state.by_key.get(key, ()), reverse=True)

    def size(self, model_id: str) -> int:
        with self._lock:
            self._catch_up()
            return len(self._open(model_id).key_of)

    def forget(self, model_id: str, seqs: list[int]) -> None:
        with self._lock:
            state = self._open(model_id)
            for seq in seqs:
                key = state.key_of.pop(seq, None)
                if key is not None:
                    state.by_key[key].discard(seq)
                    state.dirty = True

    def _maybe_save(self, model_id: str, state: _ModelSlots, force: bool = False) -> None:
        if not state.dirty or (not force and time.time() - state.saved_at < SAVE_EVERY_S):
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self._path(model_id)
        tmp = path.with_name(path.name + f".tmp-{os.getpid()}.npz")
        seqs = np.array(list(state.key_of), dtype=np.int64)
        keys = np.array([state.key_of[s].encode() for s in state.key_of], dtype="S24")
        np.savez(tmp, seqs=seqs, keys=keys)
        os.replace(tmp, path)  # readers see the old file or the new one, never half of one
        state.dirty, state.saved_at = False, time.time()

    def save_all(self) -> None:
        with self._lock:
            for model_id, state in self._models.items():
                self._maybe_save(model_id, state, force=True)
