"""Signed, expiring ``/v1/files`` URLs, for when API keys are on.

With keys on, every route needs a key, but a media URL must still work where no header can be
set (an ``<img src>``, a download link, a webhook receiver). So the URLs the API hands out
carry ``?expires=<unix time>&sig=<HMAC-SHA256(key, "<storage key>\\n<expires>")>``, made with a
server secret kept in the store (``limner.store.secrets``), and the files route accepts either
a valid key or a valid, unexpired signature. Fetch the result route again for fresh URLs.
Without keys the URLs stay plain and cacheable for good, as before.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlencode

from limner.storage import LocalStorage, Storage

FILES_PREFIX = "/v1/files/"


def new_signing_key() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()


@dataclass(frozen=True)
class FileUrlSigner:
    key: bytes
    ttl_s: float

    def signature(self, storage_key: str, expires: int) -> str:
        digest = hmac.new(self.key, f"{storage_key}\n{expires}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")

    def sign(self, url: str, storage_key: str, now: float | None = None) -> str:
        expires = int((time.time() if now is None else now) + self.ttl_s)
        query = urlencode({"expires": expires, "sig": self.signature(storage_key, expires)})
        return f"{url}{'&' if '?' in url else '?'}{query}"

    def verify(self, storage_key: str, expires: str | None, sig: str | None, now: float | None = None) -> bool:
        if not expires or not sig or not expires.isdigit():
            return False
        if int(expires) < (time.time() if now is None else now):
            return False
        return hmac.compare_digest(self.signature(storage_key, int(expires)), sig)


class SignedUrlStorage:
    """The API's storage: the real one, whose local file URLs are signed while keys are on."""

    def __init__(self, inner: Storage, signer: FileUrlSigner, enabled: Callable[[], bool]) -> None:
        self.inner = inner
        self.signer = signer
        self.enabled = enabled

    def put(self, key: str, data: bytes, content_type: str) -> None:
        self.inner.put(key, data, content_type)

    def get(self, key: str) -> bytes:
        return self.inner.get(key)

    def exists(self, key: str) -> bool:
        return self.inner.exists(key)

    def delete(self, key: str) -> None:
        self.inner.delete(key)

    def url(self, key: str, api_base: str) -> str:
        """Only the API's own /v1/files URLs are signed; an S3 store's presigned URLs carry
        their own signature and expiry, and a second query would break theirs."""
        url = self.inner.url(key, api_base)
        if isinstance(self.inner, LocalStorage) and self.enabled():
            return self.signer.sign(url, key)
        return url

    def key_for_url(self, url: str) -> str | None:
        return self.inner.key_for_url(url)


def unwrap(storage: Storage) -> Storage:
    """The storage underneath a SignedUrlStorage (for routes that need the real kind)."""
    return storage.inner if isinstance(storage, SignedUrlStorage) else storage
