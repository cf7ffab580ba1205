"""Batches: a model or workflow over many rows (OpenAI's Batch API vocabulary where it fits).

- ``POST /v1/batches`` ``{model, input_file | rows, template?, max_concurrency?, priority?
  (default low), metadata?}`` → 202 with the batch: ``input_file`` is a URL (an upload to
  ``POST /v1/files?purpose=batch``, or another server's, fetched under the SSRF guard) of a
  JSONL (``{custom_id, input}`` per line) or CSV file whose columns fill ``template``; ``rows``
  is the same JSONL as a list. The file is checked at submit (shape, unique custom ids); rows
  are loaded and admitted afterwards by a coordinator.
- ``GET /v1/batches``, ``GET /v1/batches/{id}``, ``POST /v1/batches/{id}/cancel`` (finished
  rows stay), ``POST /v1/batches/{id}/retry`` (a new batch of the failed and canceled rows).
- ``GET /v1/batches/{id}/output`` and ``/errors``: JSONL, a line per finished row
  ``{custom_id, status, request_id, result | error}``, readable while the batch runs.

A member key sees its project's batches only.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Iterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator
from starlette.concurrency import run_in_threadpool

from limner.api.accept import check_idempotency_key, check_json
from limner.api.context import ApiContext, get_ctx
from limner.api.tenancy import Caller, caller_of
from limner.api.views import render_refs
from limner.batches.rows import Format, check_rows, read_rows, sniff_format
from limner.catalog.inputs import body_hash
from limner.errors import Conflict, InvalidInput, NotFound
from limner.intake.files import read_input
from limner.net.fetch import FetchPolicy
from limner.storage.base import project_key
from limner.store.batches import Batch, NewBatch

router = APIRouter(tags=["batches"])
Ctx = Annotated[ApiContext, Depends(get_ctx)]


class BatchRow(BaseModel):
    model_config = ConfigDict(extra="forbid")

    custom_id: str | None = Field(default=None, max_length=255)
    input: dict[str, Any]


class BatchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(description="A model or workflow id, owner/name.")
    input_file: str | None = Field(default=None, max_length=4096, description="URL of a JSONL or CSV file.")
    rows: list[BatchRow] | None = Field(default=None, min_length=1, description="The rows, inline.")
    template: dict[str, str] | None = Field(
        default=None,
        description='Input fields made from CSV columns: {"image": "{image_url}", "scene": "{style} scene"}.',
    )
    max_concurrency: int | None = Field(default=None, ge=1, le=10_000, description="Rows in the queue at once.")
    priority: Literal["high", "normal", "low"] = Field(default="low", description="Interactive jobs overtake low.")
    metadata: dict[str, str] | None = Field(default=None, max_length=16)
    result_ttl_s: float | None = Field(default=None, gt=0, description="Keep each row's result this long.")

    @model_validator(mode="after")
    def _one_source(self) -> BatchRequest:
        if (self.input_file is None) == (self.rows is None):
            raise ValueError("give exactly one of input_file (a URL) and rows (a list)")
        return self


def batch_view(ctx: ApiContext, batch: Batch, counts: dict[str, int], base: str) -> dict[str, Any]:
    root = f"{base}/v1/batches/{batch.id}"
    return {
        "id": batch.id,
        "object": "batch",
        "model": batch.model_id,
        "status": batch.status,
        "priority": batch.priority,
        "max_concurrency": batch.max_concurrency,
        "request_counts": counts,
        "metadata": batch.metadata or {},
        "retry_of": batch.retry_of,
        "error": batch.error,
        "created_at": batch.created_at,
        "in_progress_at": batch.started_at,
        "finished_at": batch.finished_at,
        "output_url": f"{root}/output",
        "error_url": f"{root}/errors",
        "input_file": ctx.storage.url(batch.input_key, base),
    }


async def _visible(ctx: ApiContext, caller: Caller, batch_id: str) -> Batch:
    batch = await run_in_threadpool(ctx.batches.get, batch_id)
    if batch is None or not caller.sees_project(batch.project):
        raise NotFound(f"no batch {batch_id}", loc=("path", "batch_id"))
    return batch


def _read_file(ctx: ApiContext, caller: Caller, url: str, base: str) -> bytes:
    policy = FetchPolicy.create(ctx.settings.fetch_allow_hosts, ctx.settings.fetch_timeout_s)
    return read_input(url, "input_file", ctx.storage, base, ctx.settings.max_batch_file_bytes, policy, caller)


def _jsonl(rows: list[BatchRow]) -> bytes:
    lines = (json.dumps({"custom_id": r.custom_id, "input": r.input}, ensure_ascii=False) for r in rows)
    return ("\n".join(lines) + "\n").encode()


def _store_input(ctx: ApiContext, caller: Caller, data: bytes, fmt: Format) -> str:
    key = project_key(caller.project, f"batches/{hashlib.sha256(data).hexdigest()}.{fmt}")
    if not ctx.storage.exists(key):
        ctx.storage.put(key, data, "application/jsonl" if fmt == "jsonl" else "text/csv")
    return key


def _create(
    ctx: ApiContext,
    caller: Caller,
    body: BatchRequest,
    base: str,
    retry_of: str | None = None,
    idempotency_key: str | None = None,
) -> Batch:
    ctx.catalog.callable(body.model)  # 404 for an unknown model or workflow
    fmt: Format
    if body.rows is not None:
        data, fmt = _jsonl(body.rows), "jsonl"
    else:
        assert body.input_file is not None
        data = _read_file(ctx, caller, body.input_file, base)
        fmt = sniff_format(data, body.input_file.split("?")[0])
    # A CSV without a template sends its columns as the input fields.
    total = check_rows(read_rows(data, fmt, body.template, ctx.settings.max_batch_rows))
    new = NewBatch(
        project=caller.project,
        api_key_id=caller.key_id,
        model_id=body.model,
        priority=body.priority,
        max_concurrency=body.max_concurrency or ctx.settings.batch_concurrency,
        input_key=_store_input(ctx, caller, data, fmt),
        input_format=fmt,
        template=body.template,
        metadata=body.metadata,
        total=total,
        result_ttl_s=body.result_ttl_s or ctx.settings.result_ttl_s or None,
        retry_of=retry_of,
        idempotency_key=idempotency_key,
        body_hash=body_hash(body.model_dump(mode="json")) if idempotency_key else None,
    )
    return ctx.batches.create(new)


@router.post("/v1/batches", status_code=202)
async def create_batch(body: BatchRequest, request: Request, ctx: Ctx) -> JSONResponse:
    """Check the rows and create the batch; 202 at once, the rows follow. With an
    Idempotency-Key, the same request again answers with the batch it made."""
    check_json(body.model_dump())
    caller, base = caller_of(request), ctx.base_url(request)
    key = check_idempotency_key(request.headers.get("idempotency-key"))
    batch = await run_in_threadpool(_create, ctx, caller, body, base, None, key)
    counts = await run_in_threadpool(ctx.batches.counts, batch)
    return JSONResponse(status_code=202, content=batch_view(ctx, batch, counts, base))


@router.get("/v1/batches")
async def list_batches(
    request: Request,
    ctx: Ctx,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page.")] = None,
) -> dict[str, Any]:
    caller, base = caller_of(request), ctx.base_url(request)
    before = _decode_cursor(cursor) if cursor else None
    page = await run_in_threadpool(ctx.batches.page, caller.project_filter, limit + 1, before)
    more, page = len(page) > limit, page[:limit]
    views = [batch_view(ctx, b, await run_in_threadpool(ctx.batches.counts, b), base) for b in page]
    cursor_out = _encode_cursor(page[-1]) if more and page else None
    return {"object": "list", "data": views, "has_more": more, "next_cursor": cursor_out}


@router.get("/v1/batches/{batch_id}")
async def get_batch(batch_id: str, request: Request, ctx: Ctx) -> dict[str, Any]:
    batch = await _visible(ctx, caller_of(request), batch_id)
    return batch_view(ctx, batch, await run_in_threadpool(ctx.batches.counts, batch), ctx.base_url(request))


@router.post("/v1/batches/{batch_id}/cancel")
async def cancel_batch(batch_id: str, request: Request, ctx: Ctx) -> dict[str, Any]:
    """Stop admitting rows and cancel the rows in flight; finished rows stay."""
    batch = await _visible(ctx, caller_of(request), batch_id)
    if batch.finished:
        raise Conflict(f"batch {batch_id} is already {batch.status}", loc=("path", "batch_id"))
    cancelled = await run_in_threadpool(ctx.batches.request_cancel, batch_id)
    batch = cancelled or batch
    return batch_view(ctx, batch, await run_in_threadpool(ctx.batches.counts, batch), ctx.base_url(request))


@router.post("/v1/batches/{batch_id}/retry", status_code=202)
async def retry_batch(batch_id: str, request: Request, ctx: Ctx) -> JSONResponse:
    """A new batch of this one's failed and canceled rows (their inputs as they were)."""
    caller, base = caller_of(request), ctx.base_url(request)
    batch = await _visible(ctx, caller, batch_id)
    if not batch.finished:
        raise Conflict(f"batch {batch_id} is still {batch.status}: retry it once it ends", loc=("path", "batch_id"))
    failed = [
        BatchRow(custom_id=r["custom_id"], input=r["input"])
        for r in await run_in_threadpool(lambda: list(ctx.batches.finished_rows(batch_id, errors_only=True)))
    ]
    if not failed:
        raise InvalidInput(f"batch {batch_id} has no failed or canceled rows to retry", loc=("path", "batch_id"))
    again = BatchRequest(
        model=batch.model_id,
        rows=failed,
        max_concurrency=batch.max_concurrency,
        priority=batch.priority,
        metadata=batch.metadata,
        result_ttl_s=batch.result_ttl_s,
    )
    new = await run_in_threadpool(_create, ctx, caller, again, base, batch_id)
    counts = await run_in_threadpool(ctx.batches.counts, new)
    return JSONResponse(status_code=202, content=batch_view(ctx, new, counts, base))


