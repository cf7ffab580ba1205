"""``GET /v1/files/{key}``: media files from local storage."""

from __future__ import annotations

import mimetypes
from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import FileResponse

from limner.api.context import ApiContext, get_ctx
from limner.errors import NotFound
from limner.storage import LocalStorage

router = APIRouter(tags=["files"])


@router.get("/v1/files/{key:path}")
def get_file(key: str, ctx: Annotated[ApiContext, Depends(get_ctx)]) -> FileResponse:
    storage = ctx.storage
    if not isinstance(storage, LocalStorage):
        raise NotFound("this server's storage hands out its own URLs", loc=("path", "key"))
    path = storage.path(key)
    if not path.is_file():
        raise NotFound(f"no file {key!r}", loc=("path", "key"))
    media_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    # Keys are never reused for other content, so clients may cache for good.
    return FileResponse(path, media_type=media_type, headers={"Cache-Control": "public, max-age=31536000, immutable"})
