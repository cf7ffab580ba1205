"""Workers announce themselves, the models they hold and the jobs they run, with heartbeats."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, insert, select, update

from limner.store.engine import Engines
from limner.store.records import WorkerInfo
from limner.store.schema import workers


class WorkerRegistry:
    def __init__(self, engines: Engines) -> None:
        self.engines = engines

    def register(
        self,
        *,
        worker_id: str,
        hostname: str,
        pid: int,
        device: str,
        memory_budget_mb: int,
        stats: dict[str, Any] | None = None,
    ) -> None:
        now = time.time()
        with self.engines.write.begin() as conn:
            conn.execute(delete(workers).where(workers.c.id == worker_id))
            conn.execute(
                insert(workers).values(
                    id=worker_id,
                    hostname=hostname,
                    pid=pid,
                    device=device,
                    memory_budget_mb=memory_budget_mb,
                    models=[],
                    current_jobs=[],
                    started_at=now,
                    heartbeat_at=now,
                    stopped_at=None,
                    stats=stats,
                )
            )

    def heartbeat(
        self,
        worker_id: str,
        *,
        models: Sequence[str],
        current_jobs: Sequence[str],
        stats: dict[str, Any] | None = None,
    ) -> None:
        values: dict[str, Any] = {
            "heartbeat_at": time.time(),
            "models": list(models),
            "current_jobs": list(current_jobs),
        }
        if stats is not None:
            values["stats"] = stats
        with self.engines.write.begin() as conn:
            conn.execute(update(workers).where(workers.c.id == worker_id).values(**values))

    def stopped(self, worker_id: str) -> None:
        with self.engines.write.begin() as conn:
            conn.execute(
                update(workers)
                .where(workers.c.id == worker_id)
                .values(stopped_at=time.time(), current_jobs=[], models=[])
            )

    def active(self, within_s: float) -> list[WorkerInfo]:
        """Workers that have not stopped and sent a heartbeat in the last ``within_s`` seconds."""
        cutoff = time.time() - within_s
        with self.engines.read.connect() as conn:
            rows = conn.execute(
                select(workers)
                .where(workers.c.stopped_at.is_(None), workers.c.heartbeat_at >= cutoff)
                .order_by(workers.c.started_at)
            )
            return [WorkerInfo.from_row(r) for r in rows]

    def prune(self, older_than_s: float) -> int:
        """Forget workers that have been silent for a long time."""
        cutoff = time.time() - older_than_s
        with self.engines.write.begin() as conn:
            return conn.execute(delete(workers).where(workers.c.heartbeat_at < cutoff)).rowcount
