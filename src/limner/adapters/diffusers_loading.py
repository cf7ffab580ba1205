"""Loading a diffusers pipeline of a known class, and its separately published components.

The video and 3D families each name the pipeline class their task needs (``WanPipeline`` for
text to video, ``ShapEImg2ImgPipeline`` for image to 3D, …) rather than trusting whatever class
a folder's ``model_index.json`` names: an entry that points a family at the wrong weights fails
at load with a clear ``model_unavailable``, not with a confusing error mid-run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from diffusers import DiffusionPipeline

from limner.adapters.base import LoadedModel, LoadEnv
from limner.adapters.loading import pipeline_bytes, place, release, resolve_dtype, resolve_source
from limner.catalog.entry import CatalogEntry
from limner.errors import ModelUnavailable


def load_pipeline(
    pipeline_class: Any,
    entry: CatalogEntry,
    env: LoadEnv,
    *,
    keep_float32: tuple[str, ...] = (),
    **components: Any,
) -> tuple[Any, str]:
    """``pipeline_class.from_pretrained`` on the entry's source, placed on the device.

    ``keep_float32`` names components that stay in float32 whatever the entry's dtype (Wan's
    VAE, for one, is meant to decode in full precision). ``components`` are already loaded
    parts passed through to ``from_pretrained`` (e.g. an AnimateDiff motion adapter).
    Returns the pipeline and the revision of its weights.
    """
    path, revision = resolve_source(entry, env, download=download_pipeline)
    dtype = resolve_dtype(entry.runtime.dtype, env.device)
    kwargs: dict[str, Any] = {**components, "use_safetensors": True}  # never pickled weights
    kwargs["dtype"] = {"default": dtype, **dict.fromkeys(keep_float32, torch.float32)} if keep_float32 else dtype
    if entry.variant:
        kwargs["variant"] = entry.variant
    try:
        pipe = pipeline_class.from_pretrained(str(path), **kwargs)
    except (OSError, ValueError, TypeError) as exc:
        raise ModelUnavailable(
            f"cannot load {entry.id} from {path} as a {pipeline_class.__name__}: {exc}. "
            f"Check that the entry's source holds a {pipeline_class.__name__} (family {entry.family})."
        ) from exc
    place(pipe, entry, env.device)
    pipe.set_progress_bar_config(disable=True)
    return pipe, revision


def component_path(entry: CatalogEntry, name: str, env: LoadEnv) -> tuple[Path, str] | None:
    """The local folder and revision of ``entry.components[name]``, or None when not given.

    A component is a plain model folder (``config.json`` + weights), as ``save_pretrained``
    of a single model writes it; ``tiny://``, ``file://`` and ``hf://`` sources all work.
    """
    source = entry.components.get(name)
    if source is None:
        return None
    part = entry.model_copy(update={"source": source, "revision": None, "variant": None})
    return resolve_source(part, env, download=download_model, marker="config.json")


def loaded(pipe: Any, revision: str, env: LoadEnv) -> LoadedModel:
    return LoadedModel(handle=pipe, revision=revision, size_bytes=pipeline_bytes(pipe), device=env.device)


def unload_pipeline(model: LoadedModel) -> None:
    pipe = model.handle
    if hasattr(pipe, "remove_all_hooks"):
        pipe.remove_all_hooks()
    model.handle = None
    release(model.device)


def download_pipeline(repo: str, revision: str | None, variant: str | None) -> str:
    """Only the files a diffusers pipeline needs (one weight variant, no duplicates)."""
    folder: str = DiffusionPipeline.download(repo, revision=revision, variant=variant)
    return folder


def download_model(repo: str, revision: str | None, _variant: str | None) -> str:
    """A single model's config and safetensors weights (never pickled checkpoints)."""
    from huggingface_hub import snapshot_download

    folder: str = snapshot_download(repo, revision=revision, allow_patterns=["*.json", "*.safetensors"])
    return folder
