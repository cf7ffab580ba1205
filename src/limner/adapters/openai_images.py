"""Family ``openai-images``: a hosted model behind OpenAI's API: text-to-image through the
Images API (here), text-generation through chat completions (limner.adapters.openai_chat).

``POST {source}/images/generations`` with ``Authorization: Bearer <key>``: ``prompt``, ``n``
(``num_outputs``), ``size`` (``WIDTHxHEIGHT`` from ``width``/``height``) and
``response_format: b64_json``, plus the entry's ``call_args`` (``model`` at least: the
provider's own model name). The answer's images (``b64_json``, or ``url`` for providers that
send only URLs) are stored in limner's storage like any model's outputs.

The API is synchronous and has no cancel: a job canceled during the call has its images
discarded when the call returns.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from limner.adapters.base import JobOutput, LoadedModel, LoadEnv, RunContext, WorkItem
from limner.adapters.openai_chat import chat
from limner.adapters.remote import Provider, media_file
from limner.catalog.entry import CatalogEntry
from limner.errors import ProviderError
from limner.progress import Stage
from limner.tasks.image import TextToImageInput

DEFAULT_TIMEOUT_S = 300.0


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
        self, provider: Provider, entry: CatalogEntry, item: WorkItem[TextToImageInput], ctx: RunContext
    ) -> JobOutput:
        spec = item.input
        # 2. the request
        body: dict[str, Any] = {"prompt": spec.prompt, "n": spec.num_outputs, "response_format": "b64_json"}
        if spec.width is not None and spec.height is not None:
            body["size"] = f"{spec.width}x{spec.height}"
        body.update(entry.call_args)
        ctx.stage(Stage.GENERATING)
        # 3. the call
        answer = provider.call("POST", f"{entry.source.rstrip('/')}/images/generations", json=body)
        if ctx.is_canceled(item.job_id):
            return JobOutput(files={})
        # 4. the images
        data = answer.get("data") if isinstance(answer, dict) else None
        if not isinstance(data, list) or not data:
            raise ProviderError(f"{entry.id}: the provider's answer has no images (data)")
        files = []
        for image in data:
            if isinstance(image, dict) and isinstance(image.get("b64_json"), str):
                raw, kind = provider.download(f"data:;base64,{image['b64_json']}")
            elif isinstance(image, dict) and isinstance(image.get("url"), str):
                raw, kind = provider.download(image["url"])
            else:
                raise ProviderError(f"{entry.id}: an image of the provider's answer has neither b64_json nor url")
            files.append(media_file(raw, kind, entry.id))
        return JobOutput(files={"images": files}, extra={"provider": {"family": entry.family}})


def make_adapter() -> OpenAIImagesAdapter:
    return OpenAIImagesAdapter()
