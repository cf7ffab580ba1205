"""Choosing a route's next target: which are skipped (and why), then the strategy's order.

A target is skipped when it was tried already for this job, when its ``when`` does not
match the job's priority, when it is cooling down, when its expected wait plus run time is
over the request's latency budget, or when it cannot take the input (``strict``: as sent;
``coerce``: after the changes ``coerce`` can make). When every target that could take the
job is over the budget, the one expected to finish first gets it: the budget steers, it does
not refuse (a request's hard limit is its start deadline). The others are ordered by the strategy:

- ``fallback``: the catalog's order;
- ``lowest-cost``: the catalog's price of the job (``usd_per_output`` x outputs plus
  ``usd_per_second`` x the recent p50 for a provider, device time at ``usd_per_gpu_hour``
  over the recent p50 for a local model);
- ``lowest-latency``: expected wait plus run time (limner.routing.signals: the work queued
  ahead of the job at its priority, at the target's recent seconds per step or token; targets
  with no history first: they are measured by being used);
- ``least-busy``: queued and running jobs per slot.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from limner.catalog.entry import CatalogEntry
from limner.catalog.inputs import finalize_input, parse_input
from limner.errors import InvalidInput
from limner.routing.coerce import coerce
from limner.routing.signals import Signal, work_units
from limner.routing.spec import RouteEntry


@dataclass
class Decision:
    entry: CatalogEntry | None = None
    body: dict[str, Any] = field(default_factory=dict)
    coerced: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    first_error: InvalidInput | None = None  # why the input fits no target (strict or coerce)
    # Every target that could take the job was over its latency budget: the fastest expected
    # got it (a budget steers; a hard limit is the request's start deadline).
    over_budget_s: float | None = None


def fit(route: RouteEntry, entry: CatalogEntry, body: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The body this target gets and the changes made to it; raises InvalidInput if it cannot."""
    changes: list[dict[str, Any]] = []
    if route.params == "coerce":
        body, changes = coerce(entry, {**entry.defaults, **body})
    finalize_input(entry, parse_input(entry, body))
    return body, changes


def cost_of(entry: CatalogEntry, body: dict[str, Any], signal: Signal) -> float:
    outputs = int(body.get("num_outputs") or entry.defaults.get("num_outputs") or 1)
    if entry.runtime.usd_per_output is not None or entry.runtime.usd_per_second is not None:
        per_output, per_second = entry.runtime.usd_per_output or 0.0, entry.runtime.usd_per_second or 0.0
        return per_output * outputs + per_second * (signal.p50_s or 0.0)
    per_hour = entry.runtime.usd_per_gpu_hour or 0.0
    return per_hour * (signal.p50_s or 0.0) / 3600


def choose(
    route: RouteEntry,
    entries: dict[str, CatalogEntry],
    body: dict[str, Any],
    priority: str,
    tried: set[str],
    signals: dict[str, Signal],
    budget_s: float | None,
    now: float,
) -> Decision:
    decision = Decision()
    ready: list[tuple[CatalogEntry, dict[str, Any], list[dict[str, Any]]]] = []
    late: list[tuple[float, int, CatalogEntry, dict[str, Any], list[dict[str, Any]], dict[str, str]]] = []
    for target in route.targets:
        entry = entries[target.model]
        signal = signals[entry.id]
        units = work_units(body, entry.defaults)
        why = _skip(target.when.priority, priority, tried, entry, signal, now)
        expected = signal.expected_s(units, priority)
        over = why is None and budget_s is not None and expected is not None and expected > budget_s
        if over:
            why = (
                f"expected {expected:.2f} s ({signal.queued} queued, {signal.running} running, "
                f"{signal.s_per_unit or 0:.4f} s per step or token) is over the latency budget of {budget_s:g} s"
            )
        if why is None or over:
            try:
                sent, changes = fit(route, entry, body)
            except InvalidInput as exc:
                decision.first_error = decision.first_error or exc
                why, over = f"cannot take the input ({route.params}): {exc.message}", False
        if why is not None:
            skip = {"target": entry.id, "why": why}
            decision.skipped.append(skip)
            if over and expected is not None:
                late.append((expected, len(late), entry, sent, changes, skip))
            continue
        ready.append((entry, sent, changes))
    if not ready and late:
        expected, _, entry, sent, changes, skip = min(late)
        decision.skipped.remove(skip)
        decision.over_budget_s = expected
        ready.append((entry, sent, changes))
    if not ready:
        return decision
    if route.strategy == "lowest-cost":
        ready.sort(key=lambda r: cost_of(r[0], r[1], signals[r[0].id]))
    elif route.strategy == "lowest-latency":
        ready.sort(key=lambda r: signals[r[0].id].expected_s(work_units(r[1], r[0].defaults), priority) or 0.0)
    elif route.strategy == "least-busy":
        ready.sort(key=lambda r: signals[r[0].id].busy)
    decision.entry, decision.body, decision.coerced = ready[0]
    return decision


def _skip(
    lanes: tuple[str, ...],
    priority: str,
    tried: set[str],
    entry: CatalogEntry,
    signal: Signal,
    now: float,
) -> str | None:
    if entry.id in tried:
        return "tried already for this request"
    if lanes and priority not in lanes:
        return f"only for priority {', '.join(lanes)} (this request: {priority})"
    if signal.health.cooling(now):
        left = (signal.health.cooldown_until or now) - now
        return f"cooling down for {left:.1f} s more (last error: {signal.health.last_error_type})"
    return None
