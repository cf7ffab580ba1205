"""Optional API keys, end to end: a server of its own (keys change every route), keys made and
revoked with the CLI, signed media URLs, and jobs that record their key."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from PIL import Image
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from tests.services import ROOT, Proc, child_env, free_port, wait_http

UNSERVED = "test/unserved"


@dataclass
class Server:
    base: str
    home: Path
    env: dict[str, str]

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "limner", *args, "--home", str(self.home)],
            env=self.env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )


@pytest.fixture(scope="module")
def server(catalogs: tuple[Path, Path]) -> Iterator[Server]:
    home = Path(tempfile.mkdtemp(prefix="limner-keys-"))
    port = free_port()
    env = child_env(home)
    proc = Proc(["serve", "--workers", "0", "--port", str(port), "--catalog", str(catalogs[1])], env, home / "api.log")
    base = f"http://127.0.0.1:{port}"
    wait_http(f"{base}/healthz", proc)
    yield Server(base, home, env)
    proc.stop()


def wait_status(http: httpx.Client, path: str, status: int, **kwargs: object) -> httpx.Response:
    """Keys take effect within a second of being made (the server rechecks the store)."""
    deadline = time.monotonic() + 10
    while True:
        response = http.get(path, **kwargs)  # type: ignore[arg-type]
        if response.status_code == status or time.monotonic() > deadline:
            return response
        time.sleep(0.1)


def test_keys_guard_every_route_once_made(server: Server) -> None:
    with httpx.Client(base_url=server.base, timeout=30) as http:
        assert http.get("/v1/models").status_code == 200  # no key exists yet: open
        raw = server.cli("keys", "create", "--name", "ci").stdout.strip()
        assert raw.startswith("lmk_") and len(raw) > 40
        refused = wait_status(http, "/v1/models", 401)
        assert refused.status_code == 401 and refused.json()["error_type"] == "unauthorized"
        assert "limner keys create" in refused.json()["detail"][0]["msg"]
        assert http.get("/v1/models", headers={"Authorization": "Key lmk_wrong"}).status_code == 401
        for scheme in ("Key", "Bearer"):
            assert http.get("/v1/models", headers={"Authorization": f"{scheme} {raw}"}).status_code == 200
        assert http.get("/healthz").status_code == 200
        assert http.get("/readyz").status_code in (200, 503)  # open, whatever its answer
        assert http.get("/openapi.json").status_code == 401
        headers = {"Authorization": f"Key {raw}"}

        # Jobs record their key, and the listing filters by it.
        handle = http.post(f"/v1/queue/{UNSERVED}", json={"prompt": "keyed"}, headers=headers).json()
        [made] = [json.loads(line) for line in server.cli("keys", "list", "--json").stdout.splitlines()]
        key_id = made["id"]
        assert made["role"] == "admin" and made["project"] == key_id  # the first key; a project of its own
        page = http.get("/v1/requests", params={"key": key_id}, headers=headers).json()
        assert [r["request_id"] for r in page["requests"]] == [handle["request_id"]]
        assert page["requests"][0]["api_key_id"] == key_id
        http.put(handle["cancel_url"], headers=headers)

        # Media URLs are signed: they work without a key, and only as given.
        upload = http.post(
            "/v1/files",
            content=_png(Image.new("RGB", (8, 8), (9, 9, 9))),
            headers={**headers, "Content-Type": "application/octet-stream"},
        )
        assert upload.status_code == 201, upload.text
        url = upload.json()["url"]
        assert "sig=" in url and "expires=" in url
        assert httpx.get(url).status_code == 200
        assert httpx.get(url.replace("sig=", "sig=x")).status_code == 401
        assert httpx.get(url.split("?")[0]).status_code == 401

        # Browsers pass the key to the WebSocket as ?key=.
        ws = f"{server.base.replace('http://', 'ws://')}/v1/queue/{UNSERVED}/requests/{handle['request_id']}/status/ws"
        with connect(f"{ws}?key={raw}", open_timeout=10) as socket:
            assert '"state"' in str(socket.recv(timeout=10))
        with pytest.raises(InvalidStatus), connect(ws, open_timeout=10):
            pass

        # Revoked: 403, with the key named.
        server.cli("keys", "revoke", key_id)
        forbidden = http.get("/v1/models", headers=headers)
        assert forbidden.status_code == 403 and key_id in forbidden.json()["detail"][0]["msg"]
        # Revoking the last key does not open the server.
        assert http.get("/v1/models").status_code == 401


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()
