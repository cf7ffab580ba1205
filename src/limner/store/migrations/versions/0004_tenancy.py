"""Tenancy: API keys get a role and a project; jobs, usage rows and cache entries belong to one.

Existing rows belong to the ``default`` project (everything made before projects existed).
The oldest existing key becomes an admin; every other existing key becomes a member of the
``default`` project, so it still sees the jobs it saw before (the admin-only routes aside).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

DEFAULT_PROJECT = "default"


def upgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("role", sa.String(10), nullable=False, server_default="member"))
        batch.add_column(sa.Column("project", sa.String(64), nullable=False, server_default=DEFAULT_PROJECT))
    oldest = op.get_bind().execute(sa.text("SELECT id FROM api_keys ORDER BY created_at LIMIT 1")).scalar()
    if oldest is not None:
        op.get_bind().execute(sa.text("UPDATE api_keys SET role = 'admin' WHERE id = :id"), {"id": oldest})
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("project", sa.String(64), nullable=False, server_default=DEFAULT_PROJECT))
    op.create_index("ix_jobs_project_created", "jobs", ["project", "created_at"])
    with op.batch_alter_table("job_usage") as batch:
        batch.add_column(sa.Column("project", sa.String(64), nullable=False, server_default=DEFAULT_PROJECT))
    op.create_index("ix_usage_project_finished", "job_usage", ["project", "finished_at"])
    # A cache entry answers requests of its scope only: its project, or "*" for a model whose
    # catalog entry shares its cache across projects (cache.shared).
    with op.batch_alter_table("cache_entries") as batch:
        batch.add_column(sa.Column("scope", sa.String(64), nullable=False, server_default=DEFAULT_PROJECT))
    op.create_index("ix_cache_scope_exact", "cache_entries", ["model_id", "scope", "exact_key"])


def downgrade() -> None:
    op.drop_index("ix_cache_scope_exact", "cache_entries")
    with op.batch_alter_table("cache_entries") as batch:
        batch.drop_column("scope")
    op.drop_index("ix_usage_project_finished", "job_usage")
    with op.batch_alter_table("job_usage") as batch:
        batch.drop_column("project")
    op.drop_index("ix_jobs_project_created", "jobs")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("project")
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("project")
        batch.drop_column("role")
