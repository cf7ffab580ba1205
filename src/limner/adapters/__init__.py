"""Adapter families: one module per model family, imported only inside workers.

Which families exist, and what each serves, is data in ``limner.catalog.families``; this
module imports a family's implementation when a worker first needs it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from limner.catalog.families import FAMILIES

if TYPE_CHECKING:
    from limner.adapters.base import Adapter


def load_adapter(family: str) -> Adapter:
    """Import a family's module and make its adapter (worker processes only)."""
    module = importlib.import_module(FAMILIES[family].module)
    adapter: Adapter = module.make_adapter()
    return adapter
