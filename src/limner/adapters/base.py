"""The contract between the worker and an adapter family, and the batch loop every family shares.

A family module exposes ``make_adapter()``. The worker calls ``load`` once per resident model
and ``run`` once per batch; the adapter reports progress and reads cancellation through the
``RunContext`` it is given, and returns encoded media files, never tensors.

``FamilyAdapter`` owns ``run``, the same for every family:

1. check each item (``check``: inputs this model cannot take are refused, naming the field);
2. prepare each item's rows (``prepare``: e.g. one row per output image);
3. cut the rows into model calls of at most ``runtime.max_batch_size`` rows (``rows_per_call``
   and ``call_key`` narrow that), skip a call whose jobs were all canceled, stop when no job
   of the batch wants its output, and run the family's ``call`` on each, which reports its
   steps through its ``Chunk`` and is stopped at the next step once no job of it is wanted;
4. encode each job's results into its ``JobOutput`` (``encode``) as soon as its last row is
   made, under the ``encoding media`` stage.

A family writes its load and those four steps, nothing of the loop.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Protocol, TypeVar, runtime_checkable

from pydantic import ValidationError

from limner.errors import InvalidInput, ModelError
from limner.progress import Stage
from limner.tasks import TASKS, TaskInput

if TYPE_CHECKING:
    from limner.catalog.entry import CatalogEntry
    from limner.errors import LimnerError
    from limner.media.images import MediaFile

log = logging.getLogger("limner.adapters")

InputT = TypeVar("InputT", bound=TaskInput)
InputT_co = TypeVar("InputT_co", bound=TaskInput, covariant=True)
RowT = TypeVar("RowT")
ResultT = TypeVar("ResultT")

# Enters a stage of loading (building, loading) and says why in one line. The worker's goes to
# the jobs waiting for the model: their progress and their logs.
LoadReporter = Callable[[Stage, str], None]


def log_only(_stage: Stage, message: str) -> None:
    """The reporter of a load no job waits for (tests, benchmarks): the process log only."""
    log.info(message)


@dataclass(frozen=True)
class LoadEnv:
    """What loading needs to know about the machine, and where to say what it is doing."""

    device: str
    models_dir: Path
    report: LoadReporter = log_only


@dataclass
class LoadedModel:
    """A resident model: the adapter's handle plus what the worker needs to manage it."""

    handle: Any
    revision: str
    size_bytes: int
    device: str
    # What made this model's outputs (scheduler, dtype, …), worked out once at load by the
    # worker (``describe``) and recorded in every result's provenance.
    provenance: dict[str, Any] = field(default_factory=dict)


def describe(handle: Any) -> dict[str, str]:
    """The scheduler class and dtype of a loaded model's handle, whatever its family: a
    diffusers pipeline (or a family's wrapper holding one as ``base``/``pipe``), a torch or
    transformers module (``dtype``), or a tuple whose first element is one. Attributes are
    read, never called, so a handle without them (an ONNX net, a builtin) gives ``{}``."""
    found: dict[str, str] = {}
    candidates = [handle, *(getattr(handle, name, None) for name in ("base", "pipe", "model"))]
    if isinstance(handle, tuple):
        candidates.extend(handle)
    for candidate in candidates:
        if candidate is None:
            continue
        scheduler = getattr(candidate, "scheduler", None)
        if scheduler is not None and "scheduler" not in found:
            found["scheduler"] = type(scheduler).__name__
        dtype = getattr(candidate, "dtype", None)
        if dtype is not None and "dtype" not in found and not callable(dtype):
            found["dtype"] = str(dtype).removeprefix("torch.")
    return found


@dataclass(frozen=True)
class WorkItem(Generic[InputT_co]):
    """One job of a batch: its input as the task's schema (validated and finalized by the API:
    the seed chosen, file fields ``storage://`` references) and the bytes of its input files."""

    job_id: str
    input: InputT_co
    # Read on first use (the worker's are read from storage when asked for: a LoRA already
    # loaded is never read again).
    files: Mapping[str, bytes] = field(default_factory=dict)


def work_item(
    task: str, job_id: str, fields: Mapping[str, Any], files: Mapping[str, bytes] | None = None
) -> WorkItem[Any]:
    """The WorkItem of a stored job: its task's schema rebuilds the input from the stored fields."""
    try:
        spec = TASKS[task].input_model.model_validate(dict(fields))
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        raise InvalidInput(
            f"job {job_id}: its stored input does not fit the {task} schema: {first['msg']}",
            loc=("body", *(str(part) for part in first["loc"])),
        ) from None
    return WorkItem(job_id=job_id, input=spec, files=files if files is not None else {})


