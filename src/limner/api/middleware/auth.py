"""Optional API keys: ``Authorization: Key <key>`` or ``Authorization: Bearer <key>``.

Keys are on once any key was created (``limner keys create``), or from the start with
``LIMNER_REQUIRE_KEYS=1``. Then every route but ``/healthz`` and ``/readyz`` needs a valid
key: none or an unknown one is 401, a revoked one 403. Media URLs carry a signature instead
(see ``limner.api.file_urls``). Browsers cannot set headers on a WebSocket, so the status
WebSocket also takes the key as ``?key=``. The key becomes the request's
:class:`~limner.api.tenancy.Caller` (its id, project and role), and jobs record both.
"""

from __future__ import annotations

import threading
import time
from urllib.parse import parse_qs

from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from limner.api.errors import send_error
from limner.api.file_urls import FILES_PREFIX, FileUrlSigner
from limner.api.tenancy import Caller
from limner.errors import Forbidden, LimnerError, Unauthorized
from limner.playground import is_public
from limner.storage.base import project_of_key
from limner.store.keys import ApiKey, KeyStore

OPEN_PATHS = frozenset({"/healthz", "/readyz"})
SCHEMES = ("key", "bearer")


class KeyAuth:
    """Whether keys are on, and which key a header names."""

    def __init__(self, keys: KeyStore, *, required: bool, recheck_s: float = 1.0) -> None:
        self.keys = keys
        self.required = required
        self.recheck_s = recheck_s
        self._on = required
        self._checked = 0.0
        self._lock = threading.Lock()

    def enabled(self) -> bool:
        """Once on, on for good (keys are revoked, never deleted); while off, the store is asked
        at most every ``recheck_s`` seconds, so a key made by the CLI takes effect within it."""
        if self._on:
            return True
        now = time.monotonic()
        if now - self._checked < self.recheck_s:
            return False
        with self._lock:
            self._checked = now
            self._on = self.keys.any()
        return self._on

    def cached(self) -> bool | None:
        """Whether keys are on, if known without asking the store; None when it must be asked."""
        if self._on:
            return True
        return False if time.monotonic() - self._checked < self.recheck_s else None

    def authenticate(self, raw: str | None) -> ApiKey:
        if not raw:
            raise Unauthorized(
                "this server requires an API key: send Authorization: Key <key> (or Bearer <key>); "
                "an operator makes one with `limner keys create --name NAME`",
                loc=("header", "authorization"),
            )
        key = self.keys.lookup(raw)
        if key is None:
            raise Unauthorized("this API key is not known to this server", loc=("header", "authorization"))
        if key.revoked_at is not None:
            raise Forbidden(
                f"API key {key.id} ({key.prefix}…) was revoked; ask an operator for a new one",
                loc=("header", "authorization"),
            )
        return key


def key_from_header(value: str | None) -> str | None:
    if not value:
        return None
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() not in SCHEMES or not token.strip():
        return None
    return token.strip()


class ApiKeyMiddleware:
    def __init__(self, app: ASGIApp, auth: KeyAuth, files: FileUrlSigner) -> None:
        self.app = app
        self.auth = auth
        self.files = files

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or scope["path"] in OPEN_PATHS or is_public(scope["path"]):
            await self.app(scope, receive, send)
            return
        enabled = self.auth.cached()
        if enabled is None:
            enabled = await run_in_threadpool(self.auth.enabled)
        if not enabled:
            await self.app(scope, receive, send)
            return
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        if scope["type"] == "http" and self._signed_file(scope, query):
            # A signed URL is a capability for that one file: the caller sees its project only.
            storage_key = scope["path"][len(FILES_PREFIX) :]
            caller = Caller(key_id=None, project=project_of_key(storage_key), admin=False)
            scope.setdefault("state", {})["caller"] = caller
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        raw = key_from_header(headers.get("authorization"))
        if raw is None and scope["type"] == "websocket":
            raw = _first(query, "key")
        try:
            key = await run_in_threadpool(self.auth.authenticate, raw)
        except LimnerError as exc:
            await _refuse(scope, receive, send, exc)
            return
        state = scope.setdefault("state", {})
        state["api_key_id"] = key.id
        state["caller"] = Caller(key_id=key.id, project=key.project, admin=key.admin)
        await self.app(scope, receive, send)

    def _signed_file(self, scope: Scope, query: dict[str, list[str]]) -> bool:
        path: str = scope["path"]
        if scope.get("method") not in ("GET", "HEAD") or not path.startswith(FILES_PREFIX):
            return False
        storage_key = path[len(FILES_PREFIX) :]
        return self.files.verify(storage_key, _first(query, "expires"), _first(query, "sig"))


async def _refuse(scope: Scope, receive: Receive, send: Send, exc: LimnerError) -> None:
    if scope["type"] == "websocket":
        # Closing before accepting makes the server answer the handshake with 403.
        await receive()  # websocket.connect
        await send({"type": "websocket.close", "code": 1008, "reason": exc.message[:120]})
        return
    await send_error(send, exc, scope["path"])


def _first(query: dict[str, list[str]], name: str) -> str | None:
    values = query.get(name)
    return values[0] if values else None
