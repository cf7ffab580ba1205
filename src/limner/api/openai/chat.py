"""``POST /v1/chat/completions``, as OpenAI's Chat Completions API, non-streaming and streaming.

- ``model``: a limner model id or an alias (``LIMNER_MODEL_ALIASES``). Messages with only text
  need a text-generation model. A conversation with ``image_url`` parts goes to an
  image-to-text model: the one image (data: URI or URL) and the text of the last user message
  become its ``image`` and ``prompt``; the route never swaps one model for another.
- ``max_tokens`` (or ``max_completion_tokens``), ``temperature``, ``top_p``, ``stop`` (a string
  or up to 4), ``seed``, ``stream`` and ``stream_options.include_usage`` are honoured. ``n`` must
  be 1; tools, functions, logprobs, audio and non-text response formats are refused with a 400
  naming them. ``user``, ``metadata``, ``store`` and penalties of 0 are accepted and change
  nothing.
- Each request is an ordinary limner job (durable, listed, the ``X-Limner-Request-Id`` header).
  ``stream: true`` answers Server-Sent Events of ``chat.completion.chunk`` objects: the text as
  the worker reports it (progress ``text``), then the finish reason, then ``data: [DONE]``. With
  stop strings the last few characters are held back until the job ends, since a stop string
  may still cut them.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from limner.api.accept import accept
from limner.api.context import ApiContext, get_ctx
from limner.api.errors import body_of
from limner.api.openai.common import resolve_model, run_job
from limner.api.views import failure
from limner.catalog import CatalogEntry
from limner.errors import InvalidInput, RequestNotFound
from limner.store.records import Job
from limner.store.states import SUCCEEDED

router = APIRouter(tags=["openai"])
Ctx = Annotated[ApiContext, Depends(get_ctx)]
TEXT, VISION = "text-generation", "image-to-text"
REFUSED = ("tools", "tool_choice", "functions", "function_call", "logprobs", "top_logprobs", "audio", "prediction")
ZERO_PENALTIES = ("frequency_penalty", "presence_penalty")
RECHECK_S = 15.0


class ChatRequest(BaseModel):
    """OpenAI's chat completion request; other fields of the model's task schema may be added."""

    model_config = ConfigDict(extra="allow")

    model: str | None = Field(default=None, description="A text-generation or image-to-text model id, or an alias.")
    messages: list[dict[str, Any]] = Field(min_length=1, description="[{role, content}], OpenAI's shape.")
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = None
    top_p: float | None = None
    stop: str | list[str] | None = None
    seed: int | None = None
    n: int | None = None
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    response_format: dict[str, Any] | None = None
    user: str | None = None
    metadata: dict[str, Any] | None = None
    store: bool | None = None


def check_options(fields: dict[str, Any]) -> None:
    for name in REFUSED:
        if fields.get(name) not in (None, [], {}):
            raise InvalidInput(f"{name} is not supported by limner's text models", loc=("body", name))
    for name in ZERO_PENALTIES:
        if fields.get(name) not in (None, 0, 0.0):
            raise InvalidInput(f"{name} is not supported (only 0)", loc=("body", name))
    if fields.get("n") not in (None, 1):
        raise InvalidInput("n must be 1: limner makes one choice per request", loc=("body", "n"))
    kind = (fields.get("response_format") or {}).get("type", "text")
    if kind != "text":
        raise InvalidInput(f"response_format {kind!r} is not supported (only text)", loc=("body", "response_format"))


def images_of(messages: list[dict[str, Any]]) -> list[str]:
    urls: list[str] = []
    for message in messages:
        content = message.get("content")
        if isinstance(content, list):
            for part in content:
                if isinstance(part, dict) and part.get("type") == "image_url":
                    url = (part.get("image_url") or {}).get("url") if isinstance(part.get("image_url"), dict) else None
                    urls.append(url if isinstance(url, str) else "")
    return urls


def sampling(fields: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = {}
    tokens = fields.get("max_completion_tokens") or fields.get("max_tokens")
    if tokens is not None:
        body["max_tokens"] = tokens
    for name in ("temperature", "top_p", "seed"):
        if fields.get(name) is not None:
            body[name] = fields[name]
    return body


def task_input(fields: dict[str, Any], images: list[str]) -> dict[str, Any]:
    """The limner input of a chat request: text-generation's messages, or an image-to-text
    model's image and prompt; other task fields ride along as they are."""
    known = set(ChatRequest.model_fields) | set(REFUSED) | set(ZERO_PENALTIES)
    body = {k: v for k, v in fields.items() if k not in known and v is not None}
    body.update(sampling(fields))
    stop = fields.get("stop")
    if not images:
        body["messages"] = fields["messages"]
        if stop:
            body["stop"] = [stop] if isinstance(stop, str) else stop
        return body
    if len(images) != 1:
        raise InvalidInput(f"send exactly one image_url part (got {len(images)})", loc=("body", "messages"))
    if stop:
        raise InvalidInput("stop is not supported with images (image-to-text models)", loc=("body", "stop"))
    users = [m for m in fields["messages"] if m.get("role") == "user"]
    content = users[-1].get("content") if users else None
    texts = (
        [p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text"]
        if isinstance(content, list)
        else [content]
        if isinstance(content, str)
        else []
    )
    prompt = "\n".join(t for t in texts if t)
    body["image"] = images[0]
    if prompt:
        body["prompt"] = prompt
    return body


def usage_of(result: dict[str, Any]) -> dict[str, int]:
    usage = result.get("usage") or {}
    prompt, completion = int(usage.get("input_tokens", 0)), int(usage.get("output_tokens", 0))
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def completion(job: Job, entry: CatalogEntry) -> dict[str, Any]:
    result = job.result or {}
    return {
        "id": f"chatcmpl-{job.id}",
        "object": "chat.completion",
        "created": int(job.created_at),
        "model": entry.id,
        "system_fingerprint": f"limner-{(result.get('model') or {}).get('revision', '')}",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": result.get("output", ""), "refusal": None},
                "finish_reason": result.get("finish_reason", "stop"),
                "logprobs": None,
            }
        ],
        "usage": usage_of(result),
    }


