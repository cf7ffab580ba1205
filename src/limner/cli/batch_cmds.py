"""``limner batch submit|status|list|cancel|retry|output``: batch runs on a server.

    limner batch submit products.csv --model limner/product-photo --template '{"image": "{image_url}"}'

uploads the file, creates the batch and follows it with a progress bar (rows done and failed,
rate, ETA); Ctrl-C stops following, never the batch.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from limner.cli.client_cmds import DEFAULT_URL, Url, _fail
from limner.client import ApiError, Client
from limner.client.models import Batch

console = Console(stderr=True)
batch_app = typer.Typer(help="Batch runs: a model or workflow over a JSONL or CSV file.", no_args_is_help=True)


def _template(value: str | None) -> dict[str, str] | None:
    if value is None:
        return None
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as exc:
        raise typer.BadParameter(f"--template is not JSON: {exc.msg}", param_hint="--template") from None
    if not isinstance(parsed, dict) or not all(isinstance(v, str) for v in parsed.values()):
        raise typer.BadParameter('--template must be a JSON object of strings: {"image": "{image_url}"}')
    return parsed


def _line(batch: Batch) -> str:
    c = batch.request_counts
    return (
        f"{batch.id} {batch.status}: {c.get('succeeded', 0)} succeeded, {c.get('failed', 0)} failed, "
        f"{c.get('canceled', 0)} canceled, {c.get('running', 0)} running, {c.get('queued', 0)} queued "
        f"of {c.get('total', 0)}"
    )


def follow(client: Client, batch: Batch) -> Batch:
    """A progress bar until the batch ends: rows done (and failed), rate, time left."""
    total = batch.request_counts.get("total", 0)
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]:.1f} rows/s"),
        TimeRemainingColumn(),
    )
    started = time.monotonic()
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task(batch.status, total=total, rate=0.0)

        def update(now: Batch) -> None:
            c = now.request_counts
            done = c.get("succeeded", 0) + c.get("failed", 0) + c.get("canceled", 0)
            label = f"{now.status} ({c.get('failed', 0)} failed)"
            bar.update(task, completed=done, description=label, rate=done / max(time.monotonic() - started, 1e-6))

        return client.wait_batch(batch.id, on_update=update, poll_s=0.5)


@batch_app.command("submit")
def submit(
    file: Annotated[Path, typer.Argument(help="A JSONL ({custom_id, input} per line) or CSV file.", exists=True)],
    model: Annotated[str, typer.Option("--model", help="A model or workflow id.")],
    template: Annotated[
        str | None, typer.Option("--template", help='CSV columns into input fields: {"image": "{image_url}"}.')
    ] = None,
    max_concurrency: Annotated[int | None, typer.Option("--max-concurrency", help="Rows in the queue at once.")] = None,
    priority: Annotated[str, typer.Option("--priority", help="high, normal or low (default).")] = "low",
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Follow it with a progress bar.")] = True,
    url: Url = DEFAULT_URL,
) -> None:
    """Upload FILE and run MODEL over its rows."""
    with Client(url) as client:
        try:
            batch = client.create_batch(
                model, file=file, template=_template(template), max_concurrency=max_concurrency, priority=priority
            )
            console.print(f"batch [bold]{batch.id}[/bold]: {batch.request_counts.get('total', 0)} rows")
            if wait:
                batch = follow(client, batch)
        except ApiError as exc:
            raise _fail(exc) from None
    typer.echo(_line(batch))


@batch_app.command("status")
def status(batch_id: str, url: Url = DEFAULT_URL) -> None:
    """A batch's status and counts (JSON)."""
    with Client(url) as client:
        try:
            typer.echo(json.dumps(client.batch(batch_id).raw, indent=2))
        except ApiError as exc:
            raise _fail(exc) from None


@batch_app.command("list")
def list_batches(url: Url = DEFAULT_URL, limit: int = 20) -> None:
    """Recent batches, newest first."""
    with Client(url) as client:
        try:
            page = client.batches(limit=limit)
        except ApiError as exc:
            raise _fail(exc) from None
    for item in page["data"]:
        typer.echo(_line(Batch.of(item)))


@batch_app.command("cancel")
def cancel(batch_id: str, url: Url = DEFAULT_URL) -> None:
    """Stop admitting rows and cancel those in flight; finished rows stay."""
    with Client(url) as client:
        try:
            typer.echo(_line(client.cancel_batch(batch_id)))
        except ApiError as exc:
            raise _fail(exc) from None


@batch_app.command("retry")
def retry(
    batch_id: str,
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Follow it with a progress bar.")] = True,
    url: Url = DEFAULT_URL,
) -> None:
    """A new batch of the failed and canceled rows."""
    with Client(url) as client:
        try:
            batch = client.retry_batch(batch_id)
            console.print(f"batch [bold]{batch.id}[/bold] retries {batch.request_counts.get('total', 0)} rows")
            if wait:
                batch = follow(client, batch)
        except ApiError as exc:
            raise _fail(exc) from None
    typer.echo(_line(batch))


@batch_app.command("output")
def output(
    batch_id: str,
    errors: Annotated[bool, typer.Option("--errors", help="Only the failed and canceled rows.")] = False,
    out: Annotated[Path | None, typer.Option("--out", help="Write the JSONL here instead of stdout.")] = None,
    url: Url = DEFAULT_URL,
) -> None:
    """The JSONL output so far: a line per finished row."""
    with Client(url) as client:
        try:
            lines: list[dict[str, Any]] = client.batch_output(batch_id, errors=errors)
        except ApiError as exc:
            raise _fail(exc) from None
    text = "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines)
    if out is None:
        typer.echo(text, nl=False)
    else:
        out.write_text(text)
        console.print(f"{len(lines)} lines → {out}", soft_wrap=True)
