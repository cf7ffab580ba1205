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

import datetime as dt
import math
import time
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from limner.errors import QuotaExceeded
from limner.store.engine import Engines
from limner.store.usage import UsageStore, jobs_in_window, utc_day


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
    """Parse ``LIMNER_QUOTAS`` (a file path or inline JSON); an empty value means no quotas.

    Raises ValueError naming the setting: settings validation calls this, so a bad value
    stops the server at start instead of failing every submission."""
    if not value.strip():
        return Quotas()
    if value.lstrip().startswith("{"):
        text = value
    else:
        try:
            text = Path(value).read_text(encoding="utf-8")
        except OSError as exc:
            raise ValueError(f"LIMNER_QUOTAS: cannot read the quota file {value}: {exc.strerror}") from None
    try:
        return Quotas.model_validate(yaml.safe_load(text) or {})
    except yaml.YAMLError as exc:
        raise ValueError(f"LIMNER_QUOTAS is not valid YAML or JSON: {exc}") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise ValueError(f"LIMNER_QUOTAS: {where}: {first['msg']}") from None


class QuotaGate:
    """Checks a submission against its key's quotas: a 429 with Retry-After when over one."""

    def __init__(self, quotas: Quotas, engines: Engines, usage: UsageStore) -> None:
        self.quotas = quotas
        self.engines = engines
        self.usage = usage

    @property
    def active(self) -> bool:
        return self.quotas.any

    def check(self, api_key_id: str | None) -> None:
        if not self.quotas.any:
            return
        quota = self.quotas.for_key(api_key_id)
        who = f"API key {api_key_id}" if api_key_id else "anonymous requests"
        if quota.jobs_per_minute:
            count, oldest = jobs_in_window(self.engines, api_key_id, 60.0)
            if count >= quota.jobs_per_minute:
                wait = math.ceil((oldest or time.time()) + 60.0 - time.time())
                raise QuotaExceeded(
                    f"{who} submitted {count} jobs in the last minute (quota jobs_per_minute={quota.jobs_per_minute})",
                    retry_after_s=max(wait, 1),
                )
        if quota.compute_s_per_day:
            now = time.time()
            used = self.usage.compute_on(api_key_id, utc_day(now))
            if used >= quota.compute_s_per_day:
                tomorrow = dt.datetime.fromtimestamp(now, dt.UTC).date() + dt.timedelta(days=1)
                midnight = dt.datetime.combine(tomorrow, dt.time(), dt.UTC).timestamp()
                raise QuotaExceeded(
                    f"{who} used {used:.1f} compute seconds today "
                    f"(quota compute_s_per_day={quota.compute_s_per_day:g})",
                    retry_after_s=max(math.ceil(midnight - now), 1),
                )
