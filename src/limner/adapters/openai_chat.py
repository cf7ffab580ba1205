"""The ``openai-images`` family's text-generation: ``POST {source}/chat/completions``, streamed.

The request is OpenAI's: ``messages`` (the task's chat, text only), ``max_tokens``,
``temperature``, ``top_p``, ``seed``, ``stop`` when set, ``stream: true`` with
``stream_options.include_usage``, plus the entry's ``call_args`` (``model`` at least: the
provider's own model name). Streaming lets the job show the text so far in its progress as
the provider writes it, like a local text model; and since OpenAI's API has no cancel route,
closing the stream once the job is canceled is what stops the provider's work.

The answer becomes what a local text model's job returns: ``output``, ``finish_reason``
(``stop`` or ``length``) and ``usage`` (``input_tokens``/``output_tokens`` from the provider's
usage chunk). The server-sent events are read line by line here: httpx gives the lines, and
the format (``data: {json}`` up to ``data: [DONE]``) is three rules, not a library.
"""

from __future__ import annotations

import json
from typing import Any

from limner.adapters.base import JobOutput, RunContext, TextProgress, WorkItem
from limner.adapters.remote import Provider
from limner.catalog.entry import CatalogEntry
from limner.errors import ERROR_TYPES, ProviderError
from limner.progress import Stage
from limner.tasks.text import TextGenerationInput


def chat(provider: Provider, entry: CatalogEntry, item: WorkItem[TextGenerationInput], ctx: RunContext) -> JobOutput:
    spec = item.input
    body: dict[str, Any] = {
        "messages": spec.chat(),
        "max_tokens": spec.max_tokens,
        "temperature": spec.temperature,
        "top_p": spec.top_p,
        "seed": spec.seed,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    if spec.stop:
        body["stop"] = spec.stop
    body.update(entry.call_args)
    ctx.stage(Stage.GENERATING)
    progress = ctx if isinstance(ctx, TextProgress) else None
    text, finish, pieces = "", "stop", 0
    usage: dict[str, Any] = {}
    with provider.stream(f"{entry.source.rstrip('/')}/chat/completions", json=body) as lines:
        for line in lines:
            if ctx.is_canceled(item.job_id):
                return JobOutput(files={})  # leaving the block closes the stream: the provider stops
            chunk = _event(line, entry.id)
            if chunk is None:
                continue
            if isinstance(chunk, str):  # [DONE]
                break
            if isinstance(chunk.get("usage"), dict):
                usage = chunk["usage"]
            for choice in chunk.get("choices") or []:
                delta = (choice.get("delta") or {}).get("content")
                if isinstance(delta, str) and delta:
                    text += delta
                    pieces += 1
                    ctx.step(min(pieces, spec.max_tokens), spec.max_tokens)
                    if progress is not None:
                        progress.figures({"text": text}, now=pieces == 1)  # the first piece at once
                if choice.get("finish_reason"):
                    finish = "length" if choice["finish_reason"] == "length" else "stop"
    tokens = {
        "input_tokens": int(usage.get("prompt_tokens") or 0),
        "output_tokens": int(usage.get("completion_tokens") or pieces),
    }
    extra = {"output": text, "finish_reason": finish, "usage": tokens, "provider": {"family": entry.family}}
    return JobOutput(files={}, extra=extra)


def _event(line: str, entry_id: str) -> dict[str, Any] | str | None:
    """One SSE line: a JSON chunk, "done" at ``[DONE]``, or None (comments, blank lines)."""
    if not line.startswith("data:"):
        return None
    data = line[5:].strip()
    if data == "[DONE]":
        return "done"
    try:
        chunk = json.loads(data)
    except ValueError:
        raise ProviderError(f"{entry_id}: the provider's stream sent a line that is not JSON") from None
    if not isinstance(chunk, dict):
        raise ProviderError(f"{entry_id}: the provider's stream sent a chunk that is not an object")
    error = chunk.get("error")
    if error:
        kind = error.get("code") or error.get("type") if isinstance(error, dict) else None
        said = error.get("message") if isinstance(error, dict) else error
        raise ERROR_TYPES.get(str(kind), ProviderError)(f"{entry_id}: the provider's stream failed: {str(said)[:300]}")
    return chunk
