"""What the API's routes share: built once in the app's lifespan, reached through the request."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

from fastapi import Request

from limner.api.integration import Integration
from limner.api.submitter import Submitter
from limner.api.watcher import Watcher
from limner.catalog import Catalog
from limner.settings import Settings
from limner.storage import Storage
from limner.store.engine import Engines
from limner.store.jobs import JobStore
from limner.store.queue import WorkQueue
from limner.store.workers import WorkerRegistry

if TYPE_CHECKING:
    from limner.api.observability import Observability


@dataclass
class ApiContext:
    settings: Settings
    catalog: Catalog
    engines: Engines
    jobs: JobStore
    queue: WorkQueue
    workers: WorkerRegistry
    storage: Storage
    submitter: Submitter
    watcher: Watcher
    integration: Integration

    @cached_property
    def obs(self) -> Observability:
        """Cache, usage, quality and quotas (built on first use)."""
        from limner.api.observability import Observability

        return Observability.build(self)

    def base_url(self, request: Request) -> str:
        """Absolute URLs in responses use the configured public URL, else the request's own."""
        if self.settings.base_url:
            return self.settings.base_url.rstrip("/")
        return str(request.base_url).rstrip("/")


def get_ctx(request: Request) -> ApiContext:
    ctx: ApiContext = request.app.state.limner
    return ctx
