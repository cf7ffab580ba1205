"""Workflows and batches: child jobs of a workflow, and batch runs with their rows.

- jobs.parent_id / step_key / step_attempt: a workflow step's job names its workflow job,
  the step (``scene``, or ``views.2`` for a fan-out run) and which attempt it is;
- jobs.advance_due: a workflow job whose steps changed and must be advanced by a coordinator
  (set in the transaction that ended the step);
- jobs.deadline_at: a step's own timeout;
- jobs.batch_id: the batch a row's job belongs to;
- batches and batch_rows: a batch and its rows, admitted into the queue as capacity frees up.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

Json = sa.JSON().with_variant(JSONB(), "postgresql")


def _where(condition: str, postgresql: str | None = None) -> dict[str, Any]:
    return {"sqlite_where": sa.text(condition), "postgresql_where": sa.text(postgresql or condition)}


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("parent_id", sa.String(36), nullable=True))
        batch.add_column(sa.Column("step_key", sa.String(100), nullable=True))
        batch.add_column(sa.Column("step_attempt", sa.Integer, nullable=True))
        batch.add_column(sa.Column("advance_due", sa.Boolean, nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("deadline_at", sa.Float, nullable=True))
        batch.add_column(sa.Column("batch_id", sa.String(40), nullable=True))
    # Partial indexes: jobs that are not steps or batch rows, with no deadline and not due,
    # are left out of them, so their inserts pay nothing for them.
    op.create_index(
        "ux_jobs_step",
        "jobs",
        ["parent_id", "step_key", "step_attempt"],
        unique=True,
        **_where("parent_id IS NOT NULL"),
    )
    op.create_index("ix_jobs_advance_due", "jobs", ["advance_due"], **_where("advance_due = 1", "advance_due"))
    op.create_index("ix_jobs_deadline", "jobs", ["status", "deadline_at"], **_where("deadline_at IS NOT NULL"))
    op.create_index("ix_jobs_batch", "jobs", ["batch_id"], **_where("batch_id IS NOT NULL"))
    op.create_table(
        "batches",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("project", sa.String(64), nullable=False),
        sa.Column("api_key_id", sa.String(40), nullable=True),
        sa.Column("model_id", sa.String(200), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("priority", sa.String(8), nullable=False),
        sa.Column("max_concurrency", sa.Integer, nullable=False),
        sa.Column("input_key", sa.Text, nullable=False),
        sa.Column("input_format", sa.String(8), nullable=False),
        sa.Column("template", Json, nullable=True),
        sa.Column("metadata", Json, nullable=True),
        sa.Column("total", sa.Integer, nullable=False),
        sa.Column("loaded", sa.Integer, nullable=False),
        sa.Column("cancel_requested", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("advance_due", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("lease_owner", sa.String(80), nullable=True),
        sa.Column("lease_expires_at", sa.Float, nullable=True),
        sa.Column("retry_of", sa.String(40), nullable=True),
        sa.Column("idempotency_key", sa.String(255), nullable=True),
        sa.Column("body_hash", sa.String(64), nullable=True),
        sa.Column("result_ttl_s", sa.Float, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.Column("started_at", sa.Float, nullable=True),
        sa.Column("finished_at", sa.Float, nullable=True),
    )
    op.create_index("ix_batches_project_created", "batches", ["project", "created_at"])
    op.create_index("ix_batches_status", "batches", ["status"])
    op.create_index("ux_batches_idempotency", "batches", ["project", "idempotency_key"], unique=True)
    op.create_table(
        "batch_rows",
        sa.Column("batch_id", sa.String(40), primary_key=True),
        sa.Column("idx", sa.Integer, primary_key=True),
        sa.Column("custom_id", sa.String(255), nullable=False),
        sa.Column("input", Json, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("job_id", sa.String(36), nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("error_type", sa.String(40), nullable=True),
        sa.Column("finished_at", sa.Float, nullable=True),
    )
    op.create_index("ux_batch_rows_custom_id", "batch_rows", ["batch_id", "custom_id"], unique=True)
    op.create_index("ix_batch_rows_status", "batch_rows", ["batch_id", "status", "idx"])
    op.create_index("ix_batch_rows_job", "batch_rows", ["job_id"])


def downgrade() -> None:
    op.drop_table("batch_rows")
    op.drop_table("batches")
    for name in ("ix_jobs_batch", "ix_jobs_deadline", "ix_jobs_advance_due", "ux_jobs_step"):
        op.drop_index(name, "jobs")
    with op.batch_alter_table("jobs") as batch:
        for column in ("batch_id", "deadline_at", "advance_due", "step_attempt", "step_key", "parent_id"):
            batch.drop_column(column)
