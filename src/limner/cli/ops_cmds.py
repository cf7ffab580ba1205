"""``limner cache …`` and ``limner usage``: an operator's view of a running server."""

from __future__ import annotations

import json
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.table import Table

from limner.cli.client_cmds import DEFAULT_URL, Url

console = Console()
cache_app = typer.Typer(help="The result cache.", no_args_is_help=True)


def _call(method: str, url: str, path: str, **kwargs: Any) -> Any:
    try:
        response = httpx.request(method, url.rstrip("/") + path, timeout=60, **kwargs)
    except httpx.TransportError as exc:
        console.print(f"[red]error[/red] cannot reach {url}: {exc}")
        raise typer.Exit(code=1) from None
    if response.status_code >= 400:
        console.print(f"[red]error[/red] {response.status_code}: {response.text}")
        raise typer.Exit(code=1)
    return response.json()


@cache_app.command("stats")
def cache_stats(url: Url = DEFAULT_URL) -> None:
    """Entries, hits and compute seconds saved per model."""
    table = Table("model", "entries", "hits", "saved compute s")
    for row in _call("GET", url, "/v1/cache")["models"]:
        table.add_row(row["model_id"], str(row["entries"]), str(row["hits"]), f"{row['saved_compute_s']:.2f}")
    console.print(table)


@cache_app.command("purge")
def cache_purge(model: Annotated[str, typer.Argument(help="Model id, owner/name.")], url: Url = DEFAULT_URL) -> None:
    """Forget every cached result of a model."""
    body = _call("DELETE", url, f"/v1/cache/{model}")
    console.print(f"purged {body['purged']} cache entries of {body['model_id']}")


def usage(
    group_by: Annotated[str, typer.Option("--by", help="model, key, day (comma-separated).")] = "model,day",
    as_json: Annotated[bool, typer.Option("--json", help="Print the JSON answer.")] = False,
    url: Url = DEFAULT_URL,
) -> None:
    """Jobs, outputs, compute seconds, cost and cache savings."""
    body = _call("GET", url, "/v1/usage", params={"group_by": group_by})
    if as_json:
        typer.echo(json.dumps(body, indent=2))
        return
    names = {"model": "model_id", "key": "api_key_id", "day": "day"}
    groups = [names[g] for g in body["group_by"]]
    table = Table(*groups, "jobs", "failed", "outputs", "compute s", "cost $", "cache hits", "saved s")
    for row in [*body["usage"], {**{g: "total" for g in groups[:1]}, **body["totals"]}]:
        table.add_row(
            *(str(row.get(g) or "") for g in groups),
            str(row.get("jobs", 0)),
            str(row.get("failed", 0)),
            str(row.get("outputs", 0)),
            f"{row.get('compute_s', 0):.2f}",
            f"{row.get('cost_usd', 0):.4f}",
            str(row.get("cache_hits", 0)),
            f"{row.get('saved_compute_s', 0):.2f}",
        )
    console.print(table)
