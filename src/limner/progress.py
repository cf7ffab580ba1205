"""The one progress contract, for every task and modality.

A job's progress is ``{stage, step, total, percent, eta_s, preview_url?}`` wherever a client
sees it: the status route, the SSE and WebSocket streams, and ``progress`` webhooks. Stages
have fixed names (below) that adapters import, so a client can show "denoising 12/30" for an
image model and "encoding media" for a video model without knowing which model it is.
Torch-free: the API, the store and the adapters all import it.
"""

from __future__ import annotations

from typing import Any, Final

QUEUED: Final = "queued"
STARTING: Final = "starting"  # claimed by a worker, before it touches the model
LOADING_MODEL: Final = "loading model"
ENCODING_PROMPT: Final = "encoding prompt"
DENOISING: Final = "denoising"
DECODING: Final = "decoding"
ENCODING_MEDIA: Final = "encoding media"
UPLOADING: Final = "uploading"
RUNNING_STEPS: Final = "running steps"  # a workflow: its steps' jobs are going
COMPLETED: Final = "completed"
CANCELED: Final = "canceled"

# In the order a job passes through them (a model may skip some).
STAGES: Final[tuple[str, ...]] = (
    QUEUED,
    STARTING,
    LOADING_MODEL,
    ENCODING_PROMPT,
    DENOISING,
    DECODING,
    ENCODING_MEDIA,
    UPLOADING,
    COMPLETED,
)
KEYS: Final[tuple[str, ...]] = ("stage", "step", "total", "percent", "eta_s")


def make(stage: str, step: int = 0, total: int = 0, eta_s: float | None = None) -> dict[str, Any]:
    """A progress object with every key of the contract."""
    percent = round(100.0 * step / total, 1) if total else 0.0
    return {"stage": stage, "step": step, "total": total, "percent": percent, "eta_s": eta_s}


def normalize(progress: dict[str, Any] | None, fallback_stage: str) -> dict[str, Any]:
    """Fill in the keys a stored progress object lacks (older rows, terminal states)."""
    out = make(fallback_stage)
    if progress:
        out.update({k: v for k, v in progress.items() if v is not None or k == "eta_s"})
    if "preview_url" in out and not out["preview_url"]:
        del out["preview_url"]
    return out
