"""``POST /v1/files`` (uploads) and ``GET /v1/files/{key}`` (media files).

An upload is stored once under its content hash and answered with a URL that any file field
of any model takes; the job that uses it checks it against that model's limits. Local files
are served here; on S3 storage this route redirects to a fresh presigned URL, so /v1/files
URLs handed out before a move to S3 (or kept past a presigned URL's expiry) keep working.
"""

from __future__ import annotations

import hashlib
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from limner.api.context import ApiContext, get_ctx
from limner.api.file_urls import unwrap
from limner.api.tenancy import caller_of
from limner.batches.rows import sniff_format
from limner.errors import InvalidInput, NotFound, PayloadTooLarge
from limner.media.sniff import ACCEPTED, Sniffed, sniff
from limner.media.types import content_type_for
from limner.storage import LocalStorage
from limner.storage.base import check_key, project_key

router = APIRouter(tags=["files"])
Ctx = Annotated[ApiContext, Depends(get_ctx)]
FIELD = "file"

UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "description": f"The file: a multipart form with a `{FIELD}` part, or the raw bytes as the body. "
        f"It must be {ACCEPTED}; the type is told from the bytes.",
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {FIELD: {"type": "string", "format": "binary"}},
                    "required": [FIELD],
                }
            },
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}


def too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"the upload is over this server's limit of {limit} bytes (max_upload_bytes, max_batch_file_bytes)",
        loc=("body", FIELD),
    )


async def read_raw(request: Request, limit: int) -> bytes:
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        raise too_large(limit)
    chunks: list[bytes] = []
    total = 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            raise too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


async def read_multipart(request: Request, limit: int) -> bytes:
    async with request.form(max_files=1, max_fields=8) as form:
        part = form.get(FIELD)
        if not isinstance(part, UploadFile):
            raise InvalidInput(f"the multipart form has no file part named {FIELD!r}", loc=("body", FIELD))
        if part.size is not None and part.size > limit:
            raise too_large(limit)
        data = await part.read(limit + 1)
        if len(data) > limit:
            raise too_large(limit)
        return data


def sniff_batch_file(data: bytes) -> Sniffed:
    """A batch's input: UTF-8 text, JSONL or CSV (its rows are checked when a batch names it)."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput("a batch input file must be UTF-8 text (JSONL or CSV)", loc=("body", FIELD)) from None
    fmt = sniff_format(data)
    return Sniffed("batch", fmt, "application/jsonl" if fmt == "jsonl" else "text/csv")


@router.post("/v1/files", status_code=201, openapi_extra=UPLOAD_BODY, response_class=JSONResponse)
async def upload_file(
    request: Request,
    ctx: Ctx,
    purpose: Annotated[
        Literal["input", "batch"],
        Query(description="input: an image or audio file; batch: a JSONL or CSV batch input."),
    ] = "input",
) -> JSONResponse:
    """Store an image or audio file (or a batch's input file); answers 201 with a URL to use in
    any file field (or as a batch's input_file)."""
    limit = ctx.settings.max_batch_file_bytes if purpose == "batch" else ctx.settings.max_upload_bytes
    content_type = request.headers.get("content-type", "").lower()
    if content_type.startswith("multipart/form-data"):
        data = await read_multipart(request, limit)
    else:
        data = await read_raw(request, limit)
    if not data:
        raise InvalidInput("the upload is empty", loc=("body", FIELD))
    sniffed = sniff_batch_file(data) if purpose == "batch" else sniff(data, FIELD)
    key = project_key(caller_of(request).project, f"uploads/{hashlib.sha256(data).hexdigest()}.{sniffed.extension}")
    storage = ctx.storage
    if not await run_in_threadpool(storage.exists, key):
        await run_in_threadpool(storage.put, key, data, sniffed.content_type)
    body = {
        "url": storage.url(key, ctx.base_url(request)),
        "key": key,
        "kind": sniffed.kind,
        "content_type": sniffed.content_type,
        "file_size": len(data),
        **sniffed.properties,
    }
    return JSONResponse(status_code=201, content=body)


@router.get("/v1/files/{key:path}", response_model=None)
def get_file(key: str, request: Request, ctx: Ctx) -> FileResponse | RedirectResponse:
    """A media file. With API keys on, the caller's key must see the file's project (or the
    URL carry a valid signature, checked before this route: see the auth middleware)."""
    if not caller_of(request).sees_file(key):
        raise NotFound(f"no file {key!r}", loc=("path", "key"))
    storage = unwrap(ctx.storage)
    if not isinstance(storage, LocalStorage):
        # The store serves its own files: send the client there with a fresh presigned URL.
        check_key(key)
        return RedirectResponse(storage.url(key, ctx.base_url(request)), status_code=307)
    path = storage.path(key)
    if not path.is_file():
        raise NotFound(f"no file {key!r}", loc=("path", "key"))
    media_type = content_type_for(path.name)
    # Keys are never reused for other content, so clients may cache for good.
    return FileResponse(path, media_type=media_type, headers={"Cache-Control": "public, max-age=31536000, immutable"})
