"""What a worker reports with each heartbeat (the API's /metrics reads it from the store)."""

from __future__ import annotations

import os
from typing import Any

from limner.cache.worker import WorkerCache
from limner.quality.monitor import QualityMonitor
from limner.runtime.residency import Residency


def rss_bytes() -> int:
    """Resident memory of this process (Linux /proc; 0 where unavailable)."""
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def worker_stats(residency: Residency, batches_run: int, cache: WorkerCache, quality: QualityMonitor) -> dict[str, Any]:
    return {
        "rss_bytes": rss_bytes(),
        "resident_bytes": residency.used_bytes,
        "budget_bytes": residency.budget_bytes,
        "model_loads": residency.loads,
        "model_evictions": residency.evictions,
        "batches_run": batches_run,
        **cache.counters,
        "quality_scored": quality.scored,
    }
