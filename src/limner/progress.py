"""The one progress contract, for every task and modality.

A job's progress is ``{stage, step, total, percent, eta_s, preview_url?}`` wherever a client
sees it: the status route, the SSE and WebSocket streams, and ``progress`` webhooks. Stages
are the members of :class:`Stage`, which every adapter and the worker use, so a client can
show "denoising 12/30" for an image model and "encoding media" for a video model without
knowing which model it is. Torch-free: the API, the store and the adapters all import it.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Final


class Stage(StrEnum):
    """Every stage a job can be in, in the order a job passes through them (a model skips
    those it has no use for). A member is its value on the wire: ``Stage.DENOISING ==
    "denoising"``, and JSON writes it as that string."""

    QUEUED = "queued"
    STARTING = "starting"  # claimed by a worker, before it touches the model
    BUILDING = "building"  # a tiny:// model is being built on its first use
    LOADING = "loading"  # the model is being loaded into memory
    PREPARING = "preparing"  # inputs decoded and turned into what the model takes
    MAKING_CONTROL_MAP = "making the control map"  # ControlNet: edges, depth or pose from a picture
    ENCODING_PROMPT = "encoding prompt"
    DENOISING = "denoising"
    DECODING = "decoding"
    GENERATING = "generating"  # tokens, one at a time (music; later text)
    SEGMENTING = "segmenting"
    COMPOSITING = "compositing"
    UPSCALING = "upscaling"
    SYNTHESIZING = "synthesizing"  # speech
    ENCODING_MEDIA = "encoding media"
    UPLOADING = "uploading"
    RUNNING_STEPS = "running steps"  # a workflow: its steps' jobs are going
    MAKING_CLASS_IMAGES = "making class images"  # LoRA training with prior preservation
    TRAINING = "training"  # LoRA training: step, total, loss
    CHECKPOINTING = "checkpointing"  # LoRA training: a checkpoint's weights, state and validation images
    COMPLETED = "completed"
    CANCELED = "canceled"


# The two stages the job store sets itself (limner.store), under the names it imports.
QUEUED: Final = Stage.QUEUED
CANCELED: Final = Stage.CANCELED

STAGES: Final[tuple[Stage, ...]] = tuple(Stage)
KEYS: Final[tuple[str, ...]] = ("stage", "step", "total", "percent", "eta_s")


def make(
    stage: str, step: int = 0, total: int = 0, eta_s: float | None = None, extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A progress object with every key of the contract (``stage`` a plain string, as stored),
    plus a stage's own figures (``extra``: a training job's ``loss``)."""
    percent = round(100.0 * step / total, 1) if total else 0.0
    out: dict[str, Any] = {"stage": str(stage), "step": step, "total": total, "percent": percent, "eta_s": eta_s}
    if extra:
        out.update({k: v for k, v in extra.items() if k not in out})
    return out


def normalize(progress: dict[str, Any] | None, fallback_stage: str) -> dict[str, Any]:
    """Fill in the keys a stored progress object lacks (older rows, terminal states)."""
    out = make(fallback_stage)
    if progress:
        out.update({k: v for k, v in progress.items() if v is not None or k == "eta_s"})
    if "preview_url" in out and not out["preview_url"]:
        del out["preview_url"]
    return out
