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
from limner.tiny.controlnet import build_ip_adapter_sd, build_sd_controlnet
from limner.tiny.depth import build_depth_anything
from limner.tiny.flux import build_flux
from limner.tiny.musicgen import build_musicgen, build_musicgen_melody
from limner.tiny.sam2 import build_sam2
from limner.tiny.sd import build_sd
from limner.tiny.shap_e import build_shap_e, build_shap_e_img2img
from limner.tiny.stable_audio import build_stable_audio
from limner.tiny.svd import build_svd
from limner.tiny.taesd import build_taesd
from limner.tiny.text import build_gpt2, build_llama, build_qwen2
from limner.tiny.vlm import build_idefics3
from limner.tiny.wan import build_wan, build_wan_i2v

__all__ = ["TINY_MODEL_NAMES", "TINY_NAMES", "build_tiny", "is_built"]

_PIPELINES: Mapping[str, Callable[[Path], None]] = MappingProxyType(
    {
        "sd": build_sd,
        "flux": build_flux,
        "stable-audio": build_stable_audio,
        "wan": build_wan,
        "wan-i2v": build_wan_i2v,
        "cogvideox": build_cogvideox,
        "cogvideox-i2v": build_cogvideox_i2v,
        "svd": build_svd,
        "shap-e": build_shap_e,
        "shap-e-img2img": build_shap_e_img2img,
    }
)
# Single models and add-ons (not whole pipelines): MusicGen (transformers), AnimateDiff's motion
# adapter, SAM 2, a ControlNet and an IP-Adapter that fit the tiny SD, and a depth estimator for
# the depth ControlNet's control maps.
_MODELS: Mapping[str, Callable[[Path], None]] = MappingProxyType(
    {
        "musicgen": build_musicgen,
        "musicgen-melody": build_musicgen_melody,
        "animatediff-motion-adapter": build_motion_adapter,
        "sam2": build_sam2,
        "sd-controlnet": build_sd_controlnet,
        "ip-adapter-sd": build_ip_adapter_sd,
        "depth-anything": build_depth_anything,
        "taesd": build_taesd,
        "llama": build_llama,
        "qwen2": build_qwen2,
        "gpt2": build_gpt2,
        "idefics3": build_idefics3,
    }
)
_BUILDERS: Mapping[str, Callable[[Path], None]] = MappingProxyType({**_PIPELINES, **_MODELS})
TINY_NAMES: tuple[str, ...] = tuple(_BUILDERS)
TINY_MODEL_NAMES: tuple[str, ...] = tuple(_MODELS)

# The file a finished build holds: a pipeline's model_index.json, else a model's config.json
# (or the file its builder writes last).
_MARKER = "model_index.json"
_MARKERS: Mapping[str, str] = MappingProxyType(
    {
        **{name: "config.json" for name in _MODELS},
        "ip-adapter-sd": "models/ip-adapter_sd15.safetensors",
        "depth-anything": "preprocessor_config.json",  # written last
        "idefics3": "processor_config.json",  # written last
    }
)
# Builders reseed torch's global RNG per component: serialise in-process builds
# so concurrent threads cannot interleave draws and produce different weights.
_BUILD_LOCK = threading.Lock()


def _builder(name: str) -> Callable[[Path], None]:
    try:
        return _BUILDERS[name]
    except KeyError:
        known = ", ".join(_BUILDERS)
        raise ValueError(f"unknown tiny model {name!r}; known: {known}") from None


def _is_built(dest: Path, marker: str = _MARKER) -> bool:
    return (dest / marker).is_file()


def is_built(name: str, dest: Path) -> bool:
    """Whether tiny model ``name`` is already built in ``dest`` (``build_tiny`` would do nothing)."""
    _builder(name)  # an unknown name is refused here too
    return _is_built(Path(dest), _MARKERS.get(name, _MARKER))


def _publish(tmp: Path, dest: Path, marker: str = _MARKER) -> None:
    """Atomically rename the finished ``tmp`` to ``dest``; losing a race is fine."""
    try:
        os.rename(tmp, dest)  # replaces an empty dest dir, fails on a non-empty one
    except OSError:
        if not _is_built(dest, marker):
            raise FileExistsError(
                f"{dest} exists and is not a finished build (no {marker}); refusing to replace it"
            ) from None
        # Another process finished the same build first; its copy is identical.


def build_tiny(name: str, dest: Path) -> None:
    """Build tiny pipeline ``name`` into ``dest`` (a no-op if it is already there).

    The pipeline is written into a temporary sibling directory that is renamed
    into place only when complete, so a crash never leaves a half-built
    ``dest`` and concurrent builders of the same ``dest`` are safe.
    """
    builder = _builder(name)
    marker = _MARKERS.get(name, _MARKER)
    dest = Path(dest)
    if _is_built(dest, marker):
        return
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.tmp-", dir=dest.parent))
    try:
        tmp.chmod(0o755)  # mkdtemp makes it 0700; the pipeline folder is not a secret
        with _BUILD_LOCK:
            builder(tmp)
        _publish(tmp, dest, marker)
    finally:
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(tmp)
