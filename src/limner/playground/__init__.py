"""The web playground: static files (plain ES modules and CSS, no build step) that ``limner
serve`` answers at ``/`` (the page) and ``/ui/`` (its scripts, styles and vendored viewers).

The page talks to the API like any client does, so it holds no data: the API key middleware
lets these paths through, and every request the page makes carries the key it asked for."""

from __future__ import annotations

from pathlib import Path
from typing import Final

from fastapi import FastAPI
from fastapi.responses import FileResponse
from starlette.staticfiles import StaticFiles

STATIC_DIR: Final = Path(__file__).resolve().parent / "static"
PREFIX: Final = "/ui"
INDEX_PATHS: Final = frozenset({"/", "/playground"})


def mount(app: FastAPI) -> None:
    """Add the page and its assets after the API's routes, which keep priority."""
    index = STATIC_DIR / "index.html"

    async def page() -> FileResponse:
        return FileResponse(index, headers={"Cache-Control": "no-cache"})

    for path in sorted(INDEX_PATHS):
        app.add_api_route(path, page, methods=["GET"], include_in_schema=False)
    app.mount(PREFIX, StaticFiles(directory=STATIC_DIR), name="playground")


def is_public(path: str) -> bool:
    """The playground's own files: the same for every caller, so no API key is asked for them."""
    return path in INDEX_PATHS or path.startswith(PREFIX + "/")
