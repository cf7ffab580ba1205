"""Family ``fal-queue``: a hosted model behind fal's queue protocol (fal itself, or another limner).

The protocol, as fal documents it and limner serves it:

1. submit: ``POST {source}`` with the input JSON and ``Authorization: Key <key>``; the answer
   names ``request_id``, ``status_url``, ``response_url`` and ``cancel_url``;
2. follow: ``GET {status_url}?logs=1`` until ``COMPLETED`` (``IN_QUEUE`` with its
   ``queue_position``, ``IN_PROGRESS`` with logs, and limner's ``progress`` when the provider
   is a limner); the provider's logs go to the job's logs, scrubbed;
3. result: ``GET {response_url}``; the files under the task's output key (or fal's singular
   ``video`` / ``audio_file`` / ``model_mesh``) are copied into limner's storage;
4. cancel: once the limner job is canceled (or its lease lost), ``PUT {cancel_url}``, so the
   provider stops too.

No torch and no device: "loading" opens an HTTP client. The input fields go under limner's
names, or fal's (``runtime.input_names``, fal's by default for a fal.run source; see
limner.intake.fal_names), input files as data URIs, plus the entry's ``call_args`` for
arguments of the provider's own. Text tasks read the provider's ``output`` (fal's any-llm and
limner's text models answer in that shape).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

import httpx

from limner.adapters.base import JobOutput, LoadedModel, LoadEnv, RunContext, WorkItem
from limner.adapters.remote import Provider, file_urls, input_fields, media_file, request_body, scrub
from limner.catalog.entry import CatalogEntry
from limner.errors import ERROR_TYPES, JobTimeout, LimnerError, ProviderError
from limner.intake.fal_names import to_fal
from limner.progress import Stage
from limner.tasks import TASKS

log = logging.getLogger("limner.adapters.fal_queue")
# fal's single-file output keys, by limner's output key.
SINGULAR = {"videos": ("video",), "audio": ("audio_file", "audio"), "meshes": ("model_mesh", "mesh")}
POLL_FIRST_S, POLL_MAX_S = 0.05, 1.0
DEFAULT_TIMEOUT_S = 600.0
FAL_HOSTS = ("fal.run", "fal.ai")


class FalQueueAdapter:
    # 1. load: an HTTP client to the provider, with its key.
    def load(self, entry: CatalogEntry, env: LoadEnv) -> LoadedModel:
        provider = Provider.open(entry, "Key")
        return LoadedModel(handle=provider, revision="remote", size_bytes=0, device="remote")

    def unload(self, model: LoadedModel) -> None:
        model.handle.close()

    def run(
        self, model: LoadedModel, entry: CatalogEntry, items: Sequence[WorkItem[Any]], ctx: RunContext
    ) -> list[JobOutput]:
        provider: Provider = model.handle
        return [self._one(provider, entry, item, ctx) for item in items]

    def _one(self, provider: Provider, entry: CatalogEntry, item: WorkItem[Any], ctx: RunContext) -> JobOutput:
        # 2. submit
        fields = input_fields(item)
        body = request_body(to_fal(fields) if fal_names(entry) else fields, entry.call_args)
        submitted = provider.call("POST", entry.source, json=body)
        urls = _urls(submitted, entry.id)
        request_id = str(submitted.get("request_id", ""))
        ctx.log(f"submitted to the provider as request {request_id}")
        # 3. follow until done, canceled or overdue
        deadline = time.monotonic() + (entry.runtime.timeout_s or DEFAULT_TIMEOUT_S)
        status = self._follow(provider, entry, item, ctx, urls, deadline)
        if status is None:
            return JobOutput(files={})  # canceled: the worker finishes the job as canceled
        error_type = status.get("error_type")
        if error_type or status.get("error"):
            cls = ERROR_TYPES.get(str(error_type or ""), ProviderError)
            message = scrub(str(status.get("error") or error_type), provider.key)
            raise cls(f"{entry.id}: the provider's request {request_id} failed: {message}")
        # 4. result, with the files copied here
        result = provider.call("GET", urls["response_url"])
        seed = result.get("seed") if isinstance(result, dict) else None
        extra: dict[str, Any] = {"provider": {"family": entry.family, "request_id": request_id, "seed": seed}}
        if TASKS[entry.task].output_key == "output":
            return JobOutput(files={}, extra={**extra, **_text(result, entry.id)})
        files = [media_file(*provider.download(url), entry.id) for url, _kind in _outputs(result, entry.task)]
        if not files:
            raise ProviderError(f"{entry.id}: the provider's result has no {TASKS[entry.task].output_key}")
        return JobOutput(files={TASKS[entry.task].output_key: files}, extra=extra)

    def _follow(
        self,
        provider: Provider,
        entry: CatalogEntry,
        item: WorkItem[Any],
        ctx: RunContext,
        urls: dict[str, str],
        deadline: float,
    ) -> dict[str, Any] | None:
        """The provider's last status (COMPLETED), or None once the job was canceled here."""
        wait, seen_logs, stage = POLL_FIRST_S, 0, Stage.STARTING
        ctx.stage(stage)
        while True:
            if ctx.is_canceled(item.job_id):
                self._cancel(provider, entry, urls)
                return None
            if time.monotonic() > deadline:
                self._cancel(provider, entry, urls)
                raise JobTimeout(f"{entry.id}: the provider did not finish within its timeout")
            status = provider.call("GET", urls["status_url"], params={"logs": "1"})
            logs = status.get("logs") or []
            for line in logs[seen_logs:]:
                if isinstance(line, dict) and line.get("message"):
                    ctx.log(f"provider: {scrub(str(line['message']), provider.key)[:500]}")
            seen_logs = max(seen_logs, len(logs))
            state = status.get("status")
            if state == "COMPLETED":
                return dict(status)
            if state == "IN_PROGRESS" and stage != Stage.GENERATING:
                stage = Stage.GENERATING
                ctx.stage(stage)
            step = status.get("progress") if isinstance(status.get("progress"), dict) else {}
            if state == "IN_PROGRESS" and step.get("total"):
                ctx.step(int(step.get("step") or 0), int(step["total"]))
            time.sleep(wait)
            wait = min(wait * 2, POLL_MAX_S)

    def _cancel(self, provider: Provider, entry: CatalogEntry, urls: dict[str, str]) -> None:
        try:
            provider.call("PUT", urls["cancel_url"])
            log.info("%s: canceled the provider's request", entry.id)
        except LimnerError as exc:  # it may have finished meanwhile (400), or be gone
            log.info("%s: the provider's cancel answered: %s", entry.id, exc.message)


