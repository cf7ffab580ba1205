"""The job store's tables (SQLAlchemy Core). Migrations in ``migrations/`` create exactly these.

Times are float seconds since the epoch: the same arithmetic works in SQLite and PostgreSQL,
and lease comparisons stay simple.
"""

from __future__ import annotations

from typing import Any, Final

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    false,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData()


def _where(condition: str, postgresql: str | None = None) -> dict[str, Any]:
    """A partial index's condition, for both dialects (SQLite compares booleans as 1)."""
    return {"sqlite_where": text(condition), "postgresql_where": text(postgresql or condition)}


# The project of everything made before projects existed, and of every job while keys are off.
DEFAULT_PROJECT: Final = "default"

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
    # Integration (revision 0002): where and on what events to send webhooks ("completed",
    # "started,progress,completed"), when an unstarted job gives up (start_timeout), how long
    # its result is kept after it ends, when that result was deleted, and which API key made it.
    Column("webhook_url", Text, nullable=True),
    Column("webhook_events", String(40), nullable=True),
    Column("start_deadline_at", Float, nullable=True),
    Column("result_ttl_s", Float, nullable=True),
    Column("expired_at", Float, nullable=True),
    Column("api_key_id", String(40), nullable=True),
    # The job's effective cache mode (off | exact | semantic): see limner.cache (migration 0003).
    Column("cache_mode", String(10), nullable=True),
    # The project the job belongs to (migration 0004): only keys of that project, and admins,
    # see it. Its files live under projects/<project>/ in the media storage.
    Column("project", String(64), nullable=False, server_default=DEFAULT_PROJECT),
    # Workflows and batches (migration 0005): a step's job names its workflow job, the step
    # (``scene``, ``views.2`` for a fan-out run) and the attempt; advance_due marks a workflow
    # job whose steps changed (set in the transaction that ended the step); deadline_at is a
    # step's own timeout; batch_id the batch a row's job belongs to.
    Column("parent_id", String(36), nullable=True),
    Column("step_key", String(100), nullable=True),
    Column("step_attempt", Integer, nullable=True),
    Column("advance_due", Boolean, nullable=False, server_default=false()),
    Column("deadline_at", Float, nullable=True),
    Column("batch_id", String(40), nullable=True),
    Index("ix_jobs_status_rank", "status", "rank"),
    Index("ix_jobs_model_status_rank", "model_id", "status", "rank"),
    Index("ix_jobs_status_lease", "status", "lease_expires_at"),
    Index("ix_jobs_created", "created_at"),
    Index("ix_jobs_status_deadline", "status", "start_deadline_at"),
    Index("ix_jobs_key_created", "api_key_id", "created_at"),
    Index("ix_jobs_finished", "finished_at"),
    Index("ix_jobs_project_created", "project", "created_at"),
    # Partial: most jobs are neither steps nor batch rows, have no deadline and are not due, and
    # an index that leaves their rows out costs their inserts nothing.
    Index("ux_jobs_step", "parent_id", "step_key", "step_attempt", unique=True, **_where("parent_id IS NOT NULL")),
    Index("ix_jobs_advance_due", "advance_due", **_where("advance_due = 1", "advance_due")),
    Index("ix_jobs_deadline", "status", "deadline_at", **_where("deadline_at IS NOT NULL")),
    Index("ix_jobs_batch", "batch_id", **_where("batch_id IS NOT NULL")),
)

