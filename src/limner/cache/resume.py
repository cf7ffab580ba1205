"""The diffusers side of approximate caching: keep a pipeline's latents after chosen steps,
and call a pipeline so that it starts from a saved latent after K steps instead of noise.

Worker-side only (it moves tensors; torch is imported inside the functions, as the semantic
index imports sentence-transformers): the API never imports this module.

Restarting works for pipelines whose scheduler takes explicit ``timesteps`` (Stable Diffusion
1.x/2.x/XL with Euler, DDIM, DPM-Solver...): the pipeline is called with the same steps count's
schedule minus its first K timesteps, and with the saved latent divided by the scheduler's
``init_noise_sigma`` for that shortened schedule, because the pipeline multiplies initial
latents by it. A multistep solver restarts first-order (its history is not saved).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import numpy as np

StepCallback = Callable[[Any, int, Any, dict[str, Any]], dict[str, Any]]


def capture(steps: list[int], sink: dict[int, np.ndarray[Any, Any]], then: StepCallback | None = None) -> StepCallback:
    """A ``callback_on_step_end`` that copies the latents after each step in ``steps`` (counted
    from 1: after the K-th denoising step of this call) into ``sink`` as float16 numpy arrays,
    then calls ``then`` (the adapter's progress callback). A resumed call counts from its own
    first step: pass ``k - skip_steps`` and add ``skip_steps`` back before saving."""
    wanted = set(steps)

    def on_step(pipe: Any, index: int, timestep: Any, tensors: dict[str, Any]) -> dict[str, Any]:
        done = index + 1
        if done in wanted and "latents" in tensors:
            sink[done] = tensors["latents"].detach().to("cpu").float().numpy().astype(np.float16)
        return then(pipe, index, timestep, tensors) if then is not None else tensors

    return on_step


def supports_resume(pipe: Any) -> bool:
    """Whether this pipeline can start from a saved latent (see the module docstring)."""
    call = inspect.signature(pipe.__call__).parameters
    set_timesteps = inspect.signature(pipe.scheduler.set_timesteps).parameters
    return "latents" in call and "timesteps" in call and "timesteps" in set_timesteps


def resume_arguments(pipe: Any, latents: np.ndarray[Any, Any], skip_steps: int, total_steps: int) -> dict[str, Any]:
    """Keyword arguments that make ``pipe`` run steps K+1..N of an N-step schedule from
    ``latents`` (the state after K steps): ``timesteps`` and ``latents``. Replaces the caller's
    ``num_inference_steps``."""
    import torch

    scheduler = pipe.scheduler
    device = getattr(pipe, "_execution_device", None) or pipe.device
    scheduler.set_timesteps(total_steps, device=device)
    remaining = [int(t) for t in scheduler.timesteps[skip_steps:]]
    scheduler.set_timesteps(timesteps=remaining, device=device)
    sigma = float(scheduler.init_noise_sigma)  # what the pipeline will multiply initial latents by
    dtype = next(pipe.unet.parameters()).dtype if hasattr(pipe, "unet") else torch.float32
    start = torch.from_numpy(np.asarray(latents, dtype=np.float32)).to(device=device, dtype=dtype) / sigma
    return {"timesteps": remaining, "latents": start}