def _urls(submitted: Any, entry_id: str) -> dict[str, str]:
    if not isinstance(submitted, dict):
        raise ProviderError(f"{entry_id}: the provider's submit answer is not a JSON object")
    urls = {name: submitted.get(name) for name in ("status_url", "response_url", "cancel_url")}
    missing = [name for name, url in urls.items() if not isinstance(url, str)]
    if missing:
        raise ProviderError(f"{entry_id}: the provider's submit answer has no {missing[0]}")
    return {name: str(url) for name, url in urls.items()}


def _outputs(result: Any, task: str) -> list[tuple[str, str | None]]:
    if not isinstance(result, dict):
        return []
    key = TASKS[task].output_key
    for name in (key, *SINGULAR.get(key, ())):
        if result.get(name):
            return list(file_urls(result[name]))
    return []


def fal_names(entry: CatalogEntry) -> bool:
    """Whether the provider takes fal's field names (see RuntimeOptions.input_names)."""
    if entry.runtime.input_names is not None:
        return entry.runtime.input_names == "fal"
    host = httpx.URL(entry.source).host
    return host in FAL_HOSTS or host.endswith(tuple(f".{h}" for h in FAL_HOSTS))


def _text(result: Any, entry_id: str) -> dict[str, Any]:
    """A text result: the provider's output, finish reason and token counts."""
    output = result.get("output") if isinstance(result, dict) else None
    if not isinstance(output, str):
        raise ProviderError(f"{entry_id}: the provider's result has no output text")
    usage = result.get("usage") if isinstance(result.get("usage"), dict) else {}
    tokens = {k: int(usage[k]) for k in ("input_tokens", "output_tokens") if isinstance(usage.get(k), int)}
    finish = result.get("finish_reason") if result.get("finish_reason") in ("stop", "length") else "stop"
    return {"output": output, "finish_reason": finish, **({"usage": tokens} if tokens else {})}


def make_adapter() -> FalQueueAdapter:
    return FalQueueAdapter()
