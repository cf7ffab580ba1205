"""A real HTTP server on loopback that answers from a script: 503s, 429s, dropped connections,
then the real answer. It records what each attempt carried, for the client retry tests."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

DROP = "drop"  # close the connection without an answer


@dataclass
class Reply:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    at: float


@dataclass
class Script:
    """Replies per "METHOD /path" (query ignored), used in order; the last one repeats."""

    replies: dict[str, list[Reply | str]]
    seen: list[Seen] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next(self, method: str, path: str) -> Reply | str:
        with self.lock:
            queue = self.replies.get(f"{method} {path.split('?')[0]}")
            if not queue:
                return Reply(404, {"detail": "not scripted"})
            return queue.pop(0) if len(queue) > 1 else queue[0]


def _handler(script: Script) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *_args: Any) -> None:
            pass

        def _answer(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            if length:
                self.rfile.read(length)
            script.seen.append(Seen(self.command, self.path, dict(self.headers.items()), time.monotonic()))
            reply = script.next(self.command, self.path)
            if reply == DROP:
                self.close_connection = True
                self.connection.shutdown(2)
                return
            assert isinstance(reply, Reply)
            data = json.dumps(reply.body).encode()
            self.send_response(reply.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = _answer

    return Handler


@contextmanager
def flaky_server(script: Script) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(script))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
