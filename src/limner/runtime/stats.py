"""What a worker reports with each heartbeat (the API's /metrics and /v1/models read it from
the store): memory, model loads, cache counters, and the models it cannot serve, with why."""

from __future__ import annotations

import os
from typing import Any

from limner.cache.worker import WorkerCache
from limner.catalog import Catalog
from limner.catalog.availability import HubEnv, HubProbe, device_problem, local_problem
from limner.quality.monitor import QualityMonitor
from limner.runtime.residency import Residency


def rss_bytes() -> int:
    """Resident memory of this process (Linux /proc; 0 where unavailable)."""
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def unavailable(catalog: Catalog, device: str) -> dict[str, str]:
    """The models this worker cannot run here (packages, remote-code opt-in, weights, device),
    by id, with the reason. Checked once, at start: none of it changes while a worker runs."""
    hub = HubEnv.from_environ(os.environ)
    probe = HubProbe(hub)
    out: dict[str, str] = {}
    for entry in catalog:
        if entry.family == "faults":
            continue
        problem = local_problem(entry, hub, probe) or device_problem(entry, [device])
        if problem:
            out[entry.id] = problem
    return out


class WorkerReport:
    def __init__(self, catalog: Catalog, device: str) -> None:
        self.unavailable = unavailable(catalog, device)

    def stats(
        self, residency: Residency, batches_run: int, cache: WorkerCache, quality: QualityMonitor
    ) -> dict[str, Any]:
        return {
            "rss_bytes": rss_bytes(),
            "resident_bytes": residency.used_bytes,
            "budget_bytes": residency.budget_bytes,
            "model_loads": residency.loads,
            "model_evictions": residency.evictions,
            "batches_run": batches_run,
            **cache.counters,
            "quality_scored": quality.scored,
            "unavailable": self.unavailable,
        }
