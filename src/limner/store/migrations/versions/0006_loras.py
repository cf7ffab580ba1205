"""LoRAs: the registry of trained LoRAs and the checkpoints of training jobs.

- loras: a LoRA id in a project, the safetensors file it stands for (the final weights or a
  promoted checkpoint), its base model, rank, trigger word and revision;
- lora_checkpoints: each checkpoint of a training job (LoRA file, resume state, validation
  images), which a re-claimed job resumes from.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-15
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

Json = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "loras",
        sa.Column("id", sa.String(48), primary_key=True),
        sa.Column("project", sa.String(64), nullable=False),
        sa.Column("job_id", sa.String(36), nullable=False),
        sa.Column("trainer", sa.String(200), nullable=False),
        sa.Column("base_model", sa.String(300), nullable=False),
        sa.Column("base_revision", sa.String(200), nullable=True),
        sa.Column("rank", sa.Integer, nullable=False),
        sa.Column("trigger_word", sa.String(100), nullable=True),
        sa.Column("file_key", sa.Text, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("file_size", sa.BigInteger, nullable=False),
        sa.Column("step", sa.Integer, nullable=False),
        sa.Column("revision", sa.Integer, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_index("ix_loras_project_created", "loras", ["project", "created_at"])
    op.create_index("ix_loras_job", "loras", ["job_id"])
    op.create_table(
        "lora_checkpoints",
        sa.Column("job_id", sa.String(36), primary_key=True),
        sa.Column("step", sa.Integer, primary_key=True),
        sa.Column("project", sa.String(64), nullable=False),
        sa.Column("lora_key", sa.Text, nullable=False),
        sa.Column("state_key", sa.Text, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("file_size", sa.BigInteger, nullable=False),
        sa.Column("loss", sa.Float, nullable=True),
        sa.Column("heldout_loss", sa.Float, nullable=True),
        sa.Column("validation", Json, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("lora_checkpoints")
    op.drop_index("ix_loras_job", "loras")
    op.drop_index("ix_loras_project_created", "loras")
    op.drop_table("loras")
