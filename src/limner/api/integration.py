"""The integration layer's parts in the API process: webhooks, API keys, signed file URLs, and
the housekeeping loop (start deadlines, result retention). ``create_app`` builds one
:class:`Integration`, starts it in the lifespan and stops it on shutdown."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import time
from dataclasses import dataclass, field

from limner.api.auth import KeyAuth
from limner.api.file_urls import FileUrlSigner, SignedUrlStorage, new_signing_key
from limner.api.views import render_refs
from limner.settings import Settings
from limner.storage import Storage
from limner.store.deadlines import expire_due
from limner.store.deliveries import Deliveries
from limner.store.engine import Engines
from limner.store.keys import KeyStore
from limner.store.retention import purge_expired
from limner.store.secrets import FILE_URL_KEY, get_or_create
from limner.webhooks.dispatcher import Dispatcher
from limner.webhooks.service import build_dispatcher

log = logging.getLogger("limner.api.integration")
DEADLINE_CHECK_S = 0.5


@dataclass
class Integration:
    settings: Settings
    engines: Engines
    storage: SignedUrlStorage
    deliveries: Deliveries
    keys: KeyStore
    auth: KeyAuth
    file_signer: FileUrlSigner
    dispatcher: Dispatcher | None
    _task: asyncio.Task[None] | None = field(default=None, repr=False)

    def start(self) -> None:
        if self.dispatcher is not None:
            self.dispatcher.start()
        self._task = asyncio.create_task(self._housekeeping(), name="limner-housekeeping")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.dispatcher is not None:
            await asyncio.to_thread(self.dispatcher.stop)

    async def _housekeeping(self) -> None:
        """Fail jobs past their start deadline (every half second), delete expired results
        (every cleanup_interval_s). Several API replicas may do both: each step is idempotent."""
        last_cleanup = 0.0
        while True:
            await asyncio.sleep(DEADLINE_CHECK_S)
            try:
                await asyncio.to_thread(expire_due, self.engines)
                if time.monotonic() - last_cleanup >= self.settings.cleanup_interval_s:
                    last_cleanup = time.monotonic()
                    gone = await asyncio.to_thread(purge_expired, self.engines, self.storage.inner)
                    if gone:
                        log.info("deleted the expired results of %d job(s)", len(gone))
            except Exception as exc:
                log.warning("housekeeping could not reach the store: %s", exc)


def build_integration(settings: Settings, engines: Engines, storage: Storage) -> Integration:
    keys = KeyStore(engines)
    auth = KeyAuth(keys, required=settings.require_keys)
    raw_key = get_or_create(engines, FILE_URL_KEY, new_signing_key)
    signer = FileUrlSigner(base64.urlsafe_b64decode(raw_key), settings.file_url_ttl_s)
    signed = SignedUrlStorage(storage, signer, auth.enabled)
    dispatcher = None
    if settings.dispatch_webhooks:
        base = settings.public_url
        dispatcher = build_dispatcher(settings, engines, lambda payload: render_refs(payload, signed, base))
    return Integration(
        settings=settings,
        engines=engines,
        storage=signed,
        deliveries=Deliveries(engines),
        keys=keys,
        auth=auth,
        file_signer=signer,
        dispatcher=dispatcher,
    )
