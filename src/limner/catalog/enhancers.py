"""Which enhance model an image request's ``enhance_prompt`` names (torch-free: the API checks
it at submit, the worker uses it; see limner.runtime.enhance)."""

from __future__ import annotations

from typing import Any

from limner.catalog.entry import CatalogEntry
from limner.catalog.loader import Catalog
from limner.errors import InvalidInput, UnknownModel

DEFAULT_ENHANCER = "limner/enhance-smollm2"
TASK = "prompt-enhancement"


def enhancer_of(catalog: Catalog, value: Any) -> CatalogEntry | None:
    """The enhance model a request's ``enhance_prompt`` names: None (not asked), true (the
    default one) or a prompt-enhancement model's id."""
    if value in (None, False):
        return None
    model_id = DEFAULT_ENHANCER if value is True else str(value)
    try:
        entry = catalog.get(model_id)
    except UnknownModel:
        raise InvalidInput(
            f"enhance_prompt={value!r}: no model {model_id} in this server's catalog", loc=("body", "enhance_prompt")
        ) from None
    if entry.task != TASK:
        raise InvalidInput(
            f"enhance_prompt={value!r} is a {entry.task} model, not a {TASK} one", loc=("body", "enhance_prompt")
        )
    return entry
