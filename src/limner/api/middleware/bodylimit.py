"""Refuse request bodies over the size limit before reading them into memory, and request
lines with NUL characters (no store column can hold one).

Starlette has no body-size setting, so this small ASGI middleware checks Content-Length and
counts streamed bytes.
"""

from __future__ import annotations

from urllib.parse import unquote_to_bytes

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from limner.api.errors import send_error
from limner.errors import InvalidInput, PayloadTooLarge


class BodyTooLarge(Exception):
    pass


class BodyLimit:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        if b"\x00" in unquote_to_bytes(scope.get("query_string", b"")) or "\x00" in scope["path"]:
            if scope["type"] == "websocket":
                await receive()
                await send({"type": "websocket.close", "code": 1008, "reason": "NUL in the request line"})
                return
            error = InvalidInput("the path or query contains a NUL character (%00)", loc=("query",))
            await send_error(send, error, scope["path"])
            return
        if scope["type"] == "websocket":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                await self._refuse(send, scope["path"])
                return
        seen = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await self._refuse(send, scope["path"])

    async def _refuse(self, send: Send, path: str) -> None:
        error = PayloadTooLarge(
            f"request body is over the limit of {self.max_bytes} bytes (max_body_bytes)", loc=("body",)
        )
        await send_error(send, error, path)
