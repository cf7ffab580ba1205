"""Per-model options for the result cache and quality monitoring (catalog ``cache`` and ``quality``)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

CacheMode = Literal["off", "exact", "semantic"]
CACHE_MODES: tuple[str, ...] = ("off", "exact", "semantic")
SemanticMethod = Literal["slots", "cosine"]

# "slots" (limner.cache.slots): every content slot of the two prompts must agree, and when
# only soft words (praise, polish) differ, the cosine of the normalised prompts must reach
# this. Chosen by benchmarks/cache.py: the lowest threshold with no wrong hit on the labelled
# pairs (3,200 generated, 200 hand-written).
DEFAULT_SLOTS_THRESHOLD = 0.85
# "cosine": the cosine of the raw prompts' embeddings alone. No threshold separates
# paraphrases from one-attribute changes (benchmarks/cache.py); kept for comparison.
DEFAULT_COSINE_THRESHOLD = 0.98
DEFAULT_SEMANTIC_THRESHOLD = DEFAULT_SLOTS_THRESHOLD

# NIRVANA (Agarwal et al., NSDI'24): the nearer the cached prompt, the more of its denoising
# can be reused. (least prompt cosine, share of the steps skipped), best first; the paper caches
# the latents at K = 5, 10, 15, 20, 25 of 50 steps, i.e. shares 0.1 to 0.5.
DEFAULT_APPROXIMATE_BANDS: tuple[tuple[float, float], ...] = (
    (0.95, 0.5),
    (0.90, 0.4),
    (0.85, 0.3),
    (0.80, 0.2),
    (0.75, 0.1),
)


class ApproximateOptions(BaseModel):
    """Approximate caching (NIRVANA): a diffusion request near a cached one but not a hit
    starts from that job's latent at step K and runs only the remaining steps."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(default=False, description="Reuse cached intermediate latents (opt-in per model).")
    bands: tuple[tuple[float, float], ...] = Field(
        default=DEFAULT_APPROXIMATE_BANDS,
        description="(least prompt cosine, share of steps skipped) pairs: the first band the similarity "
        "reaches gives K = share x steps.",
    )
    min_steps: int = Field(default=4, ge=2, le=1000, description="Requests with fewer steps run in full.")
    max_clip_drop: float = Field(
        default=0.05,
        gt=0,
        lt=1,
        description="Quality gate: stop approximate runs while their mean CLIP score is this share below "
        "the model's full runs (needs quality.clip_score).",
    )

    @model_validator(mode="after")
    def _check_bands(self) -> ApproximateOptions:
        last = 2.0
        for similarity, share in self.bands:
            if not 0 < similarity <= 1 or not 0 < share < 1:
                raise ValueError("each approximate band is (similarity in (0, 1], share of steps in (0, 1))")
            if similarity >= last:
                raise ValueError("approximate bands go from the highest similarity down")
            last = similarity
        return self


class CacheOptions(BaseModel):
    """How requests for this model use the result cache.

    ``exact``: a request with an explicit seed that was already served (same model revision,
    same input) is answered from the stored result. ``semantic``: a request without a seed is
    answered from an earlier result whose prompt means the same thing and whose other
    parameters are equal (``semantic_method``: ``slots``, the default, or ``cosine``).
    Requests choose with the ``X-Limner-Cache`` header; ``mode`` is their default.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: CacheMode = Field(default="exact", description="Default for requests that do not say (X-Limner-Cache).")
    semantic: bool = Field(default=False, description="Whether requests may ask for semantic hits (opt-in).")
    semantic_method: SemanticMethod = Field(
        default="slots",
        description="slots: content slots must agree, the embedding weighs only soft words; cosine: "
        "prompt embedding cosine alone (not safe against one-attribute changes).",
    )
    semantic_threshold: float = Field(
        default=DEFAULT_SLOTS_THRESHOLD,
        gt=0,
        le=1,
        description="slots: least cosine of the normalised prompts when only soft words differ (default "
        f"{DEFAULT_SLOTS_THRESHOLD}); cosine: least prompt cosine (default {DEFAULT_COSINE_THRESHOLD}).",
    )
    approximate: ApproximateOptions = Field(default_factory=ApproximateOptions)
    shared: bool = Field(
        default=False,
        description="Let cached results answer requests of every project (tenancy). Off: a hit never "
        "crosses projects, so one team's results and prompts stay its own.",
    )

    @model_validator(mode="after")
    def _check(self) -> CacheOptions:
        if self.mode == "semantic" and not self.semantic:
            raise ValueError("cache.mode semantic needs cache.semantic: true")
        if self.approximate.enabled and not self.semantic:
            raise ValueError("cache.approximate needs cache.semantic: true (it serves semantic-mode requests)")
        return self

    @model_validator(mode="before")
    @classmethod
    def _threshold_of_method(cls, data: Any) -> Any:
        """Each method's own default threshold (they measure different things)."""
        if isinstance(data, dict) and data.get("semantic_method") == "cosine" and "semantic_threshold" not in data:
            return {**data, "semantic_threshold": DEFAULT_COSINE_THRESHOLD}
        return data


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
