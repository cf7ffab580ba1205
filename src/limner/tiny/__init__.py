"""Tiny random-weight diffusers pipelines and transformers models for tests, demos and CI.

``build_tiny(name, dest)`` constructs a miniature pipeline from configs (the
way diffusers' own test-suite does with ``get_dummy_components()``) and saves
it with ``save_pretrained``. The product then loads it through the ordinary
``DiffusionPipeline.from_pretrained(dest)`` path, exactly like a real model,
without any network access. A few names build a single model instead (a
component published on its own, such as AnimateDiff's motion adapter), which
is loaded with that model class's ``from_pretrained``.

Importing this package does not import torch: the builders import their
heavy dependencies when called.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType

from limner.tiny.animatediff import build_motion_adapter
from limner.tiny.cogvideox import build_cogvideox, build_cogvideox_i2v
from limner.tiny.flux import build_flux
from limner.tiny.musicgen import build_musicgen, build_musicgen_melody
from limner.tiny.sd import build_sd
from limner.tiny.shap_e import build_shap_e, build_shap_e_img2img
from limner.tiny.stable_audio import build_stable_audio
from limner.tiny.svd import build_svd
from limner.tiny.wan import build_wan, build_wan_i2v

__all__ = ["TINY_NAMES", "build_tiny"]

_BUILDERS: Mapping[str, Callable[[Path], None]] = MappingProxyType(
    {
        "sd": build_sd,
        "flux": build_flux,
        "musicgen": build_musicgen,
        "musicgen-melody": build_musicgen_melody,
        "stable-audio": build_stable_audio,
        "wan": build_wan,
        "wan-i2v": build_wan_i2v,
        "cogvideox": build_cogvideox,
        "cogvideox-i2v": build_cogvideox_i2v,
        "svd": build_svd,
        "animatediff-motion-adapter": build_motion_adapter,
        "shap-e": build_shap_e,
        "shap-e-img2img": build_shap_e_img2img,
    }
)
TINY_NAMES: tuple[str, ...] = tuple(_BUILDERS)

# A diffusers pipeline folder has model_index.json; a transformers model folder has config.json.
_MARKERS = ("model_index.json", "config.json")
# Builders reseed torch's global RNG per component: serialise in-process builds
# so concurrent threads cannot interleave draws and produce different weights.
_BUILD_LOCK = threading.Lock()


def _builder(name: str) -> Callable[[Path], None]:
    try:
        return _BUILDERS[name]
    except KeyError:
        known = ", ".join(TINY_NAMES)
        raise ValueError(f"unknown tiny model {name!r}; known: {known}") from None


def _is_built(dest: Path) -> bool:
    return any((dest / marker).is_file() for marker in _MARKERS)


def _publish(tmp: Path, dest: Path) -> None:
    """Atomically rename the finished ``tmp`` to ``dest``; losing a race is fine."""
    try:
        os.rename(tmp, dest)  # replaces an empty dest dir, fails on a non-empty one
    except OSError:
        if not _is_built(dest):
            raise FileExistsError(
                f"{dest} exists and is not a built model (no {' or '.join(_MARKERS)}); refusing to replace it"
            ) from None
        # Another process finished the same build first; its copy is identical.


def build_tiny(name: str, dest: Path) -> None:
    """Build tiny pipeline ``name`` into ``dest`` (a no-op if it is already there).

    The pipeline is written into a temporary sibling directory that is renamed
    into place only when complete, so a crash never leaves a half-built
    ``dest`` and concurrent builders of the same ``dest`` are safe.
    """
    builder = _builder(name)
    dest = Path(dest)
    if _is_built(dest):
        return
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.tmp-", dir=dest.parent))
    try:
        tmp.chmod(0o755)  # mkdtemp makes it 0700; the pipeline folder is not a secret
        with _BUILD_LOCK:
            builder(tmp)
        _publish(tmp, dest)
    finally:
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(tmp)
