"""Local filesystem storage: files under one root directory, served by the API at /v1/files/."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from limner.errors import NotFound
from limner.storage.base import check_key


class LocalStorage:
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, key: str) -> Path:
        path = (self.root / check_key(key)).resolve()
        if not path.is_relative_to(self.root):
            raise NotFound(f"no file {key!r}", loc=("path", "key"))
        return path

    def put(self, key: str, data: bytes, content_type: str) -> None:
        """Write atomically: a reader never sees half a file, a crash never leaves one."""
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def get(self, key: str) -> bytes:
        try:
            return self.path(key).read_bytes()
        except FileNotFoundError:
            raise NotFound(f"no file {key!r}", loc=("path", "key")) from None

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def delete(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)

    def url(self, key: str, api_base: str) -> str:
        return f"{api_base.rstrip('/')}/v1/files/{check_key(key)}"

    def key_for_url(self, url: str) -> str | None:
        """Local files have no URLs of their own: only the API's /v1/files/ ones."""
        return None