# A batch run: a model or workflow over many rows (migration 0005). Rows are loaded from the
# input file in chunks and admitted into the queue as capacity frees up (limner.batches).
# status: validating | in_progress | cancelling | completed | cancelled | failed
batches = Table(
    "batches",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("project", String(64), nullable=False),
    Column("api_key_id", String(40), nullable=True),
    Column("model_id", String(200), nullable=False),
    Column("status", String(16), nullable=False),
    Column("priority", String(8), nullable=False),
    Column("max_concurrency", Integer, nullable=False),
    Column("input_key", Text, nullable=False),
    Column("input_format", String(8), nullable=False),
    Column("template", Json, nullable=True),
    Column("metadata", Json, nullable=True),
    Column("total", Integer, nullable=False),
    Column("loaded", Integer, nullable=False),
    Column("cancel_requested", Boolean, nullable=False, server_default=false()),
    Column("advance_due", Boolean, nullable=False, server_default=false()),
    # The coordinator working on the batch (loading or admitting rows), until its lease ends.
    Column("lease_owner", String(80), nullable=True),
    Column("lease_expires_at", Float, nullable=True),
    Column("retry_of", String(40), nullable=True),
    # Idempotency-Key of the request that made it (per project), and that request's body hash.
    Column("idempotency_key", String(255), nullable=True),
    Column("body_hash", String(64), nullable=True),
    Column("result_ttl_s", Float, nullable=True),
    Column("error", Text, nullable=True),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("started_at", Float, nullable=True),
    Column("finished_at", Float, nullable=True),
    Index("ix_batches_project_created", "project", "created_at"),
    Index("ix_batches_status", "status"),
    Index("ux_batches_idempotency", "project", "idempotency_key", unique=True),
)

# status: pending (not admitted yet) | admitted (its job exists) | succeeded | failed | canceled
batch_rows = Table(
    "batch_rows",
    metadata,
    Column("batch_id", String(40), primary_key=True),
    Column("idx", Integer, primary_key=True),
    Column("custom_id", String(255), nullable=False),
    Column("input", Json, nullable=False),
    Column("status", String(16), nullable=False),
    Column("job_id", String(36), nullable=True),
    Column("error", Text, nullable=True),
    Column("error_type", String(40), nullable=True),
    Column("finished_at", Float, nullable=True),
    Index("ux_batch_rows_custom_id", "batch_id", "custom_id", unique=True),
    Index("ix_batch_rows_status", "batch_id", "status", "idx"),
    Index("ix_batch_rows_job", "job_id"),
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
    # Gauges and counters a worker reports with its heartbeat (loads, evictions, RSS, …), which
    # the API's /metrics exposes: workers are other processes, often on other machines.
    Column("stats", Json, nullable=True),
)


# -- result cache, usage, quality (migration 0003) ----------------------------------------------

