"""Media storage, chosen by URL: ``file://…`` (the default) or ``s3://bucket[/prefix]``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlparse

from limner.errors import LimnerError
from limner.storage.base import Storage
from limner.storage.local import LocalStorage
from limner.storage.s3 import S3Storage, parse_s3_url

if TYPE_CHECKING:
    from limner.settings import Settings


def open_storage(url: str, *, s3_endpoint_url: str | None = None, s3_url_ttl_s: float = 3600.0) -> Storage:
    parsed = urlparse(url)
    if parsed.scheme == "file":
        return LocalStorage(Path(unquote(parsed.path)))
    if parsed.scheme == "s3":
        bucket, prefix = parse_s3_url(url)
        return S3Storage(bucket, prefix, endpoint_url=s3_endpoint_url, url_ttl_s=s3_url_ttl_s)
    raise LimnerError(f"unsupported storage URL {url!r}: use file:///path or s3://bucket[/prefix]")


def storage_for(settings: Settings) -> Storage:
    """The storage a process's settings name (the API and every worker open the same one)."""
    return open_storage(settings.storage, s3_endpoint_url=settings.s3_endpoint_url, s3_url_ttl_s=settings.s3_url_ttl_s)


__all__ = ["LocalStorage", "S3Storage", "Storage", "open_storage", "storage_for"]
