"""Plain typed records that the store hands out (never SQLAlchemy rows)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row

from limner.store.schema import DEFAULT_PROJECT
from limner.store.states import TERMINAL


@dataclass(frozen=True)
class NewJob:
    """A validated submission, ready to be written."""

    id: str
    model_id: str
    task: str
    priority: str
    input: dict[str, Any]
    batch_key: str
    body_hash: str
    idempotency_key: str | None
    max_attempts: int
    webhook_url: str | None = None
    webhook_events: str | None = None  # comma-separated: started, progress, completed
    start_deadline_s: float | None = None
    result_ttl_s: float | None = None
    api_key_id: str | None = None
    cache_mode: str | None = None
    project: str = DEFAULT_PROJECT
    # A workflow step's job (limner.workflows) and a batch row's job (limner.batches).
    parent_id: str | None = None
    step_key: str | None = None
    step_attempt: int | None = None
    deadline_s: float | None = None
    batch_id: str | None = None
    advance_due: bool = False  # a workflow job: the coordinator starts it


@dataclass(frozen=True)
class Submitted:
    """What a submission became: a new job, or the earlier job with the same Idempotency-Key."""

    job_id: str
    created: bool


@dataclass(frozen=True)
class Job:
    id: str
    model_id: str
    task: str
    status: str
    priority: str
    rank: float
    input: dict[str, Any]
    batch_key: str
    idempotency_key: str | None
    attempts: int
    max_attempts: int
    lease_owner: str | None
    lease_expires_at: float | None
    cancel_requested: bool
    progress: dict[str, Any] | None
    result: dict[str, Any] | None
    error: str | None
    error_type: str | None
    created_at: float
    started_at: float | None
    finished_at: float | None
    updated_at: float
    webhook_url: str | None = None
    webhook_events: str | None = None
    start_deadline_at: float | None = None
    result_ttl_s: float | None = None
    expired_at: float | None = None
    api_key_id: str | None = None
    cache_mode: str | None = None
    project: str = DEFAULT_PROJECT
    parent_id: str | None = None
    step_key: str | None = None
    step_attempt: int | None = None
    advance_due: bool = False
    deadline_at: float | None = None
    batch_id: str | None = None

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    @property
    def expires_at(self) -> float | None:
        """When the result (and its files) go, or None if kept for good."""
        if self.finished_at is None or not self.result_ttl_s:
            return None
        return self.finished_at + self.result_ttl_s

    def expired(self, now: float) -> bool:
        expires = self.expires_at
        return self.expired_at is not None or (expires is not None and expires <= now)

    @classmethod
    def from_row(cls, row: Row[Any]) -> Job:
        m = row._mapping
        return cls(
            id=m["id"],
            model_id=m["model_id"],
            task=m["task"],
            status=m["status"],
            priority=m["priority"],
            rank=m["rank"],
            input=m["input"],
            batch_key=m["batch_key"],
            idempotency_key=m["idempotency_key"],
            attempts=m["attempts"],
            max_attempts=m["max_attempts"],
            lease_owner=m["lease_owner"],
            lease_expires_at=m["lease_expires_at"],
            cancel_requested=bool(m["cancel_requested"]),
            progress=m["progress"],
            result=m["result"],
            error=m["error"],
            error_type=m["error_type"],
            created_at=m["created_at"],
            started_at=m["started_at"],
            finished_at=m["finished_at"],
            updated_at=m["updated_at"],
            webhook_url=m.get("webhook_url"),
            webhook_events=m.get("webhook_events"),
            start_deadline_at=m.get("start_deadline_at"),
            result_ttl_s=m.get("result_ttl_s"),
            expired_at=m.get("expired_at"),
            api_key_id=m.get("api_key_id"),
            cache_mode=m.get("cache_mode"),
            project=m.get("project") or DEFAULT_PROJECT,
            parent_id=m.get("parent_id"),
            step_key=m.get("step_key"),
            step_attempt=m.get("step_attempt"),
            advance_due=bool(m.get("advance_due")),
            deadline_at=m.get("deadline_at"),
            batch_id=m.get("batch_id"),
        )


@dataclass(frozen=True)
class LogLine:
    id: int
    ts: float
    level: str
    source: str
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"timestamp": self.ts, "level": self.level, "source": self.source, "message": self.message}


@dataclass(frozen=True)
class WorkerInfo:
    id: str
    hostname: str
    pid: int
    device: str
    memory_budget_mb: int
    models: list[str]
    current_jobs: list[str]
    started_at: float
    heartbeat_at: float
    stopped_at: float | None
    stats: dict[str, Any] | None = None

    @classmethod
    def from_row(cls, row: Row[Any]) -> WorkerInfo:
        m = row._mapping
        return cls(
            id=m["id"],
            hostname=m["hostname"],
            pid=m["pid"],
            device=m["device"],
            memory_budget_mb=m["memory_budget_mb"],
            models=list(m["models"] or []),
            current_jobs=list(m["current_jobs"] or []),
            started_at=m["started_at"],
            heartbeat_at=m["heartbeat_at"],
            stopped_at=m["stopped_at"],
            stats=m.get("stats"),
        )