cache_entries = Table(
    "cache_entries",
    metadata,
    Column("seq", EventId, primary_key=True, autoincrement=True),
    Column("model_id", String(200), nullable=False),
    # Catalog-derived key of everything that decides the weights (source, revision, dtype, …)
    # and the revision the worker actually loaded (verified at lookup; see limner.cache.keys).
    Column("revision_key", String(64), nullable=False),
    Column("revision", String(200), nullable=False),
    Column("exact_key", String(64), nullable=False),
    Column("input_key", String(64), nullable=False),
    Column("group_key", String(64), nullable=False),
    Column("prompt", Text, nullable=False),
    # float32 prompt embedding (semantic cache), when the model allows semantic hits.
    Column("embedding", LargeBinary, nullable=True),
    Column("source_job_id", String(36), nullable=False),
    Column("result", Json, nullable=False),
    Column("compute_s", Float, nullable=False),
    Column("hits", Integer, nullable=False),
    Column("saved_s", Float, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("last_hit_at", Float, nullable=True),
    Column("expires_at", Float, nullable=True),
    # Whose requests the entry may answer: a project, or "*" when the model shares its cache.
    Column("scope", String(64), nullable=False, server_default=DEFAULT_PROJECT),
    Index("ix_cache_exact", "model_id", "exact_key"),
    Index("ix_cache_input", "model_id", "input_key"),
    Index("ix_cache_group", "model_id", "group_key"),
    Index("ix_cache_source", "source_job_id"),
    Index("ix_cache_scope_exact", "model_id", "scope", "exact_key"),
)

# One row per finished job, derived from the jobs table (limner.store.usage): what it cost,
# what it saved. ``seq`` orders rows for /metrics, which folds in new rows at each scrape.
job_usage = Table(
    "job_usage",
    metadata,
    Column("seq", EventId, primary_key=True, autoincrement=True),
    Column("job_id", String(36), nullable=False, unique=True),
    Column("model_id", String(200), nullable=False),
    Column("task", String(40), nullable=False),
    Column("api_key_id", String(64), nullable=True),
    Column("status", String(16), nullable=False),
    Column("error_type", String(40), nullable=True),
    Column("priority", String(8), nullable=False),
    Column("day", String(10), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("finished_at", Float, nullable=False),
    Column("queue_s", Float, nullable=True),
    Column("run_s", Float, nullable=True),
    Column("total_s", Float, nullable=False),
    Column("outputs", Integer, nullable=False),
    Column("compute_s", Float, nullable=False),
    Column("cost_usd", Float, nullable=False),
    Column("cache_hit", String(10), nullable=True),
    Column("saved_s", Float, nullable=False),
    Column("saved_usd", Float, nullable=False),
    Column("pixels", Integer, nullable=True),
    Column("steps", Integer, nullable=True),
    Column("device", String(40), nullable=True),
    Column("project", String(64), nullable=False, server_default=DEFAULT_PROJECT),
    Index("ix_usage_model_finished", "model_id", "finished_at"),
    Index("ix_usage_key_day", "api_key_id", "day"),
    Index("ix_usage_day", "day"),
    Index("ix_usage_finished", "finished_at"),
    Index("ix_usage_project_finished", "project", "finished_at"),
)

quality_scores = Table(
    "quality_scores",
    metadata,
    Column("seq", EventId, primary_key=True, autoincrement=True),
    Column("job_id", String(36), nullable=False),
    Column("model_id", String(200), nullable=False),
    Column("output_index", Integer, nullable=False),
    Column("clip_score", Float, nullable=True),
    # float32 image features (the FID window), see limner.quality.
    Column("features", LargeBinary, nullable=True),
    Column("created_at", Float, nullable=False),
    Index("ix_quality_model_seq", "model_id", "seq"),
)

quality_windows = Table(
    "quality_windows",
    metadata,
    Column("seq", EventId, primary_key=True, autoincrement=True),
    Column("model_id", String(200), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("samples", Integer, nullable=False),
    Column("clip_mean", Float, nullable=True),
    Column("fid", Float, nullable=True),
    Column("alert", Text, nullable=True),
    Index("ix_quality_windows_model", "model_id", "seq"),
)

# The webhook outbox: one row per message (an event of a job for its URL), written in the same
# transaction as the job change that caused it. Dispatchers claim due rows with a lease.
# status: pending | delivering | delivered | failed | gone (the receiver said 410) | superseded
webhook_outbox = Table(
    "webhook_outbox",
    metadata,
    Column("id", String(40), primary_key=True),  # the webhook-id header: the same on every retry
    Column("job_id", String(36), nullable=False),
    Column("event", String(16), nullable=False),  # started | progress | completed
    Column("url", Text, nullable=False),
    Column("payload", Json, nullable=False),
    # "<job>:completed" makes a second completion message for a job impossible.
    Column("dedupe_key", String(80), nullable=True, unique=True),
    Column("status", String(12), nullable=False),
    Column("attempts", Integer, nullable=False),  # all attempts, replays included
    Column("tries", Integer, nullable=False),  # attempts of the current round (a replay starts a new one)
    Column("next_attempt_at", Float, nullable=True),
    Column("lease_owner", String(80), nullable=True),
    Column("lease_expires_at", Float, nullable=True),
    Column("last_status_code", Integer, nullable=True),
    Column("last_error", Text, nullable=True),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("delivered_at", Float, nullable=True),
    Index("ix_webhook_outbox_due", "status", "next_attempt_at"),
    Index("ix_webhook_outbox_job", "job_id", "created_at"),
)

webhook_attempts = Table(
    "webhook_attempts",
    metadata,
    Column("id", EventId, primary_key=True, autoincrement=True),
    Column("delivery_id", String(40), nullable=False),
    Column("job_id", String(36), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("started_at", Float, nullable=False),
    Column("duration_ms", Float, nullable=False),
    Column("status_code", Integer, nullable=True),
    Column("error", Text, nullable=True),
    Column("response_excerpt", Text, nullable=True),
    Column("outcome", String(12), nullable=False),  # delivered | retry | failed | gone
    Column("retry_at", Float, nullable=True),
    Column("dispatcher", String(80), nullable=False),
    Index("ix_webhook_attempts_delivery", "delivery_id", "id"),
)

# API keys, stored as the SHA-256 of the key (see limner.store.keys for why not bcrypt).
api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("prefix", String(16), nullable=False),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("created_at", Float, nullable=False),
    Column("revoked_at", Float, nullable=True),
    # admin: everything (all projects, keys, workers, cache, usage); member: its project only.
    Column("role", String(10), nullable=False, server_default="member"),
    Column("project", String(64), nullable=False, server_default=DEFAULT_PROJECT),
)

# Secrets the server makes for itself (the webhook signing secret, the file-URL signing key):
# in the store, so every API replica and worker on any machine shares them.
server_secrets = Table(
    "server_secrets",
    metadata,
    Column("name", String(40), primary_key=True),
    Column("value", Text, nullable=False),
    Column("created_at", Float, nullable=False),
)

# -- LoRAs (migration 0006) ---------------------------------------------------------------------

# A LoRA a training job made, registered under an id in the project of the key that trained it.
# ``file_key`` is the safetensors file it stands for now: the training's final weights, or the
# checkpoint promoted to be this id (``step``); each promotion raises ``revision``.
loras = Table(
    "loras",
    metadata,
    Column("id", String(48), primary_key=True),
    Column("project", String(64), nullable=False),
    Column("job_id", String(36), nullable=False),
    Column("trainer", String(200), nullable=False),  # the training entry's model id
    Column("base_model", String(300), nullable=False),  # the base weights' source (hf://…, tiny://…)
    Column("base_revision", String(200), nullable=True),
    Column("rank", Integer, nullable=False),
    Column("trigger_word", String(100), nullable=True),
    Column("file_key", Text, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("file_size", BigInteger, nullable=False),
    Column("step", Integer, nullable=False),
    Column("revision", Integer, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Index("ix_loras_project_created", "project", "created_at"),
    Index("ix_loras_job", "job_id"),
)

# Each checkpoint of a training job: its LoRA file, its resume state (LoRA weights, optimizer,
# RNG, loss curve) and its validation images, all in the media storage under the job's results.
lora_checkpoints = Table(
    "lora_checkpoints",
    metadata,
    Column("job_id", String(36), primary_key=True),
    Column("step", Integer, primary_key=True),
    Column("project", String(64), nullable=False),
    Column("lora_key", Text, nullable=False),
    Column("state_key", Text, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("file_size", BigInteger, nullable=False),
    Column("loss", Float, nullable=True),
    Column("heldout_loss", Float, nullable=True),
    Column("validation", Json, nullable=False),
    Column("created_at", Float, nullable=False),
)

# Routes (limner.routing): each target's health, shared by every route, API and worker that
# uses it: retryable failures in a row and the time its cooldown ends (a provider's 429
# Retry-After sets it too).
route_targets = Table(
    "route_targets",
    metadata,
    Column("target", String(300), primary_key=True),
    Column("failures", Integer, nullable=False),
    Column("cooldown_until", Float, nullable=True),
    Column("last_error_type", String(64), nullable=True),
    Column("updated_at", Float, nullable=False),
)

# What a route decided for one of its jobs besides its attempts (which are its child jobs):
# the latency budget it was given, targets skipped and why, input fields coerced.
route_notes = Table(
    "route_notes",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("job_id", String(36), nullable=False),
    Column("ts", Float, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("target", String(300), nullable=True),
    Column("detail", Json, nullable=False),
    Index("ix_route_notes_job", "job_id"),
)
