"""Each route target's health in the store, so every API replica and worker sees the same
cooldowns and a restart forgets none: retryable failures in a row, and when a cooldown ends.

A target's failures count across every route that names it (a provider that is down is down
for all of them); each route's own ``cooldown.failures`` decides when that count starts its
cooldown. A success resets the count. A provider's 429 with ``Retry-After`` cools the target
down for that long at once (the remote lane reports it).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import Connection, select, update

from limner.store.engine import Engines
from limner.store.schema import route_targets


@dataclass(frozen=True)
class Health:
    target: str
    failures: int = 0
    cooldown_until: float | None = None
    last_error_type: str | None = None

    def cooling(self, now: float) -> bool:
        return self.cooldown_until is not None and self.cooldown_until > now

    def as_dict(self, now: float) -> dict[str, object]:
        return {
            "failures": self.failures,
            "cooling_down": self.cooling(now),
            "cooldown_until": self.cooldown_until if self.cooling(now) else None,
            "last_error_type": self.last_error_type,
        }


class TargetHealth:
    def __init__(self, engines: Engines) -> None:
        self.engines = engines

    def all(self, conn: Connection | None = None) -> dict[str, Health]:
        if conn is None:
            with self.engines.read.connect() as read:
                return self.all(read)
        rows = conn.execute(select(route_targets))
        return {r.target: Health(r.target, r.failures, r.cooldown_until, r.last_error_type) for r in rows}

    def failed(self, conn: Connection, target: str, error_type: str, threshold: int, seconds: float) -> Health:
        """Count a retryable failure; start the cooldown once ``threshold`` are in a row."""
        now = time.time()
        current = self.all(conn).get(target, Health(target))
        failures = current.failures + 1
        until = now + seconds if failures >= threshold else current.cooldown_until
        if failures >= threshold:
            failures = 0  # the cooldown starts a new count: after it, one more failure is one
        health = Health(target, failures, until, error_type)
        self._write(conn, health, now)
        return health

    def succeeded(self, conn: Connection, target: str) -> None:
        conn.execute(
            update(route_targets)
            .where(route_targets.c.target == target, route_targets.c.failures > 0)
            .values(failures=0, updated_at=time.time())
        )

    def cool_down(self, target: str, seconds: float, error_type: str) -> None:
        """A cooldown of ``seconds`` from now (a provider's Retry-After)."""
        now = time.time()
        with self.engines.write.begin() as conn:
            current = self.all(conn).get(target, Health(target))
            until = max(now + seconds, current.cooldown_until or 0.0)
            self._write(conn, Health(target, current.failures, until, error_type), now)

    def _write(self, conn: Connection, health: Health, now: float) -> None:
        values = {
            "failures": health.failures,
            "cooldown_until": health.cooldown_until,
            "last_error_type": health.last_error_type,
            "updated_at": now,
        }
        moved = conn.execute(update(route_targets).where(route_targets.c.target == health.target).values(**values))
        if not moved.rowcount:
            conn.execute(route_targets.insert().values(target=health.target, **values))
