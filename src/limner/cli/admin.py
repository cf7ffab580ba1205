"""Operator commands that work on the job store directly: ``limner keys …`` and ``limner webhooks …``.

They need no running server (and no API key: whoever can reach the store is the operator);
give them the same ``--home`` / ``--store`` (or LIMNER_HOME / LIMNER_STORE) as the server.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Column, Table

from limner.cli.server import Home, Store, _settings
from limner.errors import LimnerError
from limner.settings import Settings
from limner.store.deliveries import Deliveries
from limner.store.engine import Engines, make_engines, upgrade
from limner.store.keys import KeyStore

keys_app = typer.Typer(help="API keys: once one exists, every route but health needs a key.", no_args_is_help=True)
webhooks_app = typer.Typer(help="Webhook signing secret and deliveries.", no_args_is_help=True)


@contextmanager
def _store(home: object, store: object) -> Iterator[tuple[Settings, Engines]]:
    settings = _settings(home=home, store=store)
    settings.home.mkdir(parents=True, exist_ok=True)
    engines = make_engines(settings.store)
    upgrade(engines)
    try:
        yield settings, engines
    finally:
        engines.dispose()


def _when(ts: float | None) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds") if ts else ""


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Option("--name", help="Who or what the key is for.")],
    project: Annotated[
        str | None, typer.Option("--project", help="The project it belongs to (default: a project of its own).")
    ] = None,
    admin: Annotated[bool, typer.Option("--admin", help="An admin key: every project, keys, workers, cache.")] = False,
    home: Home = None,
    store: Store = None,
) -> None:
    """Make a key and print it: this is the only time it is shown (the store keeps its hash).
    The first key made is an admin."""
    try:
        with _store(home, store) as (_, engines):
            key, raw = KeyStore(engines).create(name, project=project, admin=admin)
    except LimnerError as exc:
        Console(stderr=True).print(f"[red]error[/red] {exc.message}")
        raise typer.Exit(code=2) from None
    typer.echo(raw)
    Console(stderr=True).print(
        f"created {key.id} ({name}), {key.role} of project {key.project}; send it as 'Authorization: Key <key>'"
    )


@keys_app.command("list")
def keys_list(
    home: Home = None,
    store: Store = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per key, for scripts.")] = False,
) -> None:
    """All keys, revoked ones included (the secrets themselves are never shown again)."""
    with _store(home, store) as (_, engines):
        keys = KeyStore(engines).all()
    if as_json:
        for key in keys:
            typer.echo(json.dumps(key.as_dict()))
        return
    table = Table("name", "role", "prefix", "created", "revoked")
    # Ids and projects are what scripts and people copy: never shortened.
    table.columns.insert(0, Column("id", no_wrap=True, min_width=16))
    table.columns.insert(3, Column("project", no_wrap=True, min_width=16))
    for key in keys:
        table.add_row(
            key.id, key.name, key.role, key.project, key.prefix + "…", _when(key.created_at), _when(key.revoked_at)
        )
    Console().print(table)


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="The key's id (key_…).")], home: Home = None, store: Store = None
) -> None:
    """Revoke a key: requests with it get 403 from then on."""
    with _store(home, store) as (_, engines):
        key = KeyStore(engines).revoke(key_id)
    if key is None:
        Console(stderr=True).print(f"[red]error[/red] no key {key_id}")
        raise typer.Exit(code=1)
    typer.echo(f"revoked {key.id} ({key.name}) at {_when(key.revoked_at)}")


@webhooks_app.command("secret")
def webhooks_secret(home: Home = None, store: Store = None) -> None:
    """Print the webhook signing secret(s) receivers verify with (whsec_…), current first."""
    from limner.webhooks.service import signing_secrets

    with _store(home, store) as (settings, engines):
        secrets = signing_secrets(settings, engines)
    for secret in secrets:
        typer.echo(secret)
    origin = "LIMNER_WEBHOOK_SECRET" if settings.webhook_secret else "generated, kept in the job store"
    Console(stderr=True).print(f"({origin})")


@webhooks_app.command("deliveries")
def webhooks_deliveries(
    request_id: Annotated[str | None, typer.Option("--request-id", help="Only this request's messages.")] = None,
    status: Annotated[str | None, typer.Option("--status", help="pending, delivered, failed, gone, …")] = None,
    limit: int = 50,
    home: Home = None,
    store: Store = None,
) -> None:
    """Webhook messages, newest first."""
    with _store(home, store) as (_, engines):
        found = Deliveries(engines).find(job_id=request_id, status=status, limit=limit)
    table = Table("id", "request", "event", "status", "attempts", "last", "url")
    for d in found:
        last = str(d.last_status_code or d.last_error or "")
        table.add_row(d.id, d.job_id, d.event, d.status, str(d.attempts), last[:40], d.url[:60])
    Console().print(table)


@webhooks_app.command("show")
def webhooks_show(delivery_id: str, home: Home = None, store: Store = None) -> None:
    """One message with every attempt (JSON)."""
    with _store(home, store) as (_, engines):
        deliveries = Deliveries(engines)
        delivery = deliveries.get(delivery_id)
        if delivery is None:
            Console(stderr=True).print(f"[red]error[/red] no webhook delivery {delivery_id}")
            raise typer.Exit(code=1)
        body = {**delivery.as_dict(), "attempt_log": [a.as_dict() for a in deliveries.attempts(delivery_id)]}
    typer.echo(json.dumps(body, indent=2))


@webhooks_app.command("replay")
def webhooks_replay(delivery_id: str, home: Home = None, store: Store = None) -> None:
    """Send a message again (same webhook-id, fresh retry schedule); a running server's
    dispatcher picks it up within a poll."""
    with _store(home, store) as (_, engines):
        deliveries = Deliveries(engines)
        if deliveries.get(delivery_id) is None:
            Console(stderr=True).print(f"[red]error[/red] no webhook delivery {delivery_id}")
            raise typer.Exit(code=1)
        replayed = deliveries.replay(delivery_id)
    if replayed is None:
        Console(stderr=True).print(f"[red]error[/red] {delivery_id} is being attempted right now; try again")
        raise typer.Exit(code=1)
    typer.echo(f"{delivery_id} queued for delivery to {replayed.url}")
