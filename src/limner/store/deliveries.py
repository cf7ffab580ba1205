"""The dispatcher's and the operator's side of the webhook outbox: claim, record, list, replay.

Several API replicas may run dispatchers on one store. Each claims due messages with a lease
(``FOR UPDATE SKIP LOCKED`` on PostgreSQL; on SQLite the conditional UPDATE runs under the
write lock), so a message is sent by one dispatcher at a time. A dispatcher that dies
mid-delivery leaves its lease to expire and another one sends the message again: delivery is
at least once, and receivers deduplicate by ``webhook-id`` as the spec asks.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, exists, insert, or_, select, update
from sqlalchemy.engine import RowMapping

from limner.store.engine import Engines
from limner.store.outbox import DELIVERED, DELIVERING, GONE, PENDING
from limner.store.schema import jobs, webhook_attempts, webhook_outbox


@dataclass(frozen=True)
class Delivery:
    id: str
    job_id: str
    event: str
    url: str
    payload: dict[str, Any]
    status: str
    attempts: int
    tries: int
    next_attempt_at: float | None
    last_status_code: int | None
    last_error: str | None
    created_at: float
    updated_at: float
    delivered_at: float | None

    @classmethod
    def from_row(cls, m: RowMapping) -> Delivery:
        return cls(**{name: m[name] for name in cls.__dataclass_fields__})

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "request_id": self.job_id,
            "event": self.event,
            "url": self.url,
            "status": self.status,
            "attempts": self.attempts,
            "next_attempt_at": self.next_attempt_at,
            "last_status_code": self.last_status_code,
            "last_error": self.last_error,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "delivered_at": self.delivered_at,
        }


@dataclass(frozen=True)
class Attempt:
    """What one try of a delivery did, and what happens next."""

    delivery_id: str
    job_id: str
    attempt: int
    started_at: float
    duration_ms: float
    status_code: int | None
    error: str | None
    response_excerpt: str | None
    outcome: str  # delivered | retry | failed | gone
    retry_at: float | None
    dispatcher: str = ""  # which dispatcher (host-pid-…) made the attempt

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


class Deliveries:
    def __init__(self, engines: Engines) -> None:
        self.engines = engines

    # -- the dispatcher --------------------------------------------------------------------

    def _due(self, now: float) -> Any:
        return or_(
            and_(webhook_outbox.c.status == PENDING, webhook_outbox.c.next_attempt_at <= now),
            and_(webhook_outbox.c.status == DELIVERING, webhook_outbox.c.lease_expires_at < now),
        )

    def has_due(self) -> bool:
        """A read that never takes the write lock: the idle dispatcher's poll."""
        with self.engines.read.connect() as conn:
            return conn.execute(select(webhook_outbox.c.id).where(self._due(time.time())).limit(1)).first() is not None

    def claim(self, owner: str, limit: int, lease_s: float) -> list[Delivery]:
        """Lease up to ``limit`` due messages. A job's messages go out one at a time, oldest
        first (never two of one job in flight), so without retries they arrive in order."""
        now = time.time()
        other = webhook_outbox.alias("other")
        in_flight = exists().where(
            other.c.job_id == webhook_outbox.c.job_id,
            other.c.status == DELIVERING,
            other.c.lease_expires_at >= now,
        )
        picked = (
            select(webhook_outbox.c.id)
            .where(self._due(now), ~in_flight)
            .order_by(webhook_outbox.c.next_attempt_at, webhook_outbox.c.created_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        if self.engines.dialect == "postgresql":
            chosen = picked.cte("picked").prefix_with("MATERIALIZED")  # evaluated once (see WorkQueue.claim)
            target = webhook_outbox.c.id.in_(select(chosen.c.id))
        else:
            target = webhook_outbox.c.id.in_(picked.scalar_subquery())
        stmt = (
            update(webhook_outbox)
            .where(target, self._due(now))
            .values(status=DELIVERING, lease_owner=owner, lease_expires_at=now + lease_s, updated_at=now)
            .returning(*webhook_outbox.c)
        )
        with self.engines.write.begin() as conn:
            claimed = sorted(
                (Delivery.from_row(r) for r in conn.execute(stmt).mappings()),
                key=lambda d: (d.next_attempt_at or 0.0, d.created_at),
            )
            keep: dict[str, Delivery] = {}
            for delivery in claimed:
                keep.setdefault(delivery.job_id, delivery)
            extra = [d.id for d in claimed if keep[d.job_id] is not d]
            if extra:  # a second message of the same job waits for the first
                conn.execute(
                    update(webhook_outbox)
                    .where(webhook_outbox.c.id.in_(extra))
                    .values(status=PENDING, lease_owner=None, lease_expires_at=None)
                )
        return list(keep.values())

    def record(self, owner: str, attempt: Attempt, dispatcher: str) -> bool:
        """Log the attempt and move the message on; False if our lease had been taken over."""
        values: dict[str, Any] = {
            "attempts": webhook_outbox.c.attempts + 1,
            "tries": webhook_outbox.c.tries + 1,
            "lease_owner": None,
            "lease_expires_at": None,
            "last_status_code": attempt.status_code,
            "last_error": attempt.error,
            "updated_at": time.time(),
        }
        if attempt.outcome == "delivered":
            values.update(status=DELIVERED, delivered_at=attempt.started_at, next_attempt_at=None)
        elif attempt.outcome == "retry":
            values.update(status=PENDING, next_attempt_at=attempt.retry_at)
        else:
            values.update(status=GONE if attempt.outcome == "gone" else "failed", next_attempt_at=None)
        with self.engines.write.begin() as conn:
            conn.execute(insert(webhook_attempts).values({**attempt.as_dict(), "dispatcher": dispatcher}))
            moved = conn.execute(
                update(webhook_outbox)
                .where(
                    webhook_outbox.c.id == attempt.delivery_id,
                    webhook_outbox.c.lease_owner == owner,
                    webhook_outbox.c.status == DELIVERING,
                )
                .values(**values)
            ).rowcount
            if moved and attempt.outcome == "gone":
                # The receiver wants no more messages about this job.
                conn.execute(
                    update(webhook_outbox)
                    .where(webhook_outbox.c.job_id == attempt.job_id, webhook_outbox.c.status == PENDING)
                    .values(status=GONE, next_attempt_at=None, updated_at=time.time())
                )
        return bool(moved)

    # -- reading and replaying -------------------------------------------------------------

    def get(self, delivery_id: str) -> Delivery | None:
        with self.engines.read.connect() as conn:
            row = conn.execute(select(webhook_outbox).where(webhook_outbox.c.id == delivery_id)).mappings().first()
        return Delivery.from_row(row) if row else None

    def find(
        self,
        *,
        job_id: str | None = None,
        status: str | None = None,
        limit: int = 100,
        before: float | None = None,
        project: str | None = None,
    ) -> list[Delivery]:
        """Newest first; with ``project``, only messages of that project's jobs."""
        query = select(webhook_outbox).order_by(webhook_outbox.c.created_at.desc()).limit(limit)
        if job_id:
            query = query.where(webhook_outbox.c.job_id == job_id)
        if project is not None:
            query = query.where(webhook_outbox.c.job_id.in_(select(jobs.c.id).where(jobs.c.project == project)))
        if status:
            query = query.where(webhook_outbox.c.status == status)
        if before is not None:
            query = query.where(webhook_outbox.c.created_at < before)
        with self.engines.read.connect() as conn:
            return [Delivery.from_row(r) for r in conn.execute(query).mappings()]

    def attempts(self, delivery_id: str) -> list[Attempt]:
        with self.engines.read.connect() as conn:
            rows = conn.execute(
                select(webhook_attempts)
                .where(webhook_attempts.c.delivery_id == delivery_id)
                .order_by(webhook_attempts.c.id)
            ).mappings()
            return [Attempt(**{k: r[k] for k in Attempt.__dataclass_fields__}) for r in rows]

    def replay(self, delivery_id: str) -> Delivery | None:
        """Send a message again now, with a fresh retry schedule and the same webhook-id (so a
        receiver that already has it can tell). Refused (None) while an attempt is in flight."""
        now = time.time()
        in_flight = and_(webhook_outbox.c.status == DELIVERING, webhook_outbox.c.lease_expires_at >= now)
        with self.engines.write.begin() as conn:
            done = conn.execute(
                update(webhook_outbox)
                .where(webhook_outbox.c.id == delivery_id, ~in_flight)
                .values(
                    status=PENDING,
                    tries=0,
                    next_attempt_at=now,
                    lease_owner=None,
                    lease_expires_at=None,
                    updated_at=now,
                )
            ).rowcount
        return self.get(delivery_id) if done else None
