"""The job store's tables (SQLAlchemy Core). Migrations in ``migrations/`` create exactly these.

Times are float seconds since the epoch: the same arithmetic works in SQLite and PostgreSQL,
and lease comparisons stay simple.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData()

Json = JSON().with_variant(JSONB(), "postgresql")
# SQLite only auto-increments INTEGER PRIMARY KEY columns.
EventId = BigInteger().with_variant(Integer(), "sqlite")

jobs = Table(
    "jobs",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("model_id", String(200), nullable=False),
    Column("task", String(40), nullable=False),
    # queued | running | succeeded | failed | canceled (see limner.store.states)
    Column("status", String(16), nullable=False),
    Column("priority", String(8), nullable=False),
    # Claim order: lower first. created_at minus the priority's head start, so waiting
    # long enough lets a low-priority job overtake newer high-priority ones (aging).
    Column("rank", Float, nullable=False),
    Column("input", Json, nullable=False),
    # Jobs of one model with equal batch keys can run in one batch.
    Column("batch_key", String(64), nullable=False),
    Column("idempotency_key", String(255), nullable=True, unique=True),
    Column("body_hash", String(64), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("max_attempts", Integer, nullable=False),
    Column("lease_owner", String(80), nullable=True),
    Column("lease_expires_at", Float, nullable=True),
    Column("cancel_requested", Boolean, nullable=False, default=False),
    Column("progress", Json, nullable=True),
    Column("result", Json, nullable=True),
    Column("error", Text, nullable=True),
    Column("error_type", String(40), nullable=True),
    Column("created_at", Float, nullable=False),
    Column("started_at", Float, nullable=True),
    Column("finished_at", Float, nullable=True),
    Column("updated_at", Float, nullable=False),
    Index("ix_jobs_status_rank", "status", "rank"),
    Index("ix_jobs_model_status_rank", "model_id", "status", "rank"),
    Index("ix_jobs_status_lease", "status", "lease_expires_at"),
    Index("ix_jobs_created", "created_at"),
)

job_events = Table(
    "job_events",
    metadata,
    Column("id", EventId, primary_key=True, autoincrement=True),
    Column("job_id", String(36), nullable=False),
    Column("ts", Float, nullable=False),
    Column("level", String(8), nullable=False),
    Column("source", String(40), nullable=False),
    Column("message", Text, nullable=False),
    Index("ix_job_events_job", "job_id", "id"),
)

workers = Table(
    "workers",
    metadata,
    Column("id", String(80), primary_key=True),
    Column("hostname", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("device", String(40), nullable=False),
    Column("memory_budget_mb", Integer, nullable=False),
    Column("models", Json, nullable=False),
    Column("current_jobs", Json, nullable=False),
    Column("started_at", Float, nullable=False),
    Column("heartbeat_at", Float, nullable=False),
    Column("stopped_at", Float, nullable=True),
)
