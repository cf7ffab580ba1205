"""The latency estimate routes use: work units, and the work ahead of a job at its priority."""

from __future__ import annotations

import pytest

from limner.routing.health import Health
from limner.routing.signals import Signal, work_units


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
