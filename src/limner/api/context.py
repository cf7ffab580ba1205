"""What the API's routes share, built once by :func:`build_context` and reached through the
request (``Depends(get_ctx)``). Every part is built eagerly, here, from the settings: no part
holds a reference back to the context."""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass

from fastapi import Request

from limner.api.file_urls import FileUrlSigner, SignedUrlStorage, new_signing_key
from limner.api.middleware.auth import KeyAuth
from limner.api.submitter import Submitter
from limner.api.views import render_refs
from limner.api.watcher import Watcher
from limner.batches.coordinator import BatchCoordinator
from limner.cache.store import CacheStore
from limner.cache.submit import SubmitCache
from limner.catalog import Catalog, load_catalog
from limner.catalog.availability import HubEnv, HubProbe
from limner.net.fetch import FetchPolicy
from limner.quality.store import QualityStore
from limner.quotas import QuotaGate, load_quotas
from limner.routing.coordinator import RouteCoordinator
from limner.settings import Settings
from limner.storage import storage_for
from limner.store.batches import BatchStore
from limner.store.deliveries import Deliveries
from limner.store.engine import Engines, make_engines, upgrade
from limner.store.jobs import JobStore
from limner.store.keys import KeyStore
from limner.store.loras import LoraStore
from limner.store.queue import WorkQueue
from limner.store.secrets import FILE_URL_KEY, get_or_create
from limner.store.usage import UsageStore
from limner.store.workers import WorkerRegistry
from limner.webhooks.sender import WebhookSender
from limner.webhooks.service import build_sender
from limner.workflows.coordinator import WorkflowCoordinator


@dataclass(frozen=True)
class ApiContext:
    settings: Settings
    catalog: Catalog
    engines: Engines
    jobs: JobStore
    queue: WorkQueue
    workers: WorkerRegistry
    # The media storage, whose local file URLs are signed while API keys are on.
    storage: SignedUrlStorage
    submitter: Submitter
    watcher: Watcher
    keys: KeyStore
    auth: KeyAuth
    file_signer: FileUrlSigner
    deliveries: Deliveries
    webhooks: WebhookSender | None  # None when this process does not send webhooks
    cache: CacheStore
    submit_cache: SubmitCache
    usage: UsageStore
    quality: QualityStore
    quotas: QuotaGate
    hub: HubEnv
    hub_probe: HubProbe
    workflows: WorkflowCoordinator
    batches: BatchStore
    batch_runner: BatchCoordinator
    loras: LoraStore
    routes: RouteCoordinator

    def base_url(self, request: Request) -> str:
        """Absolute URLs in responses use the configured public URL, else the request's own."""
        if self.settings.base_url:
            return self.settings.base_url.rstrip("/")
        return str(request.base_url).rstrip("/")


def build_context(settings: Settings, catalog: Catalog | None = None) -> ApiContext:
    engines = make_engines(settings.store)
    upgrade(engines)
    catalog = catalog if catalog is not None else load_catalog(settings.catalog)
    jobs = JobStore(engines, priority_step_s=settings.priority_step_s)
    keys = KeyStore(engines)
    auth = KeyAuth(keys, required=settings.require_keys)
    signer = FileUrlSigner(
        base64.urlsafe_b64decode(get_or_create(engines, FILE_URL_KEY, new_signing_key)), settings.file_url_ttl_s
    )
    storage = SignedUrlStorage(storage_for(settings), signer, auth.enabled)
    webhooks = None
    if settings.dispatch_webhooks:
        base = settings.public_url
        webhooks = build_sender(settings, engines, lambda payload: render_refs(payload, storage, base))
    cache = CacheStore(engines, storage, ttl_s=settings.cache_ttl_s)

    def price_of(model_id: str) -> float:
        if model_id in catalog:
            price = catalog.get(model_id).runtime.usd_per_gpu_hour
            if price is not None:
                return price
        return settings.price_for("*")

    usage = UsageStore(engines, price_of)
    hub = HubEnv.from_environ(os.environ)  # the hub's own variables (HF_HOME, HF_HUB_OFFLINE …)
    return ApiContext(
        settings=settings,
        catalog=catalog,
        engines=engines,
        jobs=jobs,
        queue=WorkQueue(engines, lease_s=settings.lease_s),
        workers=WorkerRegistry(engines),
        storage=storage,
        submitter=Submitter(jobs, max_batch=settings.submit_batch_max),
        watcher=Watcher(engines, settings.stream_poll_s),
        keys=keys,
        auth=auth,
        file_signer=signer,
        deliveries=Deliveries(engines),
        webhooks=webhooks,
        cache=cache,
        submit_cache=SubmitCache(cache, jobs),
        usage=usage,
        quality=QualityStore(engines),
        quotas=QuotaGate(load_quotas(settings.quotas), engines, usage),
        hub=hub,
        hub_probe=HubProbe(hub),
        workflows=WorkflowCoordinator(engines, catalog, storage.inner, jobs, settings.public_url),
        batches=BatchStore(engines),
        batch_runner=BatchCoordinator(
            engines,
            catalog,
            storage.inner,
            jobs,
            settings.public_url,
            FetchPolicy.create(settings.fetch_allow_hosts, settings.fetch_timeout_s),
            max_job_attempts=settings.max_attempts,
        ),
        loras=LoraStore(engines),
        routes=RouteCoordinator(engines, catalog, storage.inner, jobs, settings.public_url),
    )


def get_ctx(request: Request) -> ApiContext:
    ctx: ApiContext = request.app.state.limner
    return ctx
