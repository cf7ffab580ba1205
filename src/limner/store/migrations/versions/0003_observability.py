"""Result cache, usage records, quality scores; job owner and cache mode; worker stats.

Only the tables and columns of the observability issue (the job's API key came with 0002).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

Json = sa.JSON().with_variant(JSONB(), "postgresql")
Seq = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    # jobs.api_key_id and the indexes on it and on finished_at came with revision 0002.
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("cache_mode", sa.String(10), nullable=True))
    with op.batch_alter_table("workers") as batch:
        batch.add_column(sa.Column("stats", Json, nullable=True))

    op.create_table(
        "cache_entries",
        sa.Column("seq", Seq, primary_key=True, autoincrement=True),
        sa.Column("model_id", sa.String(200), nullable=False),
        sa.Column("revision_key", sa.String(64), nullable=False),
        sa.Column("revision", sa.String(200), nullable=False),
        sa.Column("exact_key", sa.String(64), nullable=False),
        sa.Column("input_key", sa.String(64), nullable=False),
        sa.Column("group_key", sa.String(64), nullable=False),
        sa.Column("prompt", sa.Text, nullable=False),
        sa.Column("embedding", sa.LargeBinary, nullable=True),
        sa.Column("source_job_id", sa.String(36), nullable=False),
        sa.Column("result", Json, nullable=False),
        sa.Column("compute_s", sa.Float, nullable=False),
        sa.Column("hits", sa.Integer, nullable=False),
        sa.Column("saved_s", sa.Float, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("last_hit_at", sa.Float, nullable=True),
        sa.Column("expires_at", sa.Float, nullable=True),
    )
    op.create_index("ix_cache_exact", "cache_entries", ["model_id", "exact_key"])
    op.create_index("ix_cache_input", "cache_entries", ["model_id", "input_key"])
    op.create_index("ix_cache_group", "cache_entries", ["model_id", "group_key"])
    op.create_index("ix_cache_source", "cache_entries", ["source_job_id"])

    op.create_table(
        "job_usage",
        sa.Column("seq", Seq, primary_key=True, autoincrement=True),
        sa.Column("job_id", sa.String(36), nullable=False, unique=True),
        sa.Column("model_id", sa.String(200), nullable=False),
        sa.Column("task", sa.String(40), nullable=False),
        sa.Column("api_key_id", sa.String(64), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("error_type", sa.String(40), nullable=True),
        sa.Column("priority", sa.String(8), nullable=False),
        sa.Column("day", sa.String(10), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("finished_at", sa.Float, nullable=False),
        sa.Column("queue_s", sa.Float, nullable=True),
        sa.Column("run_s", sa.Float, nullable=True),
        sa.Column("total_s", sa.Float, nullable=False),
        sa.Column("outputs", sa.Integer, nullable=False),
        sa.Column("compute_s", sa.Float, nullable=False),
        sa.Column("cost_usd", sa.Float, nullable=False),
        sa.Column("cache_hit", sa.String(10), nullable=True),
        sa.Column("saved_s", sa.Float, nullable=False),
        sa.Column("saved_usd", sa.Float, nullable=False),
        sa.Column("pixels", sa.Integer, nullable=True),
        sa.Column("steps", sa.Integer, nullable=True),
        sa.Column("device", sa.String(40), nullable=True),
    )
    op.create_index("ix_usage_model_finished", "job_usage", ["model_id", "finished_at"])
    op.create_index("ix_usage_key_day", "job_usage", ["api_key_id", "day"])
    op.create_index("ix_usage_day", "job_usage", ["day"])
    op.create_index("ix_usage_finished", "job_usage", ["finished_at"])

    op.create_table(
        "quality_scores",
        sa.Column("seq", Seq, primary_key=True, autoincrement=True),
        sa.Column("job_id", sa.String(36), nullable=False),
        sa.Column("model_id", sa.String(200), nullable=False),
        sa.Column("output_index", sa.Integer, nullable=False),
        sa.Column("clip_score", sa.Float, nullable=True),
        sa.Column("features", sa.LargeBinary, nullable=True),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_index("ix_quality_model_seq", "quality_scores", ["model_id", "seq"])

    op.create_table(
        "quality_windows",
        sa.Column("seq", Seq, primary_key=True, autoincrement=True),
        sa.Column("model_id", sa.String(200), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("samples", sa.Integer, nullable=False),
        sa.Column("clip_mean", sa.Float, nullable=True),
        sa.Column("fid", sa.Float, nullable=True),
        sa.Column("alert", sa.Text, nullable=True),
    )
    op.create_index("ix_quality_windows_model", "quality_windows", ["model_id", "seq"])


def downgrade() -> None:
    op.drop_table("quality_windows")
    op.drop_table("quality_scores")
    op.drop_table("job_usage")
    op.drop_table("cache_entries")
    with op.batch_alter_table("workers") as batch:
        batch.drop_column("stats")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("cache_mode")
