"""What a route knows about its targets right now, read from the store: each target's recent
run time, its queue (queued and running jobs), how many can run at once (workers alive for a
local model, ``max_concurrency`` for a provider), and its health.

Jobs are not all the same size: a 30-step job takes fifteen times a 2-step one. So the store's
history gives a rate, seconds per *work unit* (denoising steps x outputs, or tokens for text;
``work_units``), and a job's expected time is the work ahead of it plus its own, at that rate:

- ahead of it: the queued jobs it will not overtake (its priority or higher: a high-priority
  job waits only behind other high ones), plus what is left of the running jobs;
- divided by the target's parallelism, plus its own units at the rate.

What this does not see: other models' jobs on the same local workers, and a worker's load
time for a model it does not hold.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, func, select

from limner.catalog.entry import CatalogEntry
from limner.routing.health import Health, TargetHealth
from limner.store.schema import jobs, workers
from limner.store.states import QUEUED, RUNNING, SUCCEEDED

RECENT = 20  # jobs per target the rate is taken over
WORKER_WINDOW_S = 10.0
MAX_QUEUE_READ = 2000  # queued jobs per target whose size is read; the rest count as the average
# Claim order by priority: a job of one priority waits behind queued jobs of these.
AHEAD: Mapping[str, tuple[str, ...]] = {
    "high": ("high",),
    "normal": ("high", "normal"),
    "low": ("high", "normal", "low"),
}


def work_units(fields: Mapping[str, Any], defaults: Mapping[str, Any]) -> float:
    """A job's size in the units its run time scales with: denoising steps x outputs for the
    diffusion tasks, tokens for text, else 1 (one call)."""

    def get(name: str) -> Any:
        value = fields.get(name)
        return defaults.get(name) if value is None else value

    outputs = get("num_outputs")
    outputs = outputs if isinstance(outputs, int) and outputs > 0 else 1
    steps = get("num_inference_steps")
    if isinstance(steps, int) and steps > 0:
        return float(steps * outputs)
    tokens = get("max_tokens")
    if isinstance(tokens, int) and tokens > 0:
        return float(tokens)
    return float(outputs)


@dataclass(frozen=True)
class Signal:
    target: str
    p50_s: float | None  # run time (started to finished) of recent successes; None: no history
    queued: int
    running: int
    parallel: int
    health: Health
    s_per_unit: float | None = None  # median of run time / work units over recent successes
    queued_units: Mapping[str, float] = field(default_factory=dict)  # by priority
    running_left_s: float = 0.0  # what is left of the running jobs at the rate

    @property
    def busy(self) -> float:
        return (self.queued + self.running) / max(self.parallel, 1)

    def expected_s(self, units: float = 1.0, priority: str = "normal") -> float | None:
        """Expected wait plus run time of a job of ``units`` sent now at ``priority``; None
        when there is no history."""
        if self.s_per_unit is None:
            return None
        ahead = sum(self.queued_units.get(p, 0.0) for p in AHEAD.get(priority, AHEAD["low"]))
        wait = (ahead * self.s_per_unit + self.running_left_s) / max(self.parallel, 1)
        return wait + units * self.s_per_unit

    def as_dict(self, now: float) -> dict[str, object]:
        expected = self.expected_s()
        return {
            "p50_s": None if self.p50_s is None else round(self.p50_s, 4),
            "s_per_unit": None if self.s_per_unit is None else round(self.s_per_unit, 6),
            "queued": self.queued,
            "queued_units": dict(self.queued_units),
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
    now = time.time()
    live = (workers.c.stopped_at.is_(None), workers.c.heartbeat_at >= now - WORKER_WINDOW_S)
    alive = conn.execute(select(func.count()).select_from(workers).where(*live)).scalar_one()
    states = health.all(conn)
    out = {}
    for entry in entries:
        seconds, rates = _history(conn, entry)
        rate = statistics.median(rates) if rates else None
        queued, running = counts.get((entry.id, QUEUED), 0), counts.get((entry.id, RUNNING), 0)
        out[entry.id] = Signal(
            target=entry.id,
            p50_s=statistics.median(seconds) if seconds else None,
            queued=queued,
            running=running,
            parallel=entry.runtime.max_concurrency if entry.remote else max(int(alive), 1),
            health=states.get(entry.id, Health(entry.id)),
            s_per_unit=rate,
            queued_units=_queued_units(conn, entry, queued) if queued else {},
            running_left_s=_running_left(conn, entry, rate, now) if running and rate is not None else 0.0,
        )
    return out


def _history(conn: Connection, entry: CatalogEntry) -> tuple[list[float], list[float]]:
    """Run seconds of the target's recent successes, and each one's seconds per work unit."""
    rows = conn.execute(
        select(jobs.c.finished_at - jobs.c.started_at, jobs.c.input)
        .where(jobs.c.model_id == entry.id, jobs.c.status == SUCCEEDED, jobs.c.started_at.is_not(None))
        .order_by(jobs.c.finished_at.desc())
        .limit(RECENT)
    ).all()
    seconds = [float(s) for s, _ in rows if s is not None]
    rates = [float(s) / work_units(fields or {}, entry.defaults) for s, fields in rows if s is not None]
    return seconds, rates


def _queued_units(conn: Connection, entry: CatalogEntry, queued: int) -> dict[str, float]:
    rows = conn.execute(
        select(jobs.c.priority, jobs.c.input)
        .where(jobs.c.model_id == entry.id, jobs.c.status == QUEUED)
        .order_by(jobs.c.rank)
        .limit(MAX_QUEUE_READ)
    ).all()
    units: dict[str, float] = {}
    for priority, fields in rows:
        units[priority] = units.get(priority, 0.0) + work_units(fields or {}, entry.defaults)
    if queued > len(rows) and rows:  # a very long queue: the unread part at the read part's average
        scale = queued / len(rows)
        units = {p: u * scale for p, u in units.items()}
    return units


def _running_left(conn: Connection, entry: CatalogEntry, rate: float, now: float) -> float:
    rows = conn.execute(
        select(jobs.c.started_at, jobs.c.input).where(jobs.c.model_id == entry.id, jobs.c.status == RUNNING)
    ).all()
    left = 0.0
    for started, fields in rows:
        full = work_units(fields or {}, entry.defaults) * rate
        left += max(full - (now - float(started or now)), 0.0)
    return left
