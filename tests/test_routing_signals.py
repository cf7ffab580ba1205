"""The latency estimate routes use: work units, and the work ahead of a job at its priority."""

from __future__ import annotations

import pytest

from limner.catalog.entry import CatalogEntry
from limner.routing.choose import choose
from limner.routing.health import Health
from limner.routing.signals import Signal, work_units
from limner.routing.spec import RouteEntry


def test_work_units_follow_steps_outputs_and_tokens() -> None:
    defaults = {"num_inference_steps": 4}
    assert work_units({}, defaults) == 4
    assert work_units({"num_inference_steps": 30, "num_outputs": 2}, defaults) == 60
    assert work_units({"max_tokens": 128}, {}) == 128
    assert work_units({"prompt": "an upscale has neither"}, {}) == 1


def signal(**queued: float) -> Signal:
    return Signal(
        target="t", p50_s=0.2, queued=5, running=1, parallel=2, health=Health("t"),
        s_per_unit=0.1, queued_units=queued, running_left_s=1.0,
    )  # fmt: skip


def test_heavy_queued_jobs_count_by_their_size() -> None:
    # Three queued 30-step jobs at 0.1 s a step on 2 workers, 1 s left of the running one:
    # (90 x 0.1 + 1) / 2 of wait, then the job's own 2 steps.
    assert signal(normal=90).expected_s(2, "normal") == pytest.approx(5.0 + 0.2)
    # The same count of 2-step jobs is a short wait: the count alone would say the same for both.
    assert signal(normal=6).expected_s(2, "normal") == pytest.approx(0.8 + 0.2)


def test_a_job_waits_only_behind_what_it_cannot_overtake() -> None:
    queue = signal(high=10, normal=100, low=1000)
    assert queue.expected_s(1, "high") == pytest.approx((1 + 1) / 2 + 0.1)
    assert queue.expected_s(1, "normal") == pytest.approx((11 + 1) / 2 + 0.1)
    assert queue.expected_s(1, "low") == pytest.approx((111 + 1) / 2 + 0.1)
    assert Signal("t", None, 0, 0, 1, Health("t")).expected_s() is None  # no history: unknown


def test_over_budget_everywhere_goes_to_the_fastest_and_says_so() -> None:
    local = CatalogEntry(id="t/local", task="text-to-image", family="diffusers-image", source="tiny://sd")
    remote = CatalogEntry(
        id="t/remote", task="text-to-image", family="fal-queue", source="https://example.test/x",
        runtime={"api_key_env": "KEY"},
    )  # fmt: skip
    route = RouteEntry(id="t/route", task="text-to-image", targets=[{"model": "t/local"}, {"model": "t/remote"}])
    entries = {"t/local": local, "t/remote": remote}

    def signals(local_units: float, remote_units: float) -> dict[str, Signal]:
        def one(name: str, units: float) -> Signal:
            return Signal(name, 0.2, 1, 0, 1, Health(name), s_per_unit=0.1, queued_units={"normal": units})

        return {"t/local": one("t/local", local_units), "t/remote": one("t/remote", remote_units)}

    body = {"prompt": "x", "num_inference_steps": 2}
    # Local is over a 3 s budget (100 steps ahead: 10 s), remote is not: remote, local skipped.
    ok = choose(route, entries, body, "normal", set(), signals(100, 10), 3.0, 0.0)
    assert ok.entry is remote and ok.over_budget_s is None and [s["target"] for s in ok.skipped] == ["t/local"]
    # Both over: the one expected first (remote, 5.2 s) still gets it; local's skip is kept.
    late = choose(route, entries, body, "normal", set(), signals(100, 50), 3.0, 0.0)
    assert late.entry is remote and late.over_budget_s == pytest.approx(5.2)
    assert [s["target"] for s in late.skipped] == ["t/local"] and "latency budget of 3 s" in late.skipped[0]["why"]
