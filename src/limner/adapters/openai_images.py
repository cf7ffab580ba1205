"""Family ``openai-images``: a hosted model behind OpenAI's API: images through the Images API
(here), text-generation through chat completions (limner.adapters.openai_chat).

- text-to-image: ``POST {source}/images/generations`` (JSON) with ``prompt``, ``n``
  (``num_outputs``), ``size`` (``WIDTHxHEIGHT`` from ``width``/``height``), ``output_format``
  when it is not png, and ``response_format: b64_json``.
- image-to-image and inpainting: ``POST {source}/images/edits`` (multipart): the input
  ``image`` as a file, and for inpainting a ``mask`` in OpenAI's form: a PNG whose fully
  transparent pixels are repainted (limner's mask is white where repainted; ``invert_mask``
  flips it; it is resized to the image's size, as OpenAI requires). ``size`` is the output's
  (the API fills it from the input image when the request does not say).

Every request carries ``Authorization: Bearer <key>`` and the entry's ``call_args`` (``model``
at least: the provider's own model name). OpenAI's API has no seed, negative prompt, steps,
guidance or strength: the family refuses them (422) unless the entry sets ``runtime.extra_body``
for a provider that takes them as extra fields (another limner does); an entry that refuses the
seed draws none, so its results say ``seed: null``, not a seed that was never used. ControlNet,
IP-Adapter and LoRA fields are always refused (catalog.families). The answer's images
(``b64_json``, or ``url`` for providers that send only URLs) are stored in limner's storage
like any model's outputs.

The API is synchronous and has no cancel: a job canceled during the call has its images
discarded when the call returns.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping, Sequence
from typing import Any

from PIL import Image

from limner.adapters.base import JobOutput, LoadedModel, LoadEnv, RunContext, WorkItem
from limner.adapters.openai_chat import chat
from limner.adapters.remote import Provider, media_file
from limner.catalog.entry import CatalogEntry
from limner.catalog.families import OPENAI_EXTRA
from limner.errors import InvalidInput, ProviderError
from limner.media.sniff import sniff
from limner.progress import Stage
from limner.tasks.image import ImageGenerationInput, ImageToImageInput, InpaintingInput

DEFAULT_TIMEOUT_S = 300.0
# limner's masks are grey levels: at or above this a pixel is repainted (as the local
# inpainting families read them).
MASK_THRESHOLD = 128


class OpenAIImagesAdapter:
    # 1. load: an HTTP client to the provider, with its key.
    def load(self, entry: CatalogEntry, env: LoadEnv) -> LoadedModel:
        provider = Provider.open(entry, "Bearer", timeout_s=entry.runtime.timeout_s or DEFAULT_TIMEOUT_S)
        return LoadedModel(handle=provider, revision="remote", size_bytes=0, device="remote")

    def unload(self, model: LoadedModel) -> None:
        model.handle.close()

    def run(
        self, model: LoadedModel, entry: CatalogEntry, items: Sequence[WorkItem[Any]], ctx: RunContext
    ) -> list[JobOutput]:
        provider: Provider = model.handle
        if entry.task == "text-generation":
            return [chat(provider, entry, item, ctx) for item in items]
        return [self._one(provider, entry, item, ctx) for item in items]

    def _one(
        self, provider: Provider, entry: CatalogEntry, item: WorkItem[ImageGenerationInput], ctx: RunContext
    ) -> JobOutput:
        spec = item.input
        # 2. the request: the fields OpenAI's API has, the extra ones when the entry sends them,
        # then the operator's call_args (which win).
        fields: dict[str, Any] = {"prompt": spec.prompt, "n": spec.num_outputs}
        if spec.width is not None and spec.height is not None:
            fields["size"] = f"{spec.width}x{spec.height}"
        if spec.output_format != "png":
            fields["output_format"] = spec.output_format
        if entry.runtime.extra_body:
            fields.update({k: getattr(spec, k) for k in sorted(OPENAI_EXTRA) if getattr(spec, k, None) is not None})
        fields.update({"response_format": "b64_json", **entry.call_args})
        ctx.stage(Stage.GENERATING)
        # 3. the call
        base = entry.source.rstrip("/")
        if isinstance(spec, ImageToImageInput):
            files = edit_files(spec, item.files)
            form = {k: v if isinstance(v, str) else json.dumps(v) for k, v in fields.items()}
            answer = provider.call("POST", f"{base}/images/edits", data=form, files=files)
        else:
            answer = provider.call("POST", f"{base}/images/generations", json=fields)
        if ctx.is_canceled(item.job_id):
            return JobOutput(files={})
        # 4. the images
        return JobOutput(
            files={"images": images(provider, entry, answer)}, extra={"provider": {"family": entry.family}}
        )


def edit_files(spec: ImageToImageInput, files: Mapping[str, bytes]) -> dict[str, tuple[str, bytes, str]]:
    """The edit's multipart files: the input image as it came, and OpenAI's mask."""
    image = files["image"]
    kind = sniff(image, "image")
    out = {"image": (f"image.{kind.extension}", image, kind.content_type)}
    if isinstance(spec, InpaintingInput):
        size = (int(kind.properties.get("width") or 0), int(kind.properties.get("height") or 0))
        out["mask"] = ("mask.png", openai_mask(files["mask_image"], size, invert=spec.invert_mask), "image/png")
    return out


def openai_mask(data: bytes, size: tuple[int, int], *, invert: bool) -> bytes:
    """limner's mask (white = repaint, or black with ``invert``) as OpenAI's: an RGBA PNG of
    the image's size, transparent where the image is repainted and opaque elsewhere."""
    try:
        with Image.open(io.BytesIO(data)) as opened:
            grey = opened.convert("L")
    except Exception as exc:
        raise InvalidInput(f"mask_image is not an image this server reads: {exc}", loc=("body", "mask_image")) from None
    if all(size) and grey.size != size:
        grey = grey.resize(size, Image.Resampling.NEAREST)

    def alpha(level: int) -> int:
        repaint = level >= MASK_THRESHOLD
        return 0 if repaint != invert else 255

    mask = Image.new("RGBA", grey.size, (0, 0, 0, 255))
    mask.putalpha(grey.point(alpha))
    out = io.BytesIO()
    mask.save(out, format="PNG")
    return out.getvalue()


def images(provider: Provider, entry: CatalogEntry, answer: Any) -> list[Any]:
    """The images of an Images API answer, each read from ``b64_json`` or fetched from ``url``."""
    data = answer.get("data") if isinstance(answer, dict) else None
    if not isinstance(data, list) or not data:
        raise ProviderError(f"{entry.id}: the provider's answer has no images (data)")
    out = []
    for image in data:
        if isinstance(image, dict) and isinstance(image.get("b64_json"), str):
            raw, kind = provider.download(f"data:;base64,{image['b64_json']}")
        elif isinstance(image, dict) and isinstance(image.get("url"), str):
            raw, kind = provider.download(image["url"])
        else:
            raise ProviderError(f"{entry.id}: an image of the provider's answer has neither b64_json nor url")
        out.append(media_file(raw, kind, entry.id))
    return out


def make_adapter() -> OpenAIImagesAdapter:
    return OpenAIImagesAdapter()
