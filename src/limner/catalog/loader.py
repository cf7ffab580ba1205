"""Loading the catalog: the packaged default entries plus the operator's extra files."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from limner.catalog.entry import CatalogEntry
from limner.errors import CatalogError, UnknownModel


class Catalog:
    """Models by id. Later files override earlier entries with the same id."""

    def __init__(self, entries: Iterable[CatalogEntry]) -> None:
        self._entries: dict[str, CatalogEntry] = {}
        for entry in entries:
            self._entries[entry.id] = entry

    def get(self, model_id: str) -> CatalogEntry:
        entry = self._entries.get(model_id)
        if entry is None:
            raise UnknownModel(
                f"no model {model_id!r} in the catalog; GET /v1/models lists the models", loc=("path", "model_id")
            )
        return entry

    def __contains__(self, model_id: object) -> bool:
        return model_id in self._entries

    def __iter__(self) -> Iterator[CatalogEntry]:
        return iter(sorted(self._entries.values(), key=lambda e: e.id))

    def __len__(self) -> int:
        return len(self._entries)

    def with_residency_key(self, key: str) -> list[str]:
        return [e.id for e in self._entries.values() if e.residency_key == key]


def parse_entries(text: str, origin: str) -> list[CatalogEntry]:
    try:
        data: Any = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise CatalogError(f"{origin}: not valid YAML: {exc}") from exc
    if data is None:
        return []
    if isinstance(data, dict) and "models" in data:
        data = data["models"]
    if not isinstance(data, list):
        raise CatalogError(f"{origin}: expected a list of models (or a mapping with a 'models' list)")
    entries = []
    for index, item in enumerate(data):
        try:
            entries.append(CatalogEntry.model_validate(item))
        except ValidationError as exc:
            name = item.get("id", f"#{index}") if isinstance(item, dict) else f"#{index}"
            raise CatalogError(f"{origin}: model {name}: {exc}") from exc
    return entries


def default_entries() -> list[CatalogEntry]:
    text = (resources.files("limner.catalog") / "default.yaml").read_text(encoding="utf-8")
    return parse_entries(text, "default catalog")


def load_catalog(extra_files: Iterable[Path] = ()) -> Catalog:
    entries = default_entries()
    for path in extra_files:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise CatalogError(f"cannot read catalog file {path}: {exc}") from exc
        entries.extend(parse_entries(text, str(path)))
    return Catalog(entries)
