"""The HTTP API. ``create_app(settings)`` builds it; nothing here imports torch."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI

from limner import __version__
from limner.api import (
    errors,
    observability,
    routes_catalog,
    routes_files,
    routes_health,
    routes_queue,
    routes_requests,
    routes_run,
    routes_status_ws,
    routes_workers,
    webhooks_routes,
)
from limner.api.auth import ApiKeyMiddleware
from limner.api.bodylimit import BodyLimit
from limner.api.context import ApiContext
from limner.api.integration import build_integration
from limner.api.openai_compat import images as openai_images
from limner.api.openai_compat import speech as openai_speech
from limner.api.submitter import Submitter
from limner.api.watcher import Watcher
from limner.catalog import Catalog, load_catalog
from limner.settings import Settings
from limner.storage import storage_for
from limner.store.engine import make_engines, upgrade
from limner.store.jobs import JobStore
from limner.store.queue import WorkQueue
from limner.store.workers import WorkerRegistry

log = logging.getLogger("limner.api")


def build_context(settings: Settings, catalog: Catalog | None = None) -> ApiContext:
    engines = make_engines(settings.store)
    upgrade(engines)
    jobs = JobStore(engines, priority_step_s=settings.priority_step_s)
    integration = build_integration(settings, engines, storage_for(settings))
    return ApiContext(
        settings=settings,
        catalog=catalog if catalog is not None else load_catalog(settings.catalog),
        engines=engines,
        jobs=jobs,
        queue=WorkQueue(engines, lease_s=settings.lease_s),
        workers=WorkerRegistry(engines),
        storage=integration.storage,
        submitter=Submitter(jobs, max_batch=settings.submit_batch_max),
        watcher=Watcher(engines, settings.stream_poll_s),
        integration=integration,
    )


async def _reaper(ctx: ApiContext) -> None:
    """Workers reap each other's expired leases; the API does too, so that jobs of a dead
    worker come back even when no other worker is running."""
    interval = max(ctx.settings.lease_s / 2, 0.5)
    while True:
        await asyncio.sleep(interval)
        try:
            await asyncio.to_thread(ctx.queue.reap)
        except Exception as exc:
            log.warning("reaper could not reach the store: %s", exc)


def create_app(
    settings: Settings, catalog: Catalog | None = None, *, on_stop: Callable[[], None] | None = None
) -> FastAPI:
    """The API. ``on_stop`` runs when the server shuts down (``limner serve`` stops its workers
    there: uvicorn re-raises SIGTERM once it has shut down, so code after it never runs)."""
    ctx = build_context(settings, catalog)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        ctx.submitter.start()
        ctx.watcher.start()
        ctx.integration.start()
        reaper = asyncio.create_task(_reaper(ctx), name="limner-reaper")
        recorder = asyncio.create_task(observability.background(ctx), name="limner-usage")
        try:
            yield
        finally:
            if on_stop is not None:
                await asyncio.to_thread(on_stop)
            reaper.cancel()
            await ctx.integration.stop()
            recorder.cancel()
            await ctx.submitter.stop()
            await ctx.watcher.stop()
            ctx.engines.dispose()

    app = FastAPI(
        title="limner",
        version=__version__,
        description="Self-hosted generative media: one queue API for image, video, audio, speech and 3D models.",
        lifespan=lifespan,
    )
    app.state.limner = ctx
    errors.install(app)
    for module in (
        routes_queue,
        routes_run,
        routes_catalog,
        routes_requests,
        routes_workers,
        routes_files,
        routes_health,
        routes_status_ws,
        webhooks_routes,
    ):
        app.include_router(module.router)
    for router in (openai_images.router, openai_speech.router):  # OpenAI-compatible images and speech
        app.include_router(router)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(ApiKeyMiddleware, auth=ctx.integration.auth, files=ctx.integration.file_signer)
    observability.install(app)
    return app
