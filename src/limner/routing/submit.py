"""A route submission becomes one route job: the body checked against every target (a 422
when no target can take it: bad input never falls back), a seed chosen once so every attempt
makes the same picture (when every target takes a seed), and the request's latency budget kept with the job. The route's
coordinator then starts its first attempt."""

from __future__ import annotations

import secrets
import uuid
from typing import Any

from limner.catalog.inputs import body_hash
from limner.catalog.loader import Catalog
from limner.errors import InvalidInput
from limner.intake.build import JobOptions
from limner.routing.choose import fit
from limner.routing.spec import ROUTE_KEY_PREFIX, RouteEntry
from limner.store.records import NewJob
from limner.tasks import TASKS
from limner.tasks.base import MAX_SEED

BUDGET_HEADER = "x-limner-latency-budget"
MAX_BUDGET_S = 86_400.0


def latency_budget(header: str | None) -> float | None:
    """``X-Limner-Latency-Budget`` in seconds (a 422 naming the header when it is not one)."""
    if header is None or not header.strip():
        return None
    try:
        value = float(header.strip())
    except ValueError:
        value = -1.0
    if not 0 < value <= MAX_BUDGET_S:
        raise InvalidInput(
            f"X-Limner-Latency-Budget must be seconds above 0 and at most {MAX_BUDGET_S:g} (got {header!r})",
            loc=("header", BUDGET_HEADER),
        )
    return value


def budget_of(batch_key: str, route: RouteEntry) -> float | None:
    """The latency budget a route job was given (kept in its batch key, which no worker claims by)."""
    _, _, given = batch_key.partition("@")
    return float(given) if given else route.latency_budget_s


def route_job(route: RouteEntry, body: Any, options: JobOptions, catalog: Catalog, budget_s: float | None) -> NewJob:
    if not isinstance(body, dict):
        raise InvalidInput("the request body must be a JSON object of input fields", loc=("body",))
    body = {k: v for k, v in body.items() if v is not None}
    first: InvalidInput | None = None
    for target in route.targets:
        try:
            fit(route, catalog.get(target.model), body)
            break
        except InvalidInput as exc:
            first = first or exc
    else:
        assert first is not None
        raise type(first)(
            f"no target of route {route.id} can take this input ({route.params} params): {first.message}",
            loc=first.loc,
        )
    hashed = body_hash({"model": route.id, "body": body})  # as sent: an Idempotency-Key repeat matches
    # One seed for every attempt, unless a target takes none (OpenAI's Images API): it would
    # refuse the route's seed, and the attempts cannot make the same picture anyway; each
    # local attempt then draws its own.
    seeded = all("seed" not in catalog.get(t.model).unsupported for t in route.targets)
    if seeded and "seed" in TASKS[route.task].input_model.model_fields and body.get("seed") is None:
        body["seed"] = secrets.randbelow(MAX_SEED + 1)
    key = ROUTE_KEY_PREFIX + route.id + (f"@{budget_s:g}" if budget_s is not None else "")
    return NewJob(
        id=str(uuid.uuid4()),
        model_id=route.id,
        task=route.task,
        priority=options.priority,
        input=body,
        batch_key=key,
        body_hash=hashed,
        idempotency_key=options.idempotency_key,
        max_attempts=1,
        webhook_url=options.webhook_url,
        webhook_events=options.webhook_events,
        start_deadline_s=options.start_deadline_s,
        result_ttl_s=options.result_ttl_s,
        api_key_id=options.caller.key_id,
        cache_mode="off",  # the route itself is never cached; its attempts follow their models
        project=options.caller.project,
        batch_id=options.batch_id,
        advance_due=True,  # a coordinator starts its first attempt
    )
