"""A bounded run of the kill-a-worker drill (benchmarks/chaos.py runs 100 trials)."""

from __future__ import annotations

import pytest
from benchmarks.chaos import run_trials

from tests.services import Postgres


def test_repeated_worker_kills_lose_and_duplicate_nothing() -> None:
    outcomes = run_trials(3)
    assert [o["ok"] for o in outcomes] == [True, True, True], outcomes
    assert all(o["completions"] == 1 and o["webhooks"] == 1 for o in outcomes)


@pytest.mark.postgres
def test_repeated_worker_kills_on_postgres(postgres: Postgres) -> None:
    postgres.reset()
    outcomes = run_trials(2, store=postgres.url)
    assert all(o["ok"] for o in outcomes), outcomes
