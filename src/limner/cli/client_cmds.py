"""``limner run``, ``limner models …`` and ``limner jobs …``: talk to a running server."""

from __future__ import annotations

import base64
import json
import mimetypes
import os
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlparse

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Column, Table

from limner.client import ApiError, Client, Status

console = Console(stderr=True)
Url = Annotated[str, typer.Option("--url", envvar="LIMNER_URL", help="The server (LIMNER_URL).")]
DEFAULT_URL = "http://127.0.0.1:7860"

models_app = typer.Typer(help="The models the server offers.", no_args_is_help=True)
jobs_app = typer.Typer(help="Jobs on the server.", no_args_is_help=True)


def parse_inputs(pairs: list[str]) -> dict[str, Any]:
    """``key=value`` pairs: JSON values when they parse (numbers, booleans, lists), text
    otherwise; ``key=@path`` reads a file and sends it as a data: URI."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"expected key=value, got {pair!r}", param_hint="-i")
        if raw.startswith("@"):
            path = Path(raw[1:]).expanduser()
            if not path.is_file():
                raise typer.BadParameter(f"no file {path}", param_hint="-i")
            mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            out[key] = f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode()}"
            continue
        try:
            out[key] = json.loads(raw)
        except json.JSONDecodeError:
            out[key] = raw
    return out


def _fail(exc: ApiError) -> typer.Exit:
    console.print(f"[red]error[/red] {exc}")
    return typer.Exit(code=1)


def run(
    model: Annotated[str, typer.Argument(help="Model id, owner/name.")],
    inputs: Annotated[list[str] | None, typer.Option("-i", "--input", help="key=value (repeatable); key=@file")] = None,
    url: Url = DEFAULT_URL,
    priority: Annotated[str | None, typer.Option("--priority", help="high, normal or low.")] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Save the output files in this folder, under their own names (images-0.png …)."),
    ] = None,
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Follow the job to its end.")] = True,
) -> None:
    """Submit a job, show its progress, print its result."""
    arguments = parse_inputs(inputs or [])
    with Client(url) as client:
        try:
            handle = client.submit(model, arguments, priority=priority)
            console.print(f"request [bold]{handle.request_id}[/bold]")
            if not wait:
                typer.echo(json.dumps(handle.as_dict(), indent=2))
                return
            result = _follow(client, model, handle.request_id)
        except ApiError as exc:
            raise _fail(exc) from None
        if out:
            _save(client, result, out)
    typer.echo(json.dumps(result, indent=2))


def _follow(client: Client, model: str, request_id: str) -> dict[str, Any]:
    columns = (TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task("queued", total=100)

        def update(event: Status) -> None:
            progress = event.progress
            if event.status == "IN_QUEUE":
                label = f"queued (position {event.queue_position or 0})"
            else:
                label = progress.stage if progress else event.status
            bar.update(task, description=label, completed=progress.percent if progress else 0)

        return client.wait(model, request_id, on_queue_update=update).raw


def _save(client: Client, result: dict[str, Any], folder: Path) -> None:
    """Download every output file into ``folder`` under its own name (``images-0.png``,
    ``videos-0.mp4`` …), replacing a file of that name, as ``curl -o`` does: the next command
    can name it. Each saved path is printed."""
    folder.mkdir(parents=True, exist_ok=True)
    for key, files in result.items():
        if not isinstance(files, list):
            continue
        for item in files:
            if isinstance(item, dict) and "url" in item:
                name = os.path.basename(urlparse(item["url"]).path)
                target = folder / name
                target.write_bytes(client.download(item["url"]))
                console.print(f"saved {key} → {target}", soft_wrap=True)  # a path must stay whole


@models_app.command("list")
def models_list(
    url: Url = DEFAULT_URL, task: Annotated[str | None, typer.Option(help="Only this task.")] = None
) -> None:
    """List the catalog."""
    with Client(url) as client:
        try:
            models = client.models(task)
        except ApiError as exc:
            raise _fail(exc) from None
    table = Table(Column("id", no_wrap=True), "task", "available", "why not")
    for m in models:
        available = m.get("available") or {}
        ok = bool(available.get("ok"))
        table.add_row(m["id"], m["task"], "yes" if ok else "[red]no[/red]", "" if ok else available.get("reason", ""))
    Console().print(table)


@models_app.command("show")
def models_show(model: str, url: Url = DEFAULT_URL) -> None:
    """One model: defaults, limits, runtime options and input schema (JSON)."""
    with Client(url) as client:
        try:
            typer.echo(json.dumps(client.model(model), indent=2))
        except ApiError as exc:
            raise _fail(exc) from None


@jobs_app.command("list")
def jobs_list(
    url: Url = DEFAULT_URL,
    status: Annotated[str | None, typer.Option(help="queued, running, succeeded, failed, canceled.")] = None,
    model: Annotated[str | None, typer.Option(help="Only this model.")] = None,
    limit: int = 20,
) -> None:
    """Recent jobs, newest first."""
    with Client(url) as client:
        try:
            page = client.requests(status=status, model=model, limit=limit)
        except ApiError as exc:
            raise _fail(exc) from None
    table = Table("request", "model", "state", "attempts", "error")
    for r in page["requests"]:
        table.add_row(r["request_id"], r["model_id"], r["state"], str(r["attempts"]), r.get("error_type") or "")
    Console().print(table)


@jobs_app.command("show")
def jobs_show(model: str, request_id: str, url: Url = DEFAULT_URL) -> None:
    """A job's status with its logs, and its result when it has one."""
    with Client(url) as client:
        try:
            status = dict(client.status(model, request_id, logs=True).raw)
            if status.get("state") == "succeeded":
                status["result"] = client.result(model, request_id).raw
        except ApiError as exc:
            raise _fail(exc) from None
    typer.echo(json.dumps(status, indent=2))


@jobs_app.command("cancel")
def jobs_cancel(model: str, request_id: str, url: Url = DEFAULT_URL) -> None:
    """Cancel a job: a queued one never runs, a running one stops at its next step."""
    with Client(url) as client:
        try:
            typer.echo(client.cancel(model, request_id))
        except ApiError as exc:
            raise _fail(exc) from None
