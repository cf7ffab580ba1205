"""What a workflow does next, decided from its definition, its input and its step jobs alone.

Pure: no store, no clock. The coordinator reads the workflow job and its children, asks
:func:`plan` what to do, and applies the answer in one transaction, so the state machine lives
in the store (the jobs) and any process can advance any workflow after any crash.

A step's runs are its jobs: one, or one per item of its ``for_each`` list (keys ``scene``,
``views.0``, ``views.1`` …). A run succeeds, fails (after its ``retries`` more attempts) or is
still going. A step is done when all its runs succeeded, skipped when its ``when`` is falsy,
failed when a run is out of attempts. The workflow succeeds when every step is done or
skipped, and fails with the first failed step's error.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from limner.store.states import CANCELED, FAILED, SUCCEEDED, TERMINAL
from limner.workflows.refs import INDEX, INPUT, ITEM, Missing, lookup, parse, resolve
from limner.workflows.spec import WorkflowEntry, WorkflowStep

MAX_FAN_OUT = 256
StepState = Literal["waiting", "running", "done", "skipped", "failed"]


@dataclass(frozen=True)
class Child:
    """What the planner needs of a step's job."""

    id: str
    step_key: str
    attempt: int
    status: str
    result: dict[str, Any] | None
    error: str | None
    error_type: str | None
    timed_out: bool = False


@dataclass(frozen=True)
class NewRun:
    step: WorkflowStep
    key: str  # the job's step_key
    attempt: int
    input: dict[str, Any]  # resolved, before the model's own validation


@dataclass
class Plan:
    start: list[NewRun] = field(default_factory=list)
    states: dict[str, StepState] = field(default_factory=dict)
    failed: tuple[str, str, str] | None = None  # (step id, error type, message)
    output: dict[str, Any] | None = None  # set when the workflow is complete

    @property
    def running(self) -> list[str]:
        return [step for step, state in self.states.items() if state == "running"]


def run_keys(step: WorkflowStep, count: int | None) -> list[str]:
    return [step.id] if count is None else [f"{step.id}.{i}" for i in range(count)]


def _latest(children: list[Child]) -> dict[str, Child]:
    latest: dict[str, Child] = {}
    for child in sorted(children, key=lambda c: c.attempt):
        latest[child.step_key] = child
    return latest


def _truthy(value: Any) -> bool:
    return bool(value) and value not in ("false", "0", "no")


def plan(workflow: WorkflowEntry, workflow_input: dict[str, Any], children: list[Child]) -> Plan:
    latest = _latest(children)
    scope: dict[str, Any] = {INPUT: workflow_input}
    out = Plan()
    for step in _in_order(workflow):
        needs = step.depends_on()
        if any(out.states.get(n) not in ("done", "skipped") for n in needs):
            failed_dep = any(out.states.get(n) == "failed" for n in needs)
            out.states[step.id] = "failed" if failed_dep else "waiting"
            continue
        try:
            if step.when is not None and not _truthy(_value(step.when, scope)):
                out.states[step.id] = "skipped"
                scope[step.id] = None
                continue
            items = _fan_out(step, scope)
        except (Missing, ValueError) as exc:
            out.states[step.id] = "failed"
            out.failed = out.failed or (step.id, "invalid_input", str(exc))
            continue
        state, results = _runs(step, items, scope, latest, out)
        out.states[step.id] = state
        if state == "done":
            scope[step.id] = results if items is not None else results[0]
    if out.failed is None and all(s in ("done", "skipped") for s in out.states.values()):
        try:
            out.output = resolve(workflow.output, scope)
        except Missing as exc:
            out.failed = ("output", "invalid_input", f"the workflow's output: {exc}")
    return out


def _value(text: str, scope: dict[str, Any]) -> Any:
    ref = parse(text)
    if ref is None:
        raise ValueError(f"{text!r} is not a reference")
    return lookup(ref, scope)


def _fan_out(step: WorkflowStep, scope: dict[str, Any]) -> list[Any] | None:
    if step.for_each is None:
        return None
    items = _value(step.for_each, scope)
    if not isinstance(items, list):
        raise ValueError(f"step {step.id}: for_each {step.for_each} is a {type(items).__name__}, not a list")
    if len(items) > MAX_FAN_OUT:
        raise ValueError(f"step {step.id}: for_each has {len(items)} items, over the limit of {MAX_FAN_OUT}")
    return items


def _runs(
    step: WorkflowStep,
    items: list[Any] | None,
    scope: dict[str, Any],
    latest: dict[str, Child],
    out: Plan,
) -> tuple[StepState, list[dict[str, Any]]]:
    keys = run_keys(step, None if items is None else len(items))
    results: list[dict[str, Any]] = []
    state: StepState = "done"
    for index, key in enumerate(keys):
        child = latest.get(key)
        if child is not None and child.status == SUCCEEDED:
            results.append(child.result or {})
            continue
        if child is not None and child.status not in TERMINAL:
            state = "running" if state != "failed" else state
            continue
        if child is not None and child.status in (FAILED, CANCELED) and child.attempt >= step.retries:
            error_type = "timeout" if child.timed_out else (child.error_type or "model_error")
            message = "timed out (timeout_s)" if child.timed_out else (child.error or error_type)
            out.failed = out.failed or (step.id, error_type, message)
            state = "failed"
            continue
        attempt = 0 if child is None else child.attempt + 1
        run_scope = dict(scope)
        if items is not None:
            run_scope[ITEM], run_scope[INDEX] = items[index], index
        try:
            resolved = resolve(step.input, run_scope)
        except Missing as exc:
            out.failed = out.failed or (step.id, "invalid_input", str(exc))
            state = "failed"
            continue
        out.start.append(NewRun(step, key, attempt, resolved))
        state = "running" if state != "failed" else state
    return state, results


def _in_order(workflow: WorkflowEntry) -> list[WorkflowStep]:
    """Steps with each after the steps it needs (the definition's order where free)."""
    placed: list[WorkflowStep] = []
    done: set[str] = set()
    remaining = list(workflow.steps)
    while remaining:  # the catalog refused cycles, so every pass places at least one step
        for step in list(remaining):
            if step.depends_on() <= done:
                placed.append(step)
                done.add(step.id)
                remaining.remove(step)
    return placed