def _output_lines(ctx: ApiContext, batch_id: str, base: str, errors_only: bool) -> Iterator[bytes]:
    for row in ctx.batches.finished_rows(batch_id, errors_only=errors_only):
        line: dict[str, Any] = {"custom_id": row["custom_id"], "status": row["status"], "request_id": row["job_id"]}
        if row["status"] == "succeeded":
            line["result"] = render_refs(row["result"] or {}, ctx.storage, base)
        else:
            line["error"] = {"type": row["error_type"], "message": row["error"] or row["job_error"]}
        yield (json.dumps(line, ensure_ascii=False) + "\n").encode()


@router.get("/v1/batches/{batch_id}/output")
async def batch_output(batch_id: str, request: Request, ctx: Ctx) -> StreamingResponse:
    """A JSONL line per finished row, in file order (so far, while it runs)."""
    await _visible(ctx, caller_of(request), batch_id)
    lines = _output_lines(ctx, batch_id, ctx.base_url(request), errors_only=False)
    return StreamingResponse(lines, media_type="application/jsonl")


@router.get("/v1/batches/{batch_id}/errors")
async def batch_errors(batch_id: str, request: Request, ctx: Ctx) -> StreamingResponse:
    """The failed and canceled rows only."""
    await _visible(ctx, caller_of(request), batch_id)
    lines = _output_lines(ctx, batch_id, ctx.base_url(request), errors_only=True)
    return StreamingResponse(lines, media_type="application/jsonl")


def _encode_cursor(batch: Batch) -> str:
    return base64.urlsafe_b64encode(f"{batch.created_at!r}|{batch.id}".encode()).decode()


def _decode_cursor(cursor: str) -> tuple[float, str]:
    try:
        stamp, batch_id = base64.urlsafe_b64decode(cursor.encode()).decode().split("|", 1)
        return float(stamp), batch_id
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidInput("cursor is not one this server gave out", loc=("query", "cursor")) from None
