"""What a route knows about its targets right now, read from the store: each target's recent
run time (p50 of its last jobs), its queue (queued and running jobs), how many can run at once
(workers alive for a local model, ``max_concurrency`` for a provider), and its health."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

from sqlalchemy import Connection, func, select

from limner.catalog.entry import CatalogEntry
from limner.routing.health import Health, TargetHealth
from limner.store.schema import jobs, workers
from limner.store.states import QUEUED, RUNNING, SUCCEEDED

RECENT = 20  # jobs per target the p50 is taken over
WORKER_WINDOW_S = 10.0


@dataclass(frozen=True)
class Signal:
    target: str
    p50_s: float | None  # run time (started to finished) of recent successes; None: no history
    queued: int
    running: int
    parallel: int
    health: Health

    @property
    def busy(self) -> float:
        return (self.queued + self.running) / max(self.parallel, 1)

    def expected_s(self) -> float | None:
        """Expected wait plus run time of a job sent now; None when there is no history."""
        if self.p50_s is None:
            return None
        return (self.busy + 1) * self.p50_s

    def as_dict(self, now: float) -> dict[str, object]:
        expected = self.expected_s()
        return {
            "p50_s": None if self.p50_s is None else round(self.p50_s, 4),
            "queued": self.queued,
            "running": self.running,
            "parallel": self.parallel,
            "expected_s": None if expected is None else round(expected, 4),
            "health": self.health.as_dict(now),
        }


def read_signals(conn: Connection, entries: list[CatalogEntry], health: TargetHealth) -> dict[str, Signal]:
    ids = [e.id for e in entries]
    counts: dict[tuple[str, str], int] = {
        (r.model_id, r.status): r.n
        for r in conn.execute(
            select(jobs.c.model_id, jobs.c.status, func.count().label("n"))
            .where(jobs.c.model_id.in_(ids), jobs.c.status.in_((QUEUED, RUNNING)))
            .group_by(jobs.c.model_id, jobs.c.status)
        )
    }
    cutoff = time.time() - WORKER_WINDOW_S
    live = (workers.c.stopped_at.is_(None), workers.c.heartbeat_at >= cutoff)
    alive = conn.execute(select(func.count()).select_from(workers).where(*live)).scalar_one()
    states = health.all(conn)
    out = {}
    for entry in entries:
        runs = conn.execute(
            select(jobs.c.finished_at - jobs.c.started_at)
            .where(jobs.c.model_id == entry.id, jobs.c.status == SUCCEEDED, jobs.c.started_at.is_not(None))
            .order_by(jobs.c.finished_at.desc())
            .limit(RECENT)
        ).scalars()
        seconds = [float(s) for s in runs if s is not None]
        out[entry.id] = Signal(
            target=entry.id,
            p50_s=statistics.median(seconds) if seconds else None,
            queued=counts.get((entry.id, QUEUED), 0),
            running=counts.get((entry.id, RUNNING), 0),
            parallel=entry.runtime.max_concurrency if entry.remote else max(int(alive), 1),
            health=states.get(entry.id, Health(entry.id)),
        )
    return out
