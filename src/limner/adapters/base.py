"""The contract between the worker and an adapter family.

A family module exposes ``make_adapter()``. The worker calls ``load`` once per resident model
and ``run`` once per batch; the adapter reports progress and reads cancellation through the
``RunContext`` it is given, and returns encoded media files, never tensors.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from limner.catalog.entry import CatalogEntry
    from limner.errors import LimnerError
    from limner.media.images import MediaFile


@dataclass(frozen=True)
class LoadEnv:
    """What loading needs to know about the machine."""

    device: str
    models_dir: Path


@dataclass
class LoadedModel:
    """A resident model: the adapter's handle plus what the worker needs to manage it."""

    handle: Any
    revision: str
    size_bytes: int
    device: str


@dataclass(frozen=True)
class WorkItem:
    """One job of a batch: its validated input and the bytes of its input files."""

    job_id: str
    input: dict[str, Any]
    files: dict[str, bytes] = field(default_factory=dict)


@dataclass
class JobOutput:
    """What one job produced: files under the task's output key, plus extra result fields.

    An adapter that can tell which job of a batch is at fault sets ``error`` on that job's
    output instead of raising (raising fails the whole batch)."""

    files: dict[str, list[MediaFile]]
    extra: dict[str, Any] = field(default_factory=dict)
    error: LimnerError | None = None


class RunContext(Protocol):
    """Progress, logs and cancellation for the jobs of one batch."""

    def stage(self, name: str) -> None:
        """Enter a named stage (e.g. "encoding prompt", "denoising", "decoding")."""

    def step(self, step: int, total: int) -> None:
        """Report that ``step`` of ``total`` steps of the current stage are done."""

    def log(self, message: str, level: str = "info") -> None: ...

    def is_canceled(self, job_id: str) -> bool:
        """True once the job was canceled (or its lease lost): its output will be discarded."""

    def should_stop(self) -> bool:
        """True when no job of the batch still wants its output: stop at the next step."""


def each_live_item(items: list[WorkItem], ctx: RunContext) -> Iterator[tuple[int, WorkItem]]:
    """A batch's items one at a time, for models that take one input per call: canceled jobs
    are skipped, the loop ends when no job wants its output, and a step is reported after
    each item is done."""
    for index, item in enumerate(items):
        if ctx.should_stop():
            return
        if ctx.is_canceled(item.job_id):
            continue
        yield index, item
        ctx.step(index + 1, len(items))


class Adapter(Protocol):
    def load(self, entry: CatalogEntry, env: LoadEnv) -> LoadedModel: ...

    def run(self, model: LoadedModel, entry: CatalogEntry, items: list[WorkItem], ctx: RunContext) -> list[JobOutput]:
        """Run a batch; return one JobOutput per item, in order."""
        ...

    def unload(self, model: LoadedModel) -> None:
        """Release what ``load`` took (device memory, offload hooks)."""
