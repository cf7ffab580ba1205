"""Which models stay loaded: least recently used first out, under a memory budget.

LoRAs loaded onto a resident model count as part of that model's size (its adapter keeps
``LoadedModel.size_bytes`` up to date). After a batch, ``fit`` sheds idle LoRAs (each
adapter's least recently used first) before it evicts whole models.
"""

from __future__ import annotations

import gc
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable

from limner.adapters.base import Adapter, LoadedModel, LoadReporter, log_only
from limner.catalog.entry import CatalogEntry

log = logging.getLogger("limner.residency")
MB = 1024 * 1024
# Loads an entry's model (its family's adapter, then the weights), reporting as it goes.
Loader = Callable[[CatalogEntry, LoadReporter], tuple[Adapter, LoadedModel]]


class Residency:
    """Loaded models keyed by ``CatalogEntry.residency_key`` (entries that share weights share
    one copy). Before a load, least-recently-used models are evicted until the new model's
    estimated size fits; one model is always allowed even if it alone is over the budget."""

    def __init__(self, budget_bytes: int, load: Loader) -> None:
        self.budget_bytes = budget_bytes
        self._load = load
        self._models: OrderedDict[str, tuple[Adapter, LoadedModel]] = OrderedDict()
        # Loads are serialized by _load_lock; _state guards the table only briefly, so the
        # heartbeat can list resident models while a long load is under way.
        self._load_lock = threading.Lock()
        self._state = threading.Lock()
        self.loads = 0
        self.evictions = 0
        self.lora_evictions = 0

    def get(self, entry: CatalogEntry, report: LoadReporter = log_only) -> LoadedModel:
        """The entry's loaded model, loaded now if it is not resident (``report`` hears how
        the load goes: the worker's puts it in the waiting jobs' progress and logs)."""
        key = entry.residency_key
        with self._load_lock:
            with self._state:
                if key in self._models:
                    self._models.move_to_end(key)
                    return self._models[key][1]
                self._evict_for((entry.runtime.memory_mb or 0) * MB)
            adapter, loaded = self._load(entry, report)
            with self._state:
                self._models[key] = (adapter, loaded)
                self.loads += 1
                # The estimate may have been low: make room again, keeping the model just loaded.
                self._evict_for(0, keep=1)
            return loaded

    def _evict_for(self, incoming: int, keep: int = 0) -> None:
        while len(self._models) > keep and self.used_bytes + incoming > self.budget_bytes:
            key, (adapter, loaded) = self._models.popitem(last=False)
            log.info("evicting %s (%.0f MB) to stay under %.0f MB", key, loaded.size_bytes / MB, self.budget_bytes / MB)
            adapter.unload(loaded)
            self.evictions += 1
        gc.collect()

    def fit(self, active: CatalogEntry) -> None:
        """Back under the budget after a batch that loaded LoRAs: first idle LoRAs (least
        recently used models first), then whole models other than ``active``'s."""
        with self._load_lock, self._state:
            while self.used_bytes > self.budget_bytes and self._shed_lora():
                self.lora_evictions += 1
            if self.used_bytes > self.budget_bytes:
                keep = 1 if active.residency_key in self._models else 0
                if keep:
                    self._models.move_to_end(active.residency_key)
                self._evict_for(0, keep=keep)

    def _shed_lora(self) -> bool:
        for _adapter, loaded in self._models.values():
            shed = getattr(_adapter, "shed_lora", None)
            if shed is not None and shed(loaded):
                return True
        return False

    def discard(self, key: str) -> None:
        """Unload one model now, by residency key (a Ray replica follows its multiplexing LRU)."""
        with self._load_lock, self._state:
            item = self._models.pop(key, None)
            if item is not None:
                adapter, loaded = item
                log.info("unloading %s (%.0f MB)", key, loaded.size_bytes / MB)
                adapter.unload(loaded)
                self.evictions += 1
        gc.collect()

    def clear(self) -> None:
        with self._state:
            self._evict_for(self.budget_bytes + 1)

    @property
    def used_bytes(self) -> int:
        return sum(loaded.size_bytes for _, loaded in self._models.values())

    def keys(self) -> list[str]:
        with self._state:
            return list(self._models)
