"""Per-key quotas: jobs per minute and compute seconds per day.

Configured with ``LIMNER_QUOTAS``: a YAML or JSON file, or inline JSON, keyed by API key id,
with limits for anonymous requests and a default for keys not listed::

    default: {jobs_per_minute: 120, compute_s_per_day: 36000}
    anonymous: {jobs_per_minute: 10, compute_s_per_day: 600}
    keys:
      team-a: {jobs_per_minute: 600}          # unset limits are unlimited
      batch-bot: {compute_s_per_day: 200000}

The key id is what authentication attaches to the request (``request.state.api_key_id``);
without authentication every request is anonymous.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from limner.errors import CatalogError


class Quota(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    jobs_per_minute: int | None = Field(default=None, ge=1)
    compute_s_per_day: float | None = Field(default=None, gt=0)


class Quotas(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    default: Quota = Field(default_factory=Quota)
    anonymous: Quota | None = None
    keys: dict[str, Quota] = Field(default_factory=dict)

    def for_key(self, api_key_id: str | None) -> Quota:
        if api_key_id is None:
            return self.anonymous or self.default
        return self.keys.get(api_key_id, self.default)

    @property
    def any(self) -> bool:
        limits = [self.default, self.anonymous, *self.keys.values()]
        return any(q is not None and (q.jobs_per_minute or q.compute_s_per_day) for q in limits)


def load_quotas(value: str) -> Quotas:
    """Parse ``LIMNER_QUOTAS`` (a file path or inline JSON); an empty value means no quotas."""
    if not value.strip():
        return Quotas()
    text = value if value.lstrip().startswith("{") else Path(value).read_text(encoding="utf-8")
    try:
        return Quotas.model_validate(yaml.safe_load(text) or {})
    except (yaml.YAMLError, ValidationError) as exc:
        raise CatalogError(f"LIMNER_QUOTAS is not a valid quota configuration: {exc}") from exc
