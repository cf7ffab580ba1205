"""Which cache mode a request gets: its ``X-Limner-Cache`` header, else the model's default."""

from __future__ import annotations

from limner.catalog.entry import CatalogEntry
from limner.catalog.options import CACHE_MODES
from limner.errors import InvalidInput

HEADER = "x-limner-cache"


def requested_mode(entry: CatalogEntry, header: str | None) -> str:
    """The mode asked for; 422 for an unknown one, or semantic on a model that has not opted in."""
    if header is None or not header.strip():
        return entry.cache.mode
    mode = header.strip().lower()
    if mode not in CACHE_MODES:
        raise InvalidInput(
            f"X-Limner-Cache must be one of {', '.join(CACHE_MODES)} (got {header!r})", loc=("header", HEADER)
        )
    if mode == "semantic" and not entry.cache.semantic:
        raise InvalidInput(
            f"{entry.id} does not allow semantic cache hits (catalog cache.semantic is false); use exact or off",
            loc=("header", HEADER),
        )
    return mode


def effective_mode(requested: str, seed_given: bool) -> str:
    """A seeded request wants that seed's image: semantic degrades to exact for it."""
    if requested == "semantic" and seed_given:
        return "exact"
    return requested
