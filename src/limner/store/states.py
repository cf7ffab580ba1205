"""Job states and the transitions between them, guarded in this one place.

queued ──claim──▶ running ──▶ succeeded | failed | canceled
  │  ▲               │
  │  └─lease expiry──┘  (attempts + 1; failed as worker_lost when attempts run out)
  └──cancel──▶ canceled (or failed: start deadline passed)

Every write of a job's status is built by :func:`move`, whose WHERE clause admits only the
states that may go to the new one: a finished job can never be moved again, whatever the
caller's other conditions say. A job is born queued, or succeeded when the cache answers it
at submit (:func:`check_birth`).
"""

from __future__ import annotations

from typing import Any, Final, Literal

from sqlalchemy import Update, update
from sqlalchemy.sql.elements import ColumnElement

from limner.store.schema import jobs

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


BIRTHS: Final[frozenset[str]] = frozenset({QUEUED, SUCCEEDED})


def can_move(old: str, new: str) -> bool:
    return new in _ALLOWED.get(old, frozenset())


def sources_of(new: str) -> tuple[str, ...]:
    """The states a job may be in for an update to ``new`` to apply (for WHERE clauses)."""
    return tuple(old for old, targets in _ALLOWED.items() if new in targets)


def move(new: str, *where: ColumnElement[bool], **values: Any) -> Update:
    """``UPDATE jobs SET status = new, …values WHERE <where> AND status IN (states that may go
    to new)``: the one way a job's status is written."""
    sources = sources_of(new)
    if not sources:
        raise ValueError(f"no job may move to {new!r}")
    return update(jobs).where(jobs.c.status.in_(sources), *where).values(status=new, **values)


def check_birth(status: str) -> str:
    """The status a new job row may be written with."""
    if status not in BIRTHS:
        raise ValueError(f"a job cannot be written as {status!r}; it starts queued or (from the cache) succeeded")
    return status


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
