"""The batch loop every family shares (adapters.base.FamilyAdapter): rows cut into calls by
batch size and call key, canceled calls skipped, a call stopped at its next step, each job
encoded once its last row is made, progress as one count over the batch."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from pathlib import Path
from typing import ClassVar

import pytest

from limner.adapters.base import (
    Chunk,
    FamilyAdapter,
    JobOutput,
    LoadedModel,
    LoadEnv,
    RunContext,
    WorkItem,
    work_item,
)
from limner.catalog.entry import CatalogEntry
from limner.errors import InvalidInput
from limner.progress import Stage
from limner.tasks.image import TextToImageInput

STEPS = 3


class Context:
    """A RunContext that records what it is told; ``on_step`` may cancel jobs mid-call."""

    def __init__(self, canceled: set[str] | None = None) -> None:
        self.events: list[tuple[str, object]] = []
        self.canceled = canceled or set()
        self.job_ids: list[str] = []
        self.on_step: Callable[[int, int], None] = lambda step, total: None

    def stage(self, name: Stage) -> None:
        self.events.append(("stage", name))

    def step(self, step: int, total: int) -> None:
        self.events.append(("step", (step, total)))
        self.on_step(step, total)

    def log(self, message: str, level: str = "info") -> None:
        self.events.append(("log", message))

    def is_canceled(self, job_id: str) -> bool:
        return job_id in self.canceled

    def should_stop(self) -> bool:
        return all(j in self.canceled for j in self.job_ids)


class Counting(FamilyAdapter[TextToImageInput, str, str]):
    """Rows are "prompt:seed" strings; a call makes "made(row)" for each, in STEPS steps."""

    stage = Stage.DENOISING

    def __init__(self, key: Callable[[str], Hashable] | None = None) -> None:
        self.calls: list[list[str]] = []
        self.key = key

    def load(self, entry: CatalogEntry, env: LoadEnv) -> LoadedModel:
        return LoadedModel(handle=None, revision="r", size_bytes=0, device=env.device)

    def unload(self, model: LoadedModel) -> None: ...

    def check(self, model: LoadedModel, entry: CatalogEntry, item: WorkItem[TextToImageInput]) -> None:
        if item.input.prompt == "refused":
            raise InvalidInput("refused", loc=("body", "prompt"))

    def prepare(
        self, model: LoadedModel, entry: CatalogEntry, items: list[WorkItem[TextToImageInput]], ctx: RunContext
    ) -> list[list[str]]:
        return [[f"{i.input.prompt}:{i.input.chosen_seed() + k}" for k in range(i.input.num_outputs)] for i in items]

    def call_key(self, row: str) -> Hashable:
        return self.key(row) if self.key else None

    def call(self, model: LoadedModel, entry: CatalogEntry, chunk: Chunk[TextToImageInput, str]) -> list[str]:
        self.calls.append(list(chunk.rows))
        for step in range(STEPS):
            chunk.step(step + 1, STEPS)
        return [f"made({row})" for row in chunk.rows]

    def encode(
        self,
        model: LoadedModel,
        entry: CatalogEntry,
        item: WorkItem[TextToImageInput],
        results: list[str],
        ctx: RunContext,
    ) -> JobOutput:
        ctx.log(f"encode {item.job_id}")
        return JobOutput(files={}, extra={"made": results})


class OnePerCall(Counting):
    rows_per_call: ClassVar[int | None] = 1


def run(
    family: Counting, jobs: list[tuple[str, int]], ctx: Context, batch_size: int = 4
) -> tuple[list[JobOutput], list[list[str]]]:
    """Run a batch of (prompt, num_outputs) jobs, with seeds 10, 20, ..."""
    runtime = {"max_batch_size": batch_size}
    entry = CatalogEntry(id="t/count", task="text-to-image", family="faults", source="builtin://x", runtime=runtime)
    items = [
        work_item("text-to-image", f"j{n}", {"prompt": p, "num_outputs": k, "seed": 10 * (n + 1)})
        for n, (p, k) in enumerate(jobs)
    ]
    ctx.job_ids = [i.job_id for i in items]
    model = family.load(entry, LoadEnv("cpu", Path("/nonexistent")))
    return family.run(model, entry, items, ctx), family.calls


def made(outputs: list[JobOutput]) -> list[list[str] | None]:
    return [o.extra.get("made") for o in outputs]


def test_rows_are_cut_into_calls_of_the_batch_size_and_encoded_per_job() -> None:
    ctx = Context()
    outputs, calls = run(Counting(), [("a", 2), ("b", 1), ("c", 3)], ctx)
    assert calls == [["a:10", "a:11", "b:20", "c:30"], ["c:31", "c:32"]]
    assert made(outputs) == [["made(a:10)", "made(a:11)"], ["made(b:20)"], ["made(c:30)", "made(c:31)", "made(c:32)"]]
    # Jobs a and b are encoded after the first call, c after the second (its last row).
    logs = [e[1] for e in ctx.events if e[0] in ("log", "stage")]
    assert logs == [
        Stage.DENOISING,
        Stage.ENCODING_MEDIA,
        "encode j0",
        "encode j1",
        Stage.DENOISING,
        Stage.ENCODING_MEDIA,
        "encode j2",
    ]
    # One count over the batch: call i of n reports i * steps + done of n * steps.
    steps = [e[1] for e in ctx.events if e[0] == "step"]
    assert steps == [(1, 6), (2, 6), (3, 6), (4, 6), (5, 6), (6, 6)]


def test_rows_with_different_call_keys_never_share_a_call() -> None:
    outputs, calls = run(Counting(key=lambda row: row.startswith("n")), [("a", 1), ("neg", 2), ("b", 1)], Context())
    assert calls == [["a:10", "b:30"], ["neg:20", "neg:21"]]
    assert made(outputs) == [["made(a:10)"], ["made(neg:20)", "made(neg:21)"], ["made(b:30)"]]


def test_a_call_whose_jobs_are_all_canceled_is_skipped() -> None:
    outputs, calls = run(OnePerCall(), [("a", 1), ("b", 1), ("c", 1)], Context(canceled={"j1"}))
    assert calls == [["a:10"], ["c:30"]]
    assert made(outputs) == [["made(a:10)"], None, ["made(c:30)"]]
    assert outputs[1].files == {}


def test_a_call_stops_at_the_next_step_once_its_jobs_are_canceled() -> None:
    ctx = Context()

    def cancel_b(step: int, total: int) -> None:
        if step == STEPS + 1:  # the first step of the second call (job b's)
            ctx.canceled.add("j1")

    ctx.on_step = cancel_b
    outputs, calls = run(OnePerCall(), [("a", 1), ("b", 1), ("c", 1)], ctx)
    assert calls == [["a:10"], ["b:20"], ["c:30"]]
    steps = [e[1] for e in ctx.events if e[0] == "step"]
    assert steps == [(1, 9), (2, 9), (3, 9), (4, 9), (7, 9), (8, 9), (9, 9)]  # b stopped after its first step
    assert made(outputs) == [["made(a:10)"], None, ["made(c:30)"]]


def test_a_call_shared_with_a_live_job_runs_to_the_end() -> None:
    ctx = Context()
    ctx.on_step = lambda step, total: ctx.canceled.add("j0")
    outputs, calls = run(Counting(), [("a", 1), ("b", 1)], ctx)
    assert calls == [["a:10", "b:20"]]
    assert [e[1] for e in ctx.events if e[0] == "step"] == [(1, 3), (2, 3), (3, 3)]
    assert made(outputs) == [None, ["made(b:20)"]]


def test_nothing_runs_once_no_job_wants_its_output() -> None:
    ctx = Context()
    ctx.on_step = lambda step, total: ctx.canceled.update({"j0", "j1"})
    outputs, calls = run(OnePerCall(), [("a", 1), ("b", 1)], ctx)
    assert calls == [["a:10"]]
    assert made(outputs) == [None, None]
    assert ("stage", Stage.ENCODING_MEDIA) not in ctx.events


def test_a_refused_input_fails_the_batch_before_any_call() -> None:
    family = Counting()
    with pytest.raises(InvalidInput, match="refused"):
        run(family, [("a", 1), ("refused", 1)], Context())
    assert family.calls == []


def test_a_stored_input_that_no_longer_fits_its_schema_names_the_field() -> None:
    with pytest.raises(InvalidInput) as caught:
        work_item("text-to-image", "j", {"prompt": "x", "num_outputs": 0})
    assert caught.value.loc == ("body", "num_outputs")