@dataclass
class JobOutput:
    """What one job produced: files under the task's output key, plus extra result fields.

    An adapter that can tell which job of a batch is at fault sets ``error`` on that job's
    output instead of raising (raising fails the whole batch)."""

    files: dict[str, list[MediaFile]]
    extra: dict[str, Any] = field(default_factory=dict)
    error: LimnerError | None = None


@runtime_checkable
class TextProgress(Protocol):
    """A RunContext that shows a stage's own figures (the worker's BatchContext does)."""

    def figures(self, values: dict[str, Any], *, now: bool = False) -> None: ...


class RunContext(Protocol):
    """Progress, logs and cancellation for the jobs of one batch."""

    def stage(self, name: Stage) -> None:
        """Enter a stage (e.g. ``Stage.ENCODING_PROMPT``, ``Stage.DENOISING``)."""

    def step(self, step: int, total: int) -> None:
        """Report that ``step`` of ``total`` steps of the current stage are done."""

    def log(self, message: str, level: str = "info") -> None: ...

    def is_canceled(self, job_id: str) -> bool:
        """True once the job was canceled (or its lease lost): its output will be discarded."""

    def should_stop(self) -> bool:
        """True when no job of the batch still wants its output: stop at the next step."""


class CheckpointSink(Protocol):
    """Where a training job keeps its checkpoints (the worker's: media storage + the store)."""

    def save(
        self,
        job_id: str,
        step: int,
        lora: bytes,
        state: bytes,
        images: list[MediaFile],
        loss: float | None,
        heldout_loss: float | None,
    ) -> dict[str, Any]:
        """Store a checkpoint (fenced by the job's lease); its entry for the result."""

    def latest_state(self, job_id: str) -> tuple[int, bytes] | None:
        """The step and resume-state bytes of the job's latest checkpoint, if it has one."""

    def entries(self, job_id: str) -> list[dict[str, Any]]:
        """The result entries of the job's checkpoints so far (a resumed run keeps them)."""


@runtime_checkable
class TrainingContext(RunContext, Protocol):
    """A RunContext a long training job can checkpoint through and report its loss to."""

    checkpoints: CheckpointSink | None

    def figures(self, values: dict[str, Any], *, now: bool = False) -> None:
        """Figures of the current stage shown in its progress (``loss``)."""


class Adapter(Protocol):
    def load(self, entry: CatalogEntry, env: LoadEnv) -> LoadedModel: ...

    def run(
        self, model: LoadedModel, entry: CatalogEntry, items: Sequence[WorkItem[Any]], ctx: RunContext
    ) -> list[JobOutput]:
        """Run a batch; return one JobOutput per item, in order."""
        ...

    def unload(self, model: LoadedModel) -> None:
        """Release what ``load`` took (device memory, offload hooks)."""


class Stopped(Exception):
    """Raised by ``Chunk.step`` when no job of the call still wants its output: raising (rather
    than a pipeline's interrupt flag) also skips what the call would do after its steps, such
    as decoding, and works for pipelines without such a flag."""


@dataclass
class Chunk(Generic[InputT, RowT]):
    """The rows of one model call, the item each row belongs to, and the call's progress."""

    rows: list[RowT]
    items: list[WorkItem[InputT]]  # the item of each row, in row order
    index: int  # which call of the batch
    count: int  # how many calls the batch makes
    ctx: RunContext

    @property
    def input(self) -> InputT:
        """The first row's input. Jobs share a batch only when all their fields but the
        per-item ones are equal (``TaskInput.per_item_fields``), so it holds the call's shared
        parameters: steps, guidance, size, duration."""
        return self.items[0].input

    def step(self, done: int, total: int) -> None:
        """Report ``done`` of this call's ``total`` steps (as progress through the whole batch),
        and raise ``Stopped`` when no job of the call still wants its output."""
        self.ctx.step(self.index * total + done, self.count * total)
        if self.unwanted():
            raise Stopped

    def unwanted(self) -> bool:
        """True when every job of this call was canceled (or its lease lost)."""
        return all(self.ctx.is_canceled(item.job_id) for item in self.items)


