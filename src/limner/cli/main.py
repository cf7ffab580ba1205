"""The ``limner`` command."""

from __future__ import annotations

import typer

from limner.cli import admin, batch_cmds, client_cmds, ops_cmds, server, train_cmds

app = typer.Typer(
    name="limner",
    help="Self-hosted generative media: serve models behind a durable job queue.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.command()(server.serve)
app.command()(server.worker)
app.command()(client_cmds.run)
app.command()(train_cmds.train)
app.add_typer(client_cmds.models_app, name="models")
app.add_typer(client_cmds.jobs_app, name="jobs")
app.add_typer(batch_cmds.batch_app, name="batch")
app.add_typer(train_cmds.loras_app, name="loras")
app.add_typer(admin.keys_app, name="keys")
app.add_typer(admin.webhooks_app, name="webhooks")
app.add_typer(ops_cmds.cache_app, name="cache")
app.command()(ops_cmds.usage)


def main() -> None:
    app()
