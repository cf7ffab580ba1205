"""A job's stored input files as the adapter's ``WorkItem.files``: read on first use."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from limner.storage import Storage


class StoredFiles(Mapping[str, bytes]):
    """A job's stored input files, read from storage the first time an adapter asks for one."""

    def __init__(self, storage: Storage, keys: dict[str, str]) -> None:
        self.storage = storage
        self._keys = keys
        self._read: dict[str, bytes] = {}

    def __getitem__(self, name: str) -> bytes:
        if name not in self._read:
            self._read[name] = self.storage.get(self._keys[name])
        return self._read[name]

    def __contains__(self, name: object) -> bool:
        return name in self._keys

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)
