"""Alembic environment: limner runs migrations programmatically with a live connection."""

from __future__ import annotations

from alembic import context

from limner.store.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("limner runs its migrations through limner.store.engine.upgrade()")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
