"""Webhook outbox and attempts, API keys, server secrets; per-job webhook, deadline, retention, key.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

Json = sa.JSON().with_variant(JSONB(), "postgresql")
EventId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("webhook_url", sa.Text, nullable=True))
        batch.add_column(sa.Column("webhook_events", sa.String(40), nullable=True))
        batch.add_column(sa.Column("start_deadline_at", sa.Float, nullable=True))
        batch.add_column(sa.Column("result_ttl_s", sa.Float, nullable=True))
        batch.add_column(sa.Column("expired_at", sa.Float, nullable=True))
        batch.add_column(sa.Column("api_key_id", sa.String(40), nullable=True))
    op.create_index("ix_jobs_status_deadline", "jobs", ["status", "start_deadline_at"])
    op.create_index("ix_jobs_key_created", "jobs", ["api_key_id", "created_at"])
    op.create_index("ix_jobs_finished", "jobs", ["finished_at"])

    op.create_table(
        "webhook_outbox",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("job_id", sa.String(36), nullable=False),
        sa.Column("event", sa.String(16), nullable=False),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("payload", Json, nullable=False),
        sa.Column("dedupe_key", sa.String(80), nullable=True, unique=True),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("tries", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", sa.Float, nullable=True),
        sa.Column("lease_owner", sa.String(80), nullable=True),
        sa.Column("lease_expires_at", sa.Float, nullable=True),
        sa.Column("last_status_code", sa.Integer, nullable=True),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.Column("delivered_at", sa.Float, nullable=True),
    )
    op.create_index("ix_webhook_outbox_due", "webhook_outbox", ["status", "next_attempt_at"])
    op.create_index("ix_webhook_outbox_job", "webhook_outbox", ["job_id", "created_at"])

    op.create_table(
        "webhook_attempts",
        sa.Column("id", EventId, primary_key=True, autoincrement=True),
        sa.Column("delivery_id", sa.String(40), nullable=False),
        sa.Column("job_id", sa.String(36), nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("started_at", sa.Float, nullable=False),
        sa.Column("duration_ms", sa.Float, nullable=False),
        sa.Column("status_code", sa.Integer, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("response_excerpt", sa.Text, nullable=True),
        sa.Column("outcome", sa.String(12), nullable=False),
        sa.Column("retry_at", sa.Float, nullable=True),
        sa.Column("dispatcher", sa.String(80), nullable=False),
    )
    op.create_index("ix_webhook_attempts_delivery", "webhook_attempts", ["delivery_id", "id"])

    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("revoked_at", sa.Float, nullable=True),
    )

    op.create_table(
        "server_secrets",
        sa.Column("name", sa.String(40), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("server_secrets")
    op.drop_table("api_keys")
    op.drop_table("webhook_attempts")
    op.drop_table("webhook_outbox")
    op.drop_index("ix_jobs_finished", "jobs")
    op.drop_index("ix_jobs_key_created", "jobs")
    op.drop_index("ix_jobs_status_deadline", "jobs")
    with op.batch_alter_table("jobs") as batch:
        for name in ("api_key_id", "expired_at", "result_ttl_s", "start_deadline_at", "webhook_events", "webhook_url"):
            batch.drop_column(name)
