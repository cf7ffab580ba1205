"""IP-Adapter for diffusers pipelines: a reference image steers generation next to the prompt.

A catalog entry turns it on with ``runtime.ip_adapter`` (source, subfolder, weight_name,
image_encoder_folder: the h94/IP-Adapter layout), and only then accepts ``ip_adapter_image`` and
``ip_adapter_scale`` (Family.gated_fields). diffusers' ``load_ip_adapter`` does the loading: it
adds the image projection and the image-attention layers to the UNet (or transformer) and
registers the CLIP image encoder on the pipeline.

Once loaded, the pipeline needs an image embedding on every call; a request without a
reference image runs with a blank one at scale 0, which leaves the image attention out and
gives exactly the base model's output.
"""

from __future__ import annotations

import inspect
from typing import Any

from PIL import Image

from limner.adapters.base import LoadEnv, WorkItem
from limner.adapters.loading import resolve_source
from limner.catalog.entry import CatalogEntry
from limner.errors import ModelUnavailable
from limner.media.images import open_image
from limner.tasks.image import ImageGenerationInput

DEFAULT_SCALE = 1.0


def attach_ip_adapter(pipe: Any, entry: CatalogEntry, env: LoadEnv) -> str:
    """Load the entry's IP-Adapter into ``pipe``; returns the adapter's revision."""
    options = entry.runtime.ip_adapter
    if options is None:
        return ""
    if options.source.startswith("hf://"):
        # diffusers fetches just the weight file and the image encoder (hub or its cache).
        location, revision = options.source.removeprefix("hf://"), "hub"
    else:
        folder, revision = resolve_source(
            entry.model_copy(update={"source": options.source, "variant": None, "revision": None}),
            env,
            marker=f"{options.subfolder}/{options.weight_name}",
        )
        location = str(folder)
    accepted = inspect.signature(pipe.load_ip_adapter).parameters
    kwargs: dict[str, Any] = {"subfolder": options.subfolder, "weight_name": options.weight_name}
    if "image_encoder_folder" in accepted:
        kwargs["image_encoder_folder"] = options.image_encoder_folder
    else:  # FLUX's loader names its image encoder by repository
        kwargs["image_encoder_pretrained_model_name_or_path"] = options.image_encoder_folder
    try:
        pipe.load_ip_adapter(location, **kwargs)
    except (OSError, ValueError, KeyError) as exc:
        raise ModelUnavailable(f"{entry.id}: cannot load the IP-Adapter {options.source}: {exc}") from exc
    return revision


def ip_adapter_call_args(pipe: Any, entry: CatalogEntry, item: WorkItem[ImageGenerationInput]) -> dict[str, Any]:
    """The call arguments for a batch whose jobs share ``item``'s reference image and scale
    (both are batch fields), and the scale set on the pipeline."""
    if entry.runtime.ip_adapter is None:
        return {}
    data = item.files.get("ip_adapter_image")
    if data is None:
        pipe.set_ip_adapter_scale(0.0)
        return {"ip_adapter_image": Image.new("RGB", (224, 224), (127, 127, 127))}
    scale = item.input.ip_adapter_scale
    pipe.set_ip_adapter_scale(DEFAULT_SCALE if scale is None else scale)
    return {"ip_adapter_image": open_image(data, "RGB")}
