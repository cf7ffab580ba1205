"""Quality scores per output and per window, and the quality fields of a job's result."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, insert, select, update

from limner.quality.drift import Window
from limner.store.engine import Engines
from limner.store.schema import jobs, quality_scores, quality_windows
from limner.store.states import SUCCEEDED


class QualityStore:
    def __init__(self, engines: Engines) -> None:
        self.engines = engines

    def add_scores(self, job_id: str, model_id: str, rows: Sequence[tuple[int, float | None, bytes | None]]) -> None:
        now = time.time()
        with self.engines.write.begin() as conn:
            conn.execute(
                insert(quality_scores),
                [
                    {
                        "job_id": job_id,
                        "model_id": model_id,
                        "output_index": index,
                        "clip_score": score,
                        "features": features,
                        "created_at": now,
                    }
                    for index, score, features in rows
                ],
            )

    def merge_result(self, job_id: str, quality: dict[str, Any]) -> bool:
        """Add ``quality`` to a succeeded job's result (computed after it completed)."""
        with self.engines.write.begin() as conn:
            current = conn.execute(
                select(jobs.c.result).where(jobs.c.id == job_id, jobs.c.status == SUCCEEDED)
            ).scalar()
            if not isinstance(current, dict):
                return False
            merged = {**current, "quality": {**(current.get("quality") or {}), **quality}}
            conn.execute(update(jobs).where(jobs.c.id == job_id).values(result=merged, updated_at=time.time()))
        return True

    def window_due(self, model_id: str, size: int) -> bool:
        """True when the model has ``size`` more scored outputs than its windows cover."""
        with self.engines.read.connect() as conn:
            scored = conn.execute(
                select(func.count()).select_from(quality_scores).where(quality_scores.c.model_id == model_id)
            ).scalar_one()
            windows = conn.execute(
                select(func.count()).select_from(quality_windows).where(quality_windows.c.model_id == model_id)
            ).scalar_one()
        return int(scored) >= (int(windows) + 1) * size

    def recent(self, model_id: str, size: int) -> list[tuple[float | None, bytes | None]]:
        with self.engines.read.connect() as conn:
            rows = conn.execute(
                select(quality_scores.c.clip_score, quality_scores.c.features)
                .where(quality_scores.c.model_id == model_id)
                .order_by(quality_scores.c.seq.desc())
                .limit(size)
            )
            return [(r.clip_score, bytes(r.features) if r.features is not None else None) for r in rows]

    def add_window(self, model_id: str, window: Window, alert: str | None) -> None:
        with self.engines.write.begin() as conn:
            conn.execute(
                insert(quality_windows).values(
                    model_id=model_id,
                    created_at=time.time(),
                    samples=window.samples,
                    clip_mean=window.clip_mean,
                    fid=window.fid,
                    alert=alert,
                )
            )

    def baseline(self, model_id: str) -> Window | None:
        with self.engines.read.connect() as conn:
            row = conn.execute(
                select(quality_windows)
                .where(quality_windows.c.model_id == model_id)
                .order_by(quality_windows.c.seq)
                .limit(1)
            ).first()
        return Window(row.samples, row.clip_mean, row.fid) if row else None

    def windows(self, model_id: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        query = select(quality_windows).order_by(quality_windows.c.seq.desc()).limit(limit)
        if model_id:
            query = query.where(quality_windows.c.model_id == model_id)
        with self.engines.read.connect() as conn:
            return [{k: v for k, v in r._mapping.items() if k != "seq"} for r in conn.execute(query)]

    def latest_by_model(self) -> list[dict[str, Any]]:
        """Each model's newest window (for /metrics)."""
        newest = select(quality_windows.c.model_id, func.max(quality_windows.c.seq).label("seq")).group_by(
            quality_windows.c.model_id
        )
        sub = newest.subquery()
        with self.engines.read.connect() as conn:
            rows = conn.execute(select(quality_windows).join(sub, quality_windows.c.seq == sub.c.seq))
            return [dict(r._mapping) for r in rows]
