"""Submit latency with a 1 MiB image input: inline as a data: URI vs uploaded once and referenced by URL.

Starts ``limner serve --workers 0`` on a free port with a throwaway home (jobs stay queued:
this measures the API's side only), then alternates the two kinds of submission so that
both see the same machine state. Prints the figures and writes benchmarks/results/inputs.json.

    .venv/bin/python benchmarks/inputs.py [--n 60]
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from PIL import Image

MODEL = "limner/tiny-sd-img2img"
RESULTS = Path(__file__).resolve().parent / "results" / "inputs.json"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def one_mib_png() -> bytes:
    """Random noise does not compress: 592x592 RGB is just over 1 MiB as a PNG."""
    pixels = np.random.default_rng(7).integers(0, 256, (592, 592, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def summary(seconds: list[float]) -> dict[str, float]:
    ms = [s * 1000 for s in seconds]
    return {
        "p50_ms": round(percentile(ms, 0.5), 2),
        "p99_ms": round(percentile(ms, 0.99), 2),
        "mean_ms": round(statistics.fmean(ms), 2),
    }


def submit(client: httpx.Client, image: str) -> float:
    body = {"prompt": "bench", "image": image, "width": 64, "height": 64, "num_inference_steps": 1}
    start = time.perf_counter()
    response = client.post(f"/v1/queue/{MODEL}", json=body)
    elapsed = time.perf_counter() - start
    if response.status_code != 202:
        raise RuntimeError(f"submit failed: {response.status_code} {response.text[:300]}")
    return elapsed


def serve(home: Path, port: int) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIMNER_")}
    env.update({"LIMNER_HOME": str(home), "HF_HUB_OFFLINE": "1"})
    log = open(home / "api.log", "wb")  # noqa: SIM115 - handed to the child
    return subprocess.Popen(
        [sys.executable, "-m", "limner", "serve", "--workers", "0", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def wait_ready(base: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("limner serve exited")
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise TimeoutError("limner serve did not start")


def run(n: int) -> dict[str, Any]:
    png = one_mib_png()
    uri = "data:image/png;base64," + base64.b64encode(png).decode()
    home = Path(tempfile.mkdtemp(prefix="limner-bench-inputs-"))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = serve(home, port)
    try:
        wait_ready(base, proc)
        with httpx.Client(base_url=base, timeout=60) as client:
            start = time.perf_counter()
            upload = client.post("/v1/files", content=png, headers={"Content-Type": "image/png"})
            upload_s = time.perf_counter() - start
            upload.raise_for_status()
            url = upload.json()["url"]
            for _ in range(5):  # warm both paths (first store of the input, imports, caches)
                submit(client, uri)
                submit(client, url)
            inline: list[float] = []
            by_url: list[float] = []
            for _ in range(n):
                inline.append(submit(client, uri))
                by_url.append(submit(client, url))
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        shutil.rmtree(home, ignore_errors=True)
    data_uri, url_ref = summary(inline), summary(by_url)
    return {
        "benchmark": "inputs",
        "what": "POST /v1/queue latency with a 1 MiB PNG input: data: URI vs URL of an earlier upload",
        "image_bytes": len(png),
        "data_uri_chars": len(uri),
        "submissions_each": n,
        "upload_ms": round(upload_s * 1000, 2),
        "data_uri": data_uri,
        "uploaded_url": url_ref,
        "ratio_p50_data_uri_over_url": round(data_uri["p50_ms"] / url_ref["p50_ms"], 2),
        "ratio_p99_data_uri_over_url": round(data_uri["p99_ms"] / url_ref["p99_ms"], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--n", type=int, default=60, help="submissions of each kind")
    args = parser.parse_args()
    result = run(args.n)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
