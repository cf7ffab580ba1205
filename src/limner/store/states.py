"""Job states and the transitions between them, validated in this one place.

queued ──claim──▶ running ──▶ succeeded | failed | canceled
  │  ▲               │
  │  └─lease expiry──┘  (attempts + 1; failed as worker_lost when attempts run out)
  └──cancel──▶ canceled
"""

from __future__ import annotations

from typing import Final, Literal

QUEUED: Final = "queued"
RUNNING: Final = "running"
SUCCEEDED: Final = "succeeded"
FAILED: Final = "failed"
CANCELED: Final = "canceled"

Status = Literal["queued", "running", "succeeded", "failed", "canceled"]
STATUSES: Final[tuple[str, ...]] = (QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELED)
TERMINAL: Final[frozenset[str]] = frozenset({SUCCEEDED, FAILED, CANCELED})

_ALLOWED: Final[dict[str, frozenset[str]]] = {
    QUEUED: frozenset({RUNNING, CANCELED, FAILED}),
    RUNNING: frozenset({SUCCEEDED, FAILED, CANCELED, QUEUED}),
    SUCCEEDED: frozenset(),
    FAILED: frozenset(),
    CANCELED: frozenset(),
}

PRIORITIES: Final[dict[str, int]] = {"high": 1, "normal": 0, "low": -1}


def can_move(old: str, new: str) -> bool:
    return new in _ALLOWED.get(old, frozenset())


def check_move(old: str, new: str) -> None:
    if not can_move(old, new):
        raise ValueError(f"a job cannot go from {old} to {new}")


def sources_of(new: str) -> tuple[str, ...]:
    """The states a job may be in for an update to ``new`` to apply (for WHERE clauses)."""
    return tuple(old for old, targets in _ALLOWED.items() if new in targets)


def queue_status(status: str) -> str:
    """The fal queue protocol's view of a state."""
    if status == QUEUED:
        return "IN_QUEUE"
    if status == RUNNING:
        return "IN_PROGRESS"
    return "COMPLETED"


def rank_for(created_at: float, priority: str, step_s: float) -> float:
    """Claim order key: lower runs first.

    Each priority level is a head start of ``step_s`` seconds, so a low job that has waited
    ``2 * step_s`` longer than a high one runs before it: waiting ages a job upward.
    """
    return created_at - PRIORITIES[priority] * step_s
