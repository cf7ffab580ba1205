"""The API's side of the cache, usage, quotas, metrics and request-id logging.

``ApiContext.obs`` builds one :class:`Observability` lazily; ``install`` adds its routes and
middleware to the app, and ``background`` keeps usage records and the cache swept.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import math
import secrets
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from limner.cache import keys
from limner.catalog.entry import CatalogEntry
from limner.errors import QuotaExceeded
from limner.logs import job_id, request_id
from limner.quotas import Quotas, load_quotas
from limner.store.cache import CacheStore
from limner.store.quality import QualityStore
from limner.store.records import NewJob, Submitted
from limner.store.usage import UsageStore, jobs_in_window, utc_day

if TYPE_CHECKING:
    from limner.api.context import ApiContext

log = logging.getLogger("limner.api.observability")


@dataclass
class Observability:
    cache: CacheStore
    usage: UsageStore
    quality: QualityStore
    quotas: Quotas
    # Models with cache entries, refreshed every couple of seconds: a submission for a model
    # with none skips the lookup (a thread hop and a query). An entry made since is still
    # found by the worker's own lookup before it runs the job.
    cached_models: set[str] = field(default_factory=set)

    @classmethod
    def build(cls, ctx: ApiContext) -> Observability:
        def price_of(model_id: str) -> float:
            if model_id in ctx.catalog:
                price = ctx.catalog.get(model_id).runtime.usd_per_gpu_hour
                if price is not None:
                    return price
            return ctx.settings.price_for("*")

        return cls(
            cache=CacheStore(ctx.engines, ctx.storage, ttl_s=ctx.settings.cache_ttl_s),
            usage=UsageStore(ctx.engines, price_of),
            quality=QualityStore(ctx.engines),
            quotas=load_quotas(ctx.settings.quotas),
        )

    def check_quota(self, ctx: ApiContext, api_key_id: str | None) -> None:
        """429 with Retry-After when the key is over a quota (a no-op without quotas)."""
        if not self.quotas.any:
            return
        quota = self.quotas.for_key(api_key_id)
        who = f"API key {api_key_id}" if api_key_id else "anonymous requests"
        if quota.jobs_per_minute:
            count, oldest = jobs_in_window(ctx.engines, api_key_id, 60.0)
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


async def background(ctx: ApiContext, interval_s: float = 2.0) -> None:
    """Record usage of finished jobs; now and then sweep cache entries whose media went."""
    last_sweep = 0.0
    while True:
        await asyncio.sleep(interval_s)
        try:
            await asyncio.to_thread(ctx.obs.usage.record_new)
            ctx.obs.cached_models = await asyncio.to_thread(ctx.obs.cache.models)
            if time.time() - last_sweep > 300:
                await asyncio.to_thread(ctx.obs.cache.purge_expired)
                last_sweep = time.time()
        except Exception as exc:
            log.warning("usage recorder could not reach the store: %s", exc)


class RequestIdMiddleware:
    """Give every HTTP request an id (``X-Request-Id`` in, or a new one), put it in the log
    context and echo it back."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope.get("headers") or []).get(b"x-request-id", b"").decode("latin-1")[:128]
        rid = given or secrets.token_hex(8)
        token = request_id.set(rid)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", rid.encode("latin-1"))]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            request_id.reset(token)


async def _quota_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, QuotaExceeded)
    return JSONResponse(
        status_code=429,
        content={"detail": exc.detail(), "error_type": exc.error_type},
        headers={"Retry-After": str(exc.retry_after_s)},
    )


def install(app: FastAPI) -> None:
    from limner.api import routes_cache, routes_metrics, routes_usage

    for module in (routes_cache, routes_usage, routes_metrics):
        app.include_router(module.router)
    app.add_exception_handler(QuotaExceeded, _quota_error)
    app.add_middleware(RequestIdMiddleware)


def api_key_of(request: Request) -> str | None:
    """The API key id authentication attached to the request (None: anonymous)."""
    value = getattr(request.state, "api_key_id", None)
    return value if isinstance(value, str) else None


def serve_cached(ctx: ApiContext, entry: CatalogEntry, job: NewJob) -> Submitted | None:
    """Answer a submission from the cache at once: a seeded request by its exact key, an
    unseeded semantic one by an identical earlier input (any seed). Semantic matches of
    other prompts need embeddings, which only workers compute."""
    revision = keys.revision_key(entry)
    seedless = job.cache_mode == "semantic"
    if seedless:
        hit = ctx.obs.cache.find(entry.id, revision, input_key=keys.input_key(entry, job.input))
    else:
        hit = ctx.obs.cache.find(entry.id, revision, exact_key=keys.exact_key(entry, job.input))
    if hit is None:
        return None
    ctx.obs.cache.serve(ctx.jobs, job, hit)
    job_id.set(job.id)
    log.info("request %s answered from the cache (%s hit of %s)", job.id, hit.kind, hit.source_job_id)
    return Submitted(job_id=job.id, created=True)