class FamilyAdapter(ABC, Generic[InputT, RowT, ResultT]):
    """The base of a family's adapter: the family writes ``load``, ``unload`` and the steps
    ``check``, ``prepare``, ``call`` and ``encode``; ``run`` is the batch loop, the same for all.

    ``InputT`` is the schema of the family's tasks, ``RowT`` what one row of a model call
    holds, ``ResultT`` what the call makes of one row.
    """

    # The stage of the model calls, entered before the first (and again after encoding a job
    # between calls); None when the call passes through stages of its own (encoding prompt,
    # denoising, decoding) and enters them itself.
    stage: ClassVar[Stage | None] = None
    # Rows per model call: None is the entry's runtime.max_batch_size; 1 for a model that takes
    # one input per call.
    rows_per_call: ClassVar[int | None] = None

    @abstractmethod
    def load(self, entry: CatalogEntry, env: LoadEnv) -> LoadedModel: ...

    @abstractmethod
    def unload(self, model: LoadedModel) -> None: ...

    def check(self, model: LoadedModel, entry: CatalogEntry, item: WorkItem[InputT]) -> None:
        """Refuse an input this model cannot take (InvalidInput naming the field). The whole
        batch fails with it, before any model call; by default every input the schema and the
        entry's limits let through is taken."""

    @abstractmethod
    def prepare(
        self, model: LoadedModel, entry: CatalogEntry, items: list[WorkItem[InputT]], ctx: RunContext
    ) -> list[list[RowT]]:
        """The rows of each item, in item order: what one model call takes per output."""

    def call_key(self, row: RowT) -> Hashable:
        """Rows with different keys never share a call (by default any rows may)."""
        return None

    @abstractmethod
    def call(self, model: LoadedModel, entry: CatalogEntry, chunk: Chunk[InputT, RowT]) -> list[ResultT]:
        """One model call over ``chunk.rows``, reporting its steps with ``chunk.step``: one
        result per row, in order."""

    @abstractmethod
    def encode(
        self, model: LoadedModel, entry: CatalogEntry, item: WorkItem[InputT], results: list[ResultT], ctx: RunContext
    ) -> JobOutput:
        """A job's output from the results of its rows (in row order)."""

    def run(
        self, model: LoadedModel, entry: CatalogEntry, items: Sequence[WorkItem[InputT]], ctx: RunContext
    ) -> list[JobOutput]:
        batch = list(items)
        for item in batch:
            self.check(model, entry, item)
        prepared = self.prepare(model, entry, batch, ctx)
        rows = [row for item_rows in prepared for row in item_rows]
        owners = [index for index, item_rows in enumerate(prepared) for _ in item_rows]
        rows_of = [[r for r, owner in enumerate(owners) if owner == index] for index in range(len(batch))]
        # A job with nothing to encode (canceled, or a call of it was stopped) gets no files:
        # the worker discards its output.
        outputs = [JobOutput(files={}) for _ in batch]
        made: dict[int, ResultT] = {}
        calls = self._calls(entry, rows)
        enter_stage = self.stage is not None
        for number, part in enumerate(calls):
            if ctx.should_stop():
                break
            chunk = Chunk([rows[r] for r in part], [batch[owners[r]] for r in part], number, len(calls), ctx)
            if chunk.unwanted():
                continue
            if enter_stage and self.stage is not None:
                ctx.stage(self.stage)
                enter_stage = False
            try:
                results = self.call(model, entry, chunk)
            except Stopped:
                continue
            if len(results) != len(part):
                raise ModelError(f"{entry.id}: a call over {len(part)} rows made {len(results)} results")
            made.update(zip(part, results, strict=True))
            # A job is encoded once its last row is made, so no more than about one call's
            # outputs (which can be large: upscaled images, video frames) wait in memory.
            finished = [i for i in dict.fromkeys(owners[r] for r in part) if all(r in made for r in rows_of[i])]
            wanted = [i for i in finished if not ctx.is_canceled(batch[i].job_id)]
            if wanted:
                ctx.stage(Stage.ENCODING_MEDIA)
                enter_stage = self.stage is not None
            for i in finished:
                mine = [made.pop(r) for r in rows_of[i]]
                if i in wanted:
                    outputs[i] = self.encode(model, entry, batch[i], mine, ctx)
        return outputs

    def _calls(self, entry: CatalogEntry, rows: list[RowT]) -> list[list[int]]:
        """Row indices per model call: rows grouped by ``call_key`` (in order of first
        appearance), each group cut into calls of at most ``rows_per_call``."""
        size = self.rows_per_call or max(1, entry.runtime.max_batch_size)
        groups: dict[Hashable, list[int]] = {}
        for index, row in enumerate(rows):
            groups.setdefault(self.call_key(row), []).append(index)
        return [group[i : i + size] for group in groups.values() for i in range(0, len(group), size)]
