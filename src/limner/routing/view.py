"""What ``GET /v1/routes`` and ``/metrics`` show about routes: each target's health, cooldown,
recent p50 run time, queue, and how its attempts ended (counted from the attempts' jobs)."""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any

from sqlalchemy import func, select

from limner.catalog.loader import Catalog
from limner.routing.health import TargetHealth
from limner.routing.signals import read_signals
from limner.routing.spec import ROUTE_KEY_PREFIX
from limner.store.engine import Engines
from limner.store.schema import jobs


def attempt_counts(engines: Engines) -> dict[tuple[str, str, str], int]:
    """(route, target, status) -> attempts ended so far (every attempt is a child job)."""
    parents = select(jobs.c.id, jobs.c.model_id).where(jobs.c.batch_key.startswith(ROUTE_KEY_PREFIX)).subquery()
    query = (
        select(parents.c.model_id, jobs.c.model_id, jobs.c.status, func.count())
        .join(parents, jobs.c.parent_id == parents.c.id)
        .group_by(parents.c.model_id, jobs.c.model_id, jobs.c.status)
    )
    with engines.read.connect() as conn:
        return {(route, target, status): int(n) for route, target, status, n in conn.execute(query)}


def routes_view(engines: Engines, catalog: Catalog) -> list[dict[str, Any]]:
    routes = catalog.routes()
    if not routes:
        return []
    entries = {t.model: catalog.get(t.model) for r in routes for t in r.targets}
    with engines.read.connect() as conn:
        signals = read_signals(conn, list(entries.values()), TargetHealth(engines))
    counts = attempt_counts(engines)
    now = time.time()
    out = []
    for route in routes:
        targets = []
        for target in route.targets:
            entry = entries[target.model]
            ended: dict[str, int] = defaultdict(int)
            for (r, t, status), n in counts.items():
                if r == route.id and t == target.model:
                    ended[status] += n
            targets.append(
                {
                    "model": target.model,
                    "family": entry.family,
                    "remote": entry.remote,
                    "when": target.when.model_dump(),
                    "usd_per_output": entry.runtime.usd_per_output,
                    "usd_per_second": entry.runtime.usd_per_second,
                    "attempts": dict(ended),
                    **signals[target.model].as_dict(now),
                }
            )
        out.append({**route.public(), "targets": targets})
    return out
