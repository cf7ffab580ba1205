"""Approximate caching inside a diffusers call (limner.cache.approximate, NIRVANA).

The worker hands the batch's ``BatchReuse`` to the adapter on its run context (``ctx.reuse``;
absent on contexts that do not take part). For a text-to-image job with one output that the
cache can resume, the row carries its plan; such a row never shares a forward pass with
others (its schedule and start differ), and its call starts from the cached latent after K
steps and runs the rest. Every call keeps the latents of its taking-part rows after the
steps later requests may resume from, and saves them once the call is done.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from limner.cache.approximate import BatchReuse, ResumePlan
from limner.cache.resume import StepCallback, capture, resume_arguments, supports_resume


def reuse_of(ctx: Any) -> BatchReuse | None:
    found = getattr(ctx, "reuse", None)
    return found if isinstance(found, BatchReuse) else None


def plan_for(ctx: Any, pipe: Any, job_id: str, task: str, outputs: int) -> ResumePlan | None:
    """The resume plan of a job, when it can take one (text-to-image, one output, a pipeline
    that restarts from a latent)."""
    reuse = reuse_of(ctx)
    if reuse is None or task != "text-to-image" or outputs != 1 or not supports_resume(pipe):
        return None
    return reuse.plan(job_id)


def call_key(job_id: str, plan: ResumePlan | None) -> Hashable:
    """Resumed rows run alone; the rest may share a pass."""
    return ("resumed", job_id) if plan is not None else None


@dataclass
class StepKeeper:
    """For one call: its resume arguments, and the step latents its rows keep."""

    reuse: BatchReuse | None
    job_ids: list[str]  # the job of each row of the call, in order
    total_steps: int
    plan: ResumePlan | None = None
    sink: dict[int, np.ndarray[Any, Any]] = field(default_factory=dict)
    wanted: dict[str, list[int]] = field(default_factory=dict)
    ran: int = 0  # denoising steps this call actually ran (counted by its step callback)

    @property
    def skip(self) -> int:
        return self.plan.skip_steps if self.plan is not None else 0

    def arguments(self, pipe: Any) -> dict[str, Any]:
        """``timesteps`` and ``latents`` for a resumed call (it replaces num_inference_steps)."""
        if self.plan is None:
            return {}
        return resume_arguments(pipe, self.plan.latents, self.plan.skip_steps, self.plan.total_steps)

    def callback(self, then: StepCallback) -> StepCallback:
        if self.reuse is not None:
            self.wanted = {j: self.reuse.capture_steps(j, self.total_steps) for j in dict.fromkeys(self.job_ids)}
        relative = sorted({k - self.skip for steps in self.wanted.values() for k in steps})
        inner = capture(relative, self.sink, then) if relative else then

        def counted(p: Any, step: int, timestep: Any, tensors: dict[str, Any]) -> dict[str, Any]:
            self.ran += 1
            return inner(p, step, timestep, tensors)

        return counted

    def save(self) -> None:
        """Keep each row's latents (by its job) for later requests."""
        if self.reuse is None:
            return
        if self.plan is not None:
            self.reuse.ran_steps[self.job_ids[0]] = self.ran
        for index, job_id in enumerate(self.job_ids):
            latents = {
                k: self.sink[k - self.skip][index : index + 1]
                for k in self.wanted.get(job_id, [])
                if k - self.skip in self.sink
            }
            if latents:
                self.reuse.save(job_id, latents, self.total_steps)


def cache_record(ctx: Any, job_id: str) -> dict[str, Any]:
    """The result's extra fields: ``cache`` when the job was resumed."""
    reuse = reuse_of(ctx)
    record = reuse.record(job_id) if reuse is not None else None
    return {"cache": record} if record else {}
