"""Per-request job options that live outside the model's input: webhook, start deadline, retention.

They come as query parameters (and headers), never in the JSON body, so the body stays the
model's input alone, exactly as its schema says, and fal clients' ``?fal_webhook=`` works:

- ``webhook_url`` (or ``fal_webhook``): where to POST signed Standard Webhooks. Checked now
  by the SSRF guard and again at every delivery.
- ``webhook_events``: ``started``, ``progress``, ``completed`` (comma-separated; default completed).
- ``start_deadline_s`` or header ``X-Limner-Start-Deadline`` (fal clients: ``X-Fal-Request-Timeout``):
  fail with ``start_timeout`` if no worker has started the job within this many seconds.
- ``result_ttl_s`` or header ``X-Limner-Result-TTL``: keep the result this long after the job
  ends (default ``LIMNER_RESULT_TTL_S``; 0 there means for good).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from limner.errors import InvalidInput
from limner.net.guard import Refused, parse_allow_list, resolve_target
from limner.settings import Settings
from limner.store.outbox import EVENTS, parse_events
from limner.webhooks.sender import ALLOW_SETTING

MAX_URL = 2048
MAX_DEADLINE_S = 30 * 86400.0
MAX_TTL_S = 3650 * 86400.0

OPTIONS_DOC: list[dict[str, Any]] = [
    {
        "name": "webhook_url",
        "in": "query",
        "required": False,
        "schema": {"type": "string", "format": "uri", "maxLength": MAX_URL},
        "description": "POST signed Standard Webhooks here (fal clients: fal_webhook).",
    },
    {
        "name": "fal_webhook",
        "in": "query",
        "required": False,
        "schema": {"type": "string", "format": "uri", "maxLength": MAX_URL},
        "description": "Same as webhook_url, under the name fal clients use.",
    },
    {
        "name": "webhook_events",
        "in": "query",
        "required": False,
        "schema": {"type": "string", "default": "completed"},
        "description": f"Comma-separated events to send: {', '.join(EVENTS)}.",
    },
    {
        "name": "start_deadline_s",
        "in": "query",
        "required": False,
        "schema": {"type": "number", "exclusiveMinimum": 0, "maximum": MAX_DEADLINE_S},
        "description": "Fail with start_timeout unless started within this many seconds "
        "(or header X-Limner-Start-Deadline).",
    },
    {
        "name": "result_ttl_s",
        "in": "query",
        "required": False,
        "schema": {"type": "number", "exclusiveMinimum": 0, "maximum": MAX_TTL_S},
        "description": "Keep the result this long after the job ends (or header X-Limner-Result-TTL).",
    },
]


@dataclass(frozen=True)
class RequestOptions:
    webhook_url: str | None = None
    webhook_events: str | None = None
    start_deadline_s: float | None = None
    result_ttl_s: float | None = None


def _seconds(request: Request, query: str, header: str, maximum: float, *also: str) -> float | None:
    raw = request.query_params.get(query)
    where: tuple[str, str] = ("query", query)
    for name in (header, *also):
        if raw is None and request.headers.get(name) is not None:
            raw, where = request.headers.get(name), ("header", name.lower())
    if raw is None or raw == "":
        return None
    try:
        value = float(raw)
    except ValueError:
        raise InvalidInput(f"{where[1]} must be a number of seconds (got {raw!r})", loc=where) from None
    if not math.isfinite(value) or not 0 < value <= maximum:
        raise InvalidInput(f"{where[1]} must be over 0 and at most {maximum:g} seconds (got {raw})", loc=where)
    return value


def check_webhook_url(url: str, field: str, settings: Settings) -> str:
    """Refuse (422, naming the field) a URL the SSRF guard would not deliver to."""
    if len(url) > MAX_URL:
        raise InvalidInput(f"{field} is longer than {MAX_URL} characters", loc=("query", field))
    allow = parse_allow_list(settings.webhook_allow_hosts, ALLOW_SETTING)
    try:
        resolve_target(url, allow, setting=ALLOW_SETTING, action="send webhooks to")
    except Refused as exc:
        raise InvalidInput(f"{field}: {exc}", loc=("query", field)) from None
    return url


async def job_options(request: Request, settings: Settings) -> RequestOptions:
    params = request.query_params
    field = "webhook_url" if params.get("webhook_url") else "fal_webhook"
    url = params.get("webhook_url") or params.get("fal_webhook") or None
    events = params.get("webhook_events")
    try:
        parsed_events = parse_events(events)
    except ValueError as exc:
        raise InvalidInput(str(exc), loc=("query", "webhook_events")) from None
    if url is not None:
        url = await run_in_threadpool(check_webhook_url, url, field, settings)
    elif events:
        raise InvalidInput("webhook_events needs a webhook_url", loc=("query", "webhook_events"))
    ttl = _seconds(request, "result_ttl_s", "X-Limner-Result-TTL", MAX_TTL_S)
    return RequestOptions(
        webhook_url=url,
        webhook_events=",".join(parsed_events) if url else None,
        start_deadline_s=_seconds(
            request, "start_deadline_s", "X-Limner-Start-Deadline", MAX_DEADLINE_S, "X-Fal-Request-Timeout"
        ),
        result_ttl_s=ttl if ttl is not None else (settings.result_ttl_s or None),
    )
