"""Media storage, chosen by URL (``file://…`` is the default)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlparse

from limner.errors import LimnerError
from limner.storage.base import Storage
from limner.storage.local import LocalStorage


def open_storage(url: str) -> Storage:
    parsed = urlparse(url)
    if parsed.scheme == "file":
        return LocalStorage(Path(unquote(parsed.path)))
    raise LimnerError(f"unsupported storage URL {url!r}: use file:///path")


__all__ = ["LocalStorage", "Storage", "open_storage"]
