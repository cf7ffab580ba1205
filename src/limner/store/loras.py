"""LoRAs in the store: the registry (``GET /v1/loras``) and training jobs' checkpoints.

A checkpoint row is written only by the worker that holds the job's lease (in the same
transaction as the check), so a worker that was presumed dead cannot add checkpoints beside
the run that took its job over. A LoRA is registered in the transaction that completes its
training job, so a completed training always has its id and a failed one never does.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update

from limner.errors import InvalidInput, NotFound
from limner.store.engine import Engines
from limner.store.schema import jobs, lora_checkpoints, loras
from limner.store.states import RUNNING


@dataclass(frozen=True)
class Checkpoint:
    job_id: str
    step: int
    project: str
    lora_key: str
    state_key: str
    sha256: str
    file_size: int
    loss: float | None
    heldout_loss: float | None
    validation: list[str] = field(default_factory=list)  # storage keys of the validation images
    created_at: float = 0.0

    @classmethod
    def from_row(cls, row: Any) -> Checkpoint:
        m = row._mapping
        return cls(**{k: m[k] for k in cls.__dataclass_fields__})


@dataclass(frozen=True)
class Lora:
    id: str
    project: str
    job_id: str
    trainer: str
    base_model: str
    base_revision: str | None
    rank: int
    trigger_word: str | None
    file_key: str
    sha256: str
    file_size: int
    step: int
    revision: int
    created_at: float = 0.0
    updated_at: float = 0.0

    @classmethod
    def from_row(cls, row: Any) -> Lora:
        m = row._mapping
        return cls(**{k: m[k] for k in cls.__dataclass_fields__})

    def as_row(self) -> dict[str, Any]:
        return asdict(self)


def lora_id_for(job_id: str) -> str:
    """The id a training job registers its LoRA under: one per job, so a re-run (after a
    crash) registers the same id, never a second one."""
    return "lora_" + job_id.replace("-", "")[:24]


class LoraStore:
    def __init__(self, engines: Engines) -> None:
        self.engines = engines

    # -- checkpoints (workers) ---------------------------------------------------------------

    def save_checkpoint(self, worker_id: str, checkpoint: Checkpoint) -> bool:
        """Record a checkpoint if ``worker_id`` still holds the job; False if it does not."""
        with self.engines.write.begin() as conn:
            held = conn.execute(
                select(jobs.c.id).where(
                    jobs.c.id == checkpoint.job_id, jobs.c.lease_owner == worker_id, jobs.c.status == RUNNING
                )
            ).first()
            if held is None:
                return False
            conn.execute(
                delete(lora_checkpoints).where(
                    lora_checkpoints.c.job_id == checkpoint.job_id, lora_checkpoints.c.step == checkpoint.step
                )
            )
            row = {**asdict(checkpoint), "created_at": time.time()}
            conn.execute(insert(lora_checkpoints).values(**row))
        return True

    def checkpoints(self, job_id: str) -> list[Checkpoint]:
        with self.engines.read.connect() as conn:
            rows = conn.execute(
                select(lora_checkpoints).where(lora_checkpoints.c.job_id == job_id).order_by(lora_checkpoints.c.step)
            )
            return [Checkpoint.from_row(r) for r in rows]

    def latest_checkpoint(self, job_id: str) -> Checkpoint | None:
        found = self.checkpoints(job_id)
        return found[-1] if found else None

    # -- the registry ------------------------------------------------------------------------

    @staticmethod
    def register(conn: Connection, lora: Lora) -> None:
        """Register (or replace) a LoRA inside the caller's transaction."""
        now = time.time()
        conn.execute(delete(loras).where(loras.c.id == lora.id))
        conn.execute(insert(loras).values(**{**lora.as_row(), "created_at": now, "updated_at": now}))

    def get(self, lora_id: str) -> Lora | None:
        with self.engines.read.connect() as conn:
            row = conn.execute(select(loras).where(loras.c.id == lora_id)).first()
        return Lora.from_row(row) if row else None

    def list(self, project: str | None, limit: int = 100) -> list[Lora]:
        """Newest first; ``project`` None: every project (an admin's view)."""
        query = select(loras).order_by(loras.c.created_at.desc(), loras.c.id.desc()).limit(limit)
        if project is not None:
            query = query.where(loras.c.project == project)
        with self.engines.read.connect() as conn:
            return [Lora.from_row(r) for r in conn.execute(query)]

    def delete(self, lora_id: str) -> bool:
        with self.engines.write.begin() as conn:
            return bool(conn.execute(delete(loras).where(loras.c.id == lora_id)).rowcount)

    def promote(self, lora_id: str, step: int) -> Lora:
        """Make checkpoint ``step`` of the LoRA's training job be the LoRA (revision + 1)."""
        with self.engines.write.begin() as conn:
            row = conn.execute(select(loras).where(loras.c.id == lora_id)).first()
            if row is None:
                raise NotFound(f"no LoRA {lora_id}", loc=("path", "lora_id"))
            current = Lora.from_row(row)
            found = conn.execute(
                select(lora_checkpoints).where(
                    lora_checkpoints.c.job_id == current.job_id, lora_checkpoints.c.step == step
                )
            ).first()
            if found is None:
                steps = conn.execute(
                    select(lora_checkpoints.c.step)
                    .where(lora_checkpoints.c.job_id == current.job_id)
                    .order_by(lora_checkpoints.c.step)
                ).scalars()
                raise InvalidInput(
                    f"training {current.job_id} has no checkpoint at step {step} (it has: "
                    f"{', '.join(str(s) for s in steps) or 'none'})",
                    loc=("body", "step"),
                )
            checkpoint = Checkpoint.from_row(found)
            conn.execute(
                update(loras)
                .where(loras.c.id == lora_id)
                .values(
                    file_key=checkpoint.lora_key,
                    sha256=checkpoint.sha256,
                    file_size=checkpoint.file_size,
                    step=checkpoint.step,
                    revision=loras.c.revision + 1,
                    updated_at=time.time(),
                )
            )
            promoted = conn.execute(select(loras).where(loras.c.id == lora_id)).first()
        assert promoted is not None
        return Lora.from_row(promoted)
