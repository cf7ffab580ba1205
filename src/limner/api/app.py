"""The HTTP API. ``create_app(settings)`` builds it; nothing here imports torch."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI

from limner import __version__, playground
from limner.api import errors
from limner.api.background import Coordinators, Housekeeper, Periodic, Reaper, UsageRecorder
from limner.api.context import build_context
from limner.api.middleware.auth import ApiKeyMiddleware
from limner.api.middleware.bodylimit import BodyLimit
from limner.api.middleware.request_id import RequestIdMiddleware
from limner.api.openai import chat as openai_chat
from limner.api.openai import images as openai_images
from limner.api.openai import speech as openai_speech
from limner.api.routes import (
    any_llm,
    batches,
    cache,
    files,
    health,
    keys,
    loras,
    metrics,
    models,
    queue,
    requests,
    routing,
    run,
    status_ws,
    usage,
    webhooks,
    workers,
)
from limner.api.routes import realtime as realtime_routes
from limner.api.routes import replay as replay_routes
from limner.catalog import Catalog
from limner.settings import Settings

log = logging.getLogger("limner.api")

ROUTERS = (
    any_llm.router,  # before queue.router: its path is one of the queue's /v1/queue/{owner}/{name}
    queue.router,
    run.router,
    models.router,
    requests.router,
    workers.router,
    files.router,
    health.router,
    status_ws.router,
    webhooks.router,
    keys.router,
    batches.router,
    loras.router,
    cache.router,
    usage.router,
    metrics.router,
    openai_images.router,
    openai_speech.router,
    replay_routes.router,
    realtime_routes.router,
    openai_chat.router,
    routing.router,
)


def create_app(
    settings: Settings, catalog: Catalog | None = None, *, on_stop: Callable[[], None] | None = None
) -> FastAPI:
    """The API. ``on_stop`` runs when the server shuts down (``limner serve`` stops its workers
    there: uvicorn re-raises SIGTERM once it has shut down, so code after it never runs)."""
    ctx = build_context(settings, catalog)
    services: list[Periodic] = [Reaper(ctx), Housekeeper(ctx), UsageRecorder(ctx)]
    if settings.coordinate:
        services.append(Coordinators(ctx))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        ctx.submitter.start()
        ctx.watcher.start()
        if ctx.webhooks is not None:
            ctx.webhooks.start()
        for service in services:
            service.start()
        try:
            yield
        finally:
            if on_stop is not None:
                await asyncio.to_thread(on_stop)
            for service in services:
                await service.stop()
            if ctx.webhooks is not None:
                await asyncio.to_thread(ctx.webhooks.stop)
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
    for router in ROUTERS:
        app.include_router(router)
    playground.mount(app)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(ApiKeyMiddleware, auth=ctx.auth, files=ctx.file_signer)
    app.add_middleware(RequestIdMiddleware)
    return app
