"""The model catalog: models as data (YAML), each bound to a task and an adapter family."""

from limner.catalog.entry import CatalogEntry, RuntimeOptions
from limner.catalog.loader import Catalog, load_catalog

__all__ = ["Catalog", "CatalogEntry", "RuntimeOptions", "load_catalog"]
