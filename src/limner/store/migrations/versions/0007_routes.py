"""Routes: each target's health (failures in a row, cooldown) and each route job's notes.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-16
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

Json = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "route_targets",
        sa.Column("target", sa.String(300), primary_key=True),
        sa.Column("failures", sa.Integer, nullable=False),
        sa.Column("cooldown_until", sa.Float, nullable=True),
        sa.Column("last_error_type", sa.String(64), nullable=True),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_table(
        "route_notes",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("job_id", sa.String(36), nullable=False),
        sa.Column("ts", sa.Float, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("target", sa.String(300), nullable=True),
        sa.Column("detail", Json, nullable=False),
    )
    op.create_index("ix_route_notes_job", "route_notes", ["job_id"])


def downgrade() -> None:
    op.drop_index("ix_route_notes_job", table_name="route_notes")
    op.drop_table("route_notes")
    op.drop_table("route_targets")
