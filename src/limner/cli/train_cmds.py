"""``limner train`` (a LoRA from a folder of images, with a progress bar that shows the loss)
and ``limner loras …`` (the LoRAs training made)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from limner.cli.client_cmds import DEFAULT_URL, Url, parse_inputs
from limner.client import ApiError, Client, Status

console = Console(stderr=True)
loras_app = typer.Typer(help="LoRAs made by training jobs.", no_args_is_help=True)


def _fail(exc: ApiError | ValueError) -> typer.Exit:
    console.print(f"[red]error[/red] {exc}")
    return typer.Exit(code=1)


def train(
    model: Annotated[str, typer.Argument(help="A lora-training model, e.g. limner/train-lora-flux.")],
    images: Annotated[
        str, typer.Argument(help="A folder of images (name.txt captions beside them), a .zip, or a URL.")
    ],
    trigger_word: Annotated[
        str | None, typer.Option("--trigger-word", help="The token that calls up the subject.")
    ] = None,
    steps: Annotated[int | None, typer.Option("--steps", help="Training steps.")] = None,
    rank: Annotated[int | None, typer.Option("--rank", help="LoRA rank.")] = None,
    inputs: Annotated[
        list[str] | None, typer.Option("-i", "--input", help="Other fields, key=value (repeatable).")
    ] = None,
    url: Url = DEFAULT_URL,
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Follow the training to its end.")] = True,
) -> None:
    """Train a LoRA: upload the images, queue the job, show steps and loss, print the LoRA."""
    fields: dict[str, Any] = parse_inputs(inputs or [])
    for name, value in (("trigger_word", trigger_word), ("steps", steps), ("rank", rank)):
        if value is not None:
            fields[name] = value
    with Client(url) as client:
        try:
            source: Any = Path(images) if not images.startswith(("http://", "https://", "data:")) else images
            handle = client.train(model, source, **fields)
            console.print(f"request [bold]{handle.request_id}[/bold]")
            if not wait:
                typer.echo(json.dumps(handle.as_dict(), indent=2))
                return
            result = _follow(client, model, handle.request_id)
        except (ApiError, ValueError) as exc:
            raise _fail(exc) from None
    typer.echo(json.dumps(result, indent=2))


def _follow(client: Client, model: str, request_id: str) -> dict[str, Any]:
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]}"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task("queued", total=None, loss="-")

        def update(event: Status) -> None:
            progress = event.raw.get("progress") or {}
            stage = progress.get("stage") or event.status
            total = progress.get("total") or None
            loss = progress.get("loss_avg", progress.get("loss"))
            shown = f"{loss:.4f}" if isinstance(loss, (int, float)) else "-"
            checkpoints = len(event.raw.get("checkpoints") or [])
            label = f"{stage} ({checkpoints} checkpoints)" if checkpoints else stage
            bar.update(task, description=label, completed=progress.get("step", 0), total=total, loss=shown)

        return client.wait(model, request_id, on_queue_update=update).raw


@loras_app.command("list")
def loras_list(url: Url = DEFAULT_URL) -> None:
    """The LoRAs of your project, newest first."""
    with Client(url) as client:
        try:
            found = client.loras()
        except ApiError as exc:
            raise _fail(exc) from None
    table = Table("id", "base model", "rank", "trigger", "step", "revision", "size")
    for lora in found:
        table.add_row(
            lora["id"],
            lora["base_model"],
            str(lora["rank"]),
            lora.get("trigger_word") or "",
            str(lora["step"]),
            str(lora["revision"]),
            f"{lora['file_size'] / 1024:.0f} KiB",
        )
    Console().print(table)


@loras_app.command("show")
def loras_show(lora_id: str, url: Url = DEFAULT_URL) -> None:
    """One LoRA with its training's checkpoints (JSON)."""
    with Client(url) as client:
        try:
            typer.echo(json.dumps(client.lora(lora_id), indent=2))
        except ApiError as exc:
            raise _fail(exc) from None


@loras_app.command("promote")
def loras_promote(lora_id: str, step: int, url: Url = DEFAULT_URL) -> None:
    """Make the checkpoint at ``step`` be the LoRA."""
    with Client(url) as client:
        try:
            typer.echo(json.dumps(client.promote_lora(lora_id, step), indent=2))
        except ApiError as exc:
            raise _fail(exc) from None


@loras_app.command("delete")
def loras_delete(lora_id: str, url: Url = DEFAULT_URL) -> None:
    """Unregister a LoRA (its files stay with its training's result)."""
    with Client(url) as client:
        try:
            typer.echo(json.dumps(client.delete_lora(lora_id)))
        except ApiError as exc:
            raise _fail(exc) from None
