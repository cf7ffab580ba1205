"""End-to-end latency of one tiny image job through each client, and S3 against local storage.

1. One ``limner serve`` over TLS with API keys on (a key made with the CLI), one worker, tiny
   SD at 64x64 and 2 steps. Four clients take turns, job by job, in one run:
   (a) raw httpx: ``POST /v1/run`` (one call: the floor), (b) the SDK's ``subscribe``
   (submit, Server-Sent Events, result), (c) the official ``openai`` package's
   ``images.generate``, (d) the official ``fal-client``'s ``subscribe`` (its own process: it
   reads FAL_QUEUE_RUN_HOST at import; it polls status every 0.1 s, its default). p50/p95 and
   ratios against raw httpx.
2. Storage: seconds per result write and read (a 64x64 PNG, and 1 MiB), LocalStorage against
   S3Storage on moto's S3 server on loopback, alternating. moto is a Python server on the
   same two cores, so this is the protocol's cost here, not AWS's latency.

    .venv/bin/python benchmarks/clients.py [--jobs 30]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.s3 import CREDENTIALS, S3Server

from benchmarks.harness import Server, percentile, write_result
from limner.client import Client
from limner.storage import LocalStorage, S3Storage, Storage

MODEL = "limner/tiny-sd"
PROMPT = "a ceramic mug"
BODY: dict[str, Any] = {"prompt": PROMPT, "width": 64, "height": 64, "num_inference_steps": 2}
FAL_LOOP = """
import json, sys, time
import fal_client
for line in sys.stdin:
    body = json.loads(line)
    started = time.perf_counter()
    result = fal_client.subscribe(sys.argv[1], body)
    assert result["images"][0]["width"] == 64
    print(time.perf_counter() - started, flush=True)
"""


def certificate(folder: Path) -> tuple[Path, Path]:
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


def wait_ready(base: str, context: ssl.SSLContext, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/readyz", verify=context, timeout=2).json().get("workers", 0) >= 1:
                return
        except (httpx.TransportError, ValueError):
            pass
        time.sleep(0.2)
    raise TimeoutError("server not ready")


def make_key(server: Server) -> str:
    made = subprocess.run(
        [sys.executable, "-m", "limner", "keys", "create", "--name", "bench", "--home", str(server.home)],
        env=server.env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return next(w for w in made.stdout.split() if w.startswith("lmk_"))


class FalLoop:
    """fal-client in its own process (it reads its hosts at import), one job per line sent;
    each job's latency is measured inside that process and read back."""

    def __init__(self, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", FAL_LOOP, MODEL], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        self.times: list[float] = []

    def run(self, seed: int) -> None:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps({**BODY, "seed": seed}) + "\n")
        self.proc.stdin.flush()
        self.times.append(float(self.proc.stdout.readline()))

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.wait(30)


def client_runs(
    base: str, key: str, cert: Path, context: ssl.SSLContext
) -> tuple[dict[str, Callable[[int], None]], FalLoop]:
    import openai

    raw = httpx.Client(base_url=base, verify=context, timeout=60, headers={"Authorization": f"Key {key}"})
    sdk = Client(base, api_key=key, verify=str(cert), timeout=60)
    oai = openai.OpenAI(
        base_url=f"{base}/v1", api_key=key, http_client=openai.DefaultHttpxClient(verify=context), max_retries=0
    )
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("FAL_", "LIMNER_"))},
        "FAL_KEY": key,
        "FAL_QUEUE_RUN_HOST": f"{urlparse(base).netloc}/v1/queue",
        "FAL_RUN_HOST": f"{urlparse(base).netloc}/v1/run",
        "SSL_CERT_FILE": str(cert),
    }
    fal = FalLoop(env)

    def run_raw(seed: int) -> None:
        response = raw.post(f"/v1/run/{MODEL}", json={**BODY, "seed": seed})
        assert response.status_code == 200 and response.json()["images"][0]["width"] == 64

    def run_sdk(seed: int) -> None:
        assert sdk.subscribe(MODEL, {**BODY, "seed": seed}).raw["images"][0]["width"] == 64

    def run_openai(seed: int) -> None:
        extra = {"seed": seed, "num_inference_steps": 2}
        assert oai.images.generate(model=MODEL, prompt=PROMPT, size="64x64", extra_body=extra).data

    return {"raw_httpx_run": run_raw, "sdk_subscribe": run_sdk, "openai_images_generate": run_openai,
            "fal_client_subscribe": fal.run}, fal  # fmt: skip


