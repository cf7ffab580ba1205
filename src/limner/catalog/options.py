"""Per-model options for the result cache and quality monitoring (catalog ``cache`` and ``quality``)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

CacheMode = Literal["off", "exact", "semantic"]
CACHE_MODES: tuple[str, ...] = ("off", "exact", "semantic")

# Cosine similarity of all-MiniLM-L6-v2 prompt embeddings above which two unseeded prompts
# count as one request. Chosen from benchmarks/cache.py (labelled paraphrase / near-miss
# pairs): the lowest threshold whose wrong-hit rate stays at or under 1%.
DEFAULT_SEMANTIC_THRESHOLD = 0.98


class CacheOptions(BaseModel):
    """How requests for this model use the result cache.

    ``exact``: a request with an explicit seed that was already served (same model revision,
    same input) is answered from the stored result. ``semantic``: a request without a seed is
    answered from an earlier result whose prompt means the same thing (cosine similarity of
    prompt embeddings over ``semantic_threshold``) and whose other parameters are equal.
    Requests choose with the ``X-Limner-Cache`` header; ``mode`` is their default.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: CacheMode = Field(default="exact", description="Default for requests that do not say (X-Limner-Cache).")
    semantic: bool = Field(default=False, description="Whether requests may ask for semantic hits (opt-in).")
    semantic_threshold: float = Field(
        default=DEFAULT_SEMANTIC_THRESHOLD, gt=0, le=1, description="Least prompt cosine similarity of a semantic hit."
    )
    shared: bool = Field(
        default=False,
        description="Let cached results answer requests of every project (tenancy). Off: a hit never "
        "crosses projects, so one team's results and prompts stay its own.",
    )

    @model_validator(mode="after")
    def _check(self) -> CacheOptions:
        if self.mode == "semantic" and not self.semantic:
            raise ValueError("cache.mode semantic needs cache.semantic: true")
        return self


class QualityOptions(BaseModel):
    """Quality monitoring of this model's outputs, computed after each job completes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    clip_score: bool = Field(default=False, description="Score every output's text-image alignment with CLIP.")
    fid_reference: str | None = Field(
        default=None, description="A folder of reference images: FID of each window of outputs against them."
    )
    window: int = Field(default=64, ge=2, le=100_000, description="Outputs per quality window (FID, drift).")
    clip_drop_alert: float = Field(
        default=0.1,
        gt=0,
        lt=1,
        description="Alert when a window's mean CLIP score falls this fraction below the first.",
    )
    fid_alert: float | None = Field(default=None, gt=0, description="Alert when a window's FID rises above this.")

    @property
    def enabled(self) -> bool:
        return self.clip_score or self.fid_reference is not None
