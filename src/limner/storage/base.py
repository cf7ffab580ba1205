"""The storage interface: media files under server-made keys."""

from __future__ import annotations

import re
from typing import Protocol

from limner.errors import InvalidInput

# Keys are made by limner ("results/<job>/0.png", "inputs/<sha256>.png"); this pattern is
# also the guard that keeps a key requested over HTTP inside the storage root.
KEY_PATTERN = re.compile(r"^(?:[A-Za-z0-9][A-Za-z0-9._-]{0,127}/){0,8}[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
REF_PREFIX = "storage://"


def check_key(key: str) -> str:
    if not KEY_PATTERN.fullmatch(key) or ".." in key:
        raise InvalidInput(f"not a valid storage key: {key!r}", loc=("path", "key"))
    return key


def ref(key: str) -> str:
    """How a stored file is referenced inside job inputs and results."""
    return REF_PREFIX + key


def key_of(reference: str) -> str | None:
    return check_key(reference[len(REF_PREFIX) :]) if reference.startswith(REF_PREFIX) else None


class Storage(Protocol):
    """Where inputs and results live. Implementations: local files (default) and S3."""

    def put(self, key: str, data: bytes, content_type: str) -> None: ...

    def get(self, key: str) -> bytes: ...

    def exists(self, key: str) -> bool: ...

    def delete(self, key: str) -> None: ...

    def url(self, key: str, api_base: str) -> str:
        """A URL a client can GET the file from."""
        ...

    def key_for_url(self, url: str) -> str | None:
        """The key of a URL this storage itself hands out (other than the API's /v1/files/
        URLs), so that such a URL given back as an input is read, not fetched; else None."""
        ...