@router.post("/v1/chat/completions", response_model=None)
async def chat_completions(body: ChatRequest, request: Request, ctx: Ctx) -> JSONResponse | StreamingResponse:
    """Chat completion, answered as OpenAI's Chat Completions API does (JSON, or SSE chunks)."""
    fields = body.model_dump()
    fields.update(body.model_extra or {})
    check_options(fields)
    images = images_of(body.messages)
    entry = resolve_model(ctx, body.model, (VISION,) if images else (TEXT,))
    task_body = task_input(fields, images)
    if not body.stream:
        job = await run_job(ctx, request, entry, task_body)
        return JSONResponse(content=completion(job, entry), headers={"X-Limner-Request-Id": job.id})
    submitted = await accept(ctx, request, entry.id, task_body)
    include_usage = bool((body.stream_options or {}).get("include_usage"))
    stops = task_body.get("stop") or []
    holdback = max((len(s) for s in stops), default=1) - 1
    chunks = stream_chunks(ctx, submitted.job_id, entry, include_usage, holdback)
    return StreamingResponse(
        chunks,
        media_type="text/event-stream",
        headers={"X-Limner-Request-Id": submitted.job_id, "Cache-Control": "no-cache"},
    )


def chunk(job_id: str, created: int, model: str, delta: dict[str, Any], finish: str | None = None) -> str:
    body = {
        "id": f"chatcmpl-{job_id}",
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
    }
    return f"data: {json.dumps(body)}\n\n"


async def stream_chunks(
    ctx: ApiContext, job_id: str, entry: CatalogEntry, include_usage: bool, holdback: int
) -> AsyncIterator[str]:
    """The job's text as chunks while it runs (from its progress), then its end. A client that
    hangs up before the end cancels the job: nobody can read its text any more (and a limner
    routing to this one through ``openai-images`` cancels its call this way)."""
    created = int(time.time())
    yield chunk(job_id, created, entry.id, {"role": "assistant", "content": ""})
    sent = ""
    ended = False
    try:
        while True:
            job = await run_in_threadpool(ctx.jobs.get, job_id)
            if job is None:
                raise RequestNotFound(f"request {job_id} vanished")
            if job.terminal:
                ended = True
                break
            text = (job.progress or {}).get("text")
            if isinstance(text, str) and text.startswith(sent):
                ready = text[: len(text) - holdback] if holdback else text
                if len(ready) > len(sent):
                    yield chunk(job_id, created, entry.id, {"content": ready[len(sent) :]})
                    sent = ready
            await ctx.watcher.wait_change(job.id, job.updated_at, RECHECK_S)
    finally:
        if not ended:  # the stream was closed under us: not awaited, the task is being canceled
            asyncio.get_running_loop().run_in_executor(None, ctx.jobs.cancel, job_id)
    if job.status != SUCCEEDED:
        yield f"data: {json.dumps(body_of(failure(job), 'openai'))}\n\n"
        yield "data: [DONE]\n\n"
        return
    result = job.result or {}
    output = str(result.get("output", ""))
    if output.startswith(sent) and len(output) > len(sent):
        yield chunk(job_id, created, entry.id, {"content": output[len(sent) :]})
    yield chunk(job_id, created, entry.id, {}, str(result.get("finish_reason", "stop")))
    if include_usage:
        tail = {
            "id": f"chatcmpl-{job_id}",
            "object": "chat.completion.chunk",
            "created": created,
            "model": entry.id,
            "choices": [],
            "usage": usage_of(result),
        }
        yield f"data: {json.dumps(tail)}\n\n"
    yield "data: [DONE]\n\n"
