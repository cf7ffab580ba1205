"""Start a further live limner (API + one worker) with its own flags: S3 storage, TLS."""

from __future__ import annotations

import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import httpx

from tests.conftest import Live
from tests.services import ROOT, Proc, child_env, free_port


def _wait(client: httpx.Client, url: str, proc: Proc, ready: bool, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not proc.alive():
            raise RuntimeError(f"{proc.args} exited:\n{proc.output()[-4000:]}")
        try:
            response = client.get(url, timeout=2)
            if not ready and response.status_code < 500:
                return
            if ready and response.json().get("workers", 0) >= 1:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{url} not ready in {timeout} s:\n{proc.output()[-4000:]}")


def start_live(
    catalog: Path | None,
    *,
    serve_args: Sequence[str] = (),
    worker_args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    scheme: str = "http",
    verify: str | bool = True,
    home: Path | None = None,
    port: int | None = None,
) -> Live:
    """``limner serve --workers 0`` and one ``limner worker`` sharing a home and store (fresh ones,
    unless a stopped server's ``home`` and ``port`` are given: that server again)."""
    home = home or Path(tempfile.mkdtemp(prefix="limner-live-"))
    port = port or free_port()
    full_env = child_env(home, env)
    cat = ["--catalog", str(catalog)] if catalog else []
    api = Proc(["serve", "--workers", "0", "--port", str(port), *cat, *serve_args], full_env, home / "api.log")
    base = f"{scheme}://127.0.0.1:{port}"
    worker: Proc | None = None
    context = ssl.create_default_context(cafile=verify) if isinstance(verify, str) else verify
    try:
        with httpx.Client(verify=context) as client:
            _wait(client, f"{base}/healthz", api, ready=False)
            worker = Proc(["worker", *cat, *worker_args], full_env, home / "worker.log")
            _wait(client, f"{base}/readyz", worker, ready=True)
    except BaseException:
        if worker is not None:
            worker.stop()
        api.stop()
        raise
    return Live(base=base, home=home, api=api, worker=worker, env=full_env, verify=verify)


def stop_live(live: Live) -> None:
    live.worker.stop()
    live.api.stop()


def create_key(
    home: Path, env: Mapping[str, str], name: str = "ops", *, base: str | None = None, verify: str | bool = True
) -> str:
    """``limner keys create`` on a server's home (the first key is its admin's); its key. With
    ``base``, wait until that API refuses a call without a key (keys take effect within a second)."""
    made = subprocess.run(
        [sys.executable, "-m", "limner", "keys", "create", "--name", name, "--home", str(home)],
        env=dict(env), cwd=ROOT, capture_output=True, text=True, check=True,
    )  # fmt: skip
    key = next(word for word in made.stdout.split() if word.startswith("lmk_"))
    if base is not None:
        context = ssl.create_default_context(cafile=verify) if isinstance(verify, str) else verify
        with httpx.Client(base_url=base, verify=context, timeout=30) as http:
            deadline = time.monotonic() + 10
            while http.get("/v1/models").status_code != 401:
                assert time.monotonic() < deadline, "the new key did not take effect"
                time.sleep(0.1)
    return key


def project_keys(base: str, admin: str, projects: Sequence[str] = ("alpha", "beta")) -> dict[str, str]:
    """A member key per project, made by the admin through POST /v1/keys."""
    keys = {}
    with httpx.Client(base_url=base, timeout=60, headers={"Authorization": f"Key {admin}"}) as http:
        for project in projects:
            answer = http.post("/v1/keys", json={"name": f"team {project}", "project": project})
            assert answer.status_code == 201, answer.text
            keys[project] = answer.json()["key"]
    return keys