def latencies(jobs: int) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix="limner-bench-tls-"))
    cert, key_file = certificate(folder)
    context = ssl.create_default_context(cafile=str(cert))
    with Server(workers=1, args=["--tls-cert", str(cert), "--tls-key", str(key_file)]) as server:
        base = f"https://127.0.0.1:{server.port}"
        wait_ready(base, context)
        key = make_key(server)
        time.sleep(1.2)  # keys take effect within a second
        runs, fal = client_runs(base, key, cert, context)
        times: dict[str, list[float]] = {name: [] for name in runs}
        for seed in range(-2, jobs):  # two warm-up rounds, then measured ones; clients take turns
            for name, run in runs.items():
                started = time.perf_counter()
                run(seed + 100)
                elapsed = time.perf_counter() - started
                if name == "fal_client_subscribe":
                    elapsed = fal.times[-1]  # measured inside its process
                if seed >= 0:
                    times[name].append(elapsed)
        fal.close()
    raw_p50 = percentile(times["raw_httpx_run"], 50)
    out: dict[str, Any] = {}
    for name, values in times.items():
        p50, p95 = percentile(values, 50), percentile(values, 95)
        out[name] = {
            "n": len(values),
            "p50_s": round(p50, 4),
            "p95_s": round(p95, 4),
            "p50_vs_raw": round(p50 / raw_p50, 2),
        }
        print(f"{name:26s} p50 {p50 * 1000:7.1f} ms  p95 {p95 * 1000:7.1f} ms  ({p50 / raw_p50:.2f}x raw httpx)")
    return out


def storage_times(rounds: int) -> dict[str, Any]:
    from PIL import Image

    buffer = io.BytesIO()
    Image.effect_noise((64, 64), 64).convert("RGB").save(buffer, format="PNG")
    payloads = {"png_64x64": buffer.getvalue(), "blob_1mib": os.urandom(1024 * 1024)}
    s3 = S3Server.start()
    try:
        os.environ.update(CREDENTIALS)
        bucket = s3.bucket("limner-bench")
        stores: dict[str, Storage] = {
            "local": LocalStorage(Path(tempfile.mkdtemp(prefix="limner-bench-files-"))),
            "s3": S3Storage(bucket, "bench", endpoint_url=s3.endpoint),
        }
        timings: dict[str, dict[str, list[float]]] = {}
        for index in range(rounds):
            for payload_name, data in payloads.items():
                for store_name, store in stores.items():
                    key = f"results/{index}/{payload_name}.bin"
                    started = time.perf_counter()
                    store.put(key, data, "application/octet-stream")
                    wrote = time.perf_counter()
                    assert store.get(key) == data
                    read = time.perf_counter()
                    row = timings.setdefault(f"{store_name}/{payload_name}", {"write": [], "read": []})
                    row["write"].append(wrote - started)
                    row["read"].append(read - wrote)
    finally:
        s3.stop()
    out: dict[str, Any] = {}
    for name, row in timings.items():
        out[name] = {op: {"p50_ms": round(percentile(v, 50) * 1000, 2), "p95_ms": round(percentile(v, 95) * 1000, 2)}
                     for op, v in row.items()}  # fmt: skip
    for payload_name in payloads:
        for op in ("write", "read"):
            local, remote = out[f"local/{payload_name}"][op]["p50_ms"], out[f"s3/{payload_name}"][op]["p50_ms"]
            out[f"s3/{payload_name}"][op]["vs_local"] = round(remote / local, 1)
            print(
                f"{payload_name:10s} {op:5s} local p50 {local:7.2f} ms  s3 p50 {remote:7.2f} ms ({remote / local:.1f}x)"
            )
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=30)
    parser.add_argument("--storage-rounds", type=int, default=60)
    args = parser.parse_args()
    write_result(
        "clients",
        {
            "model": MODEL,
            "input": BODY,
            "transport": "HTTPS on loopback, API key on",
            "latency": latencies(args.jobs),
            "storage": storage_times(args.storage_rounds),
        },
    )


if __name__ == "__main__":
    main()
