"""limner served over TLS (``limner serve --tls-cert/--tls-key``) with API keys on, driven by
the official fal-client, the SDK and the openai package, each trusting a self-made certificate."""

from __future__ import annotations

import base64
import io
import json
import os
import ssl
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import httpx
import openai
import pytest
from PIL import Image

from limner.client import ApiError, Client, ImageResult
from tests.conftest import Live
from tests.live import create_key, start_live, stop_live
from tests.services import ROOT

MODEL, SLOW, UNSERVED = "limner/tiny-sd", "test/slow-sd", "test/unserved"


@dataclass
class Secure:
    live: Live
    cert: Path
    key: str  # an API key made with the CLI

    def context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.cert))

    @property
    def hostport(self) -> str:
        return urlparse(self.live.base).netloc


def make_certificate(folder: Path) -> tuple[Path, Path]:
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.fixture(scope="module")
def secure(catalogs: tuple[Path, Path]) -> Iterator[Secure]:
    served, unserved = catalogs
    cert, key = make_certificate(Path(tempfile.mkdtemp(prefix="limner-tls-")))
    live = start_live(
        served,
        serve_args=["--tls-cert", str(cert), "--tls-key", str(key), "--catalog", str(unserved)],
        env={"LIMNER_MODEL_ALIASES": "dall-e-3=limner/tiny-sd"},
        scheme="https",
        verify=str(cert),
    )
    api_key = create_key(live.home, live.env, "fal", base=live.base, verify=str(cert))
    yield Secure(live, cert, api_key)
    stop_live(live)


def test_plain_http_is_not_served_and_the_certificate_is_checked(secure: Secure) -> None:
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://{secure.hostport}/healthz", timeout=5)
    with pytest.raises(httpx.ConnectError) as caught:
        httpx.get(f"{secure.live.base}/healthz", timeout=5)  # not signed by a trusted CA
    assert isinstance(caught.value.__context__, ssl.SSLCertVerificationError) or "CERTIFICATE" in str(caught.value)
    assert httpx.get(f"{secure.live.base}/healthz", verify=secure.context()).status_code == 200


def test_fal_client_over_tls(secure: Secure) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("FAL_", "LIMNER_"))},
        "FAL_KEY": secure.key,
        "FAL_QUEUE_RUN_HOST": f"{secure.hostport}/v1/queue",
        "FAL_RUN_HOST": f"{secure.hostport}/v1/run",
        "SSL_CERT_FILE": str(secure.cert),
    }
    done = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "fal_scenario.py"), MODEL, SLOW, UNSERVED],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])

    kinds = [e["kind"] for e in seen["events"]]
    assert kinds[-1] == "Completed" and set(kinds) <= {"Queued", "InProgress", "Completed"}
    last = seen["events"][-1]
    assert last["error"] is None and last["logs"] and {"message", "level", "timestamp"} <= set(last["logs"][0])
    assert "inference_time" in last["metrics"]
    assert seen["result_size"] == [96, 64]
    assert seen["status_by_id"]["kind"] == "Completed" and seen["result_by_id_seed"] == 1

    sub = seen["subscribe"]
    assert len(sub["enqueued"]) == 1 and sub["updates"][-1]["kind"] == "Completed" and sub["size"] == [64, 64]
    streamed_logs = [line["message"] for u in sub["updates"] if u.get("logs") for line in u["logs"]]
    assert streamed_logs, "logs streamed with the status updates"
    assert seen["run_size"] == [64, 64]

    assert seen["queued_status"] == {"kind": "Queued", "position": seen["queued_status"]["position"]}
    assert seen["queued_status"]["position"] >= 0
    canceled = seen["canceled_status"]
    assert canceled["kind"] == "Completed" and canceled["error_type"] == "canceled"
    assert seen["canceled_result"]["status"] == 409 and seen["canceled_result"]["error_type"] == "canceled"
    assert seen["cancel_again"] == 400
    assert seen["bad_key"] == 401
    assert seen["bad_input"] == {"status": 422, "error_type": "limit_exceeded"}


def test_sdk_over_tls_with_an_api_key(secure: Secure) -> None:
    with Client(secure.live.base, api_key=secure.key, verify=str(secure.cert)) as client:
        result = client.subscribe(MODEL, {"prompt": "secure", "seed": 5})
        assert isinstance(result, ImageResult)
        url = result.images[0].url
        assert url.startswith(f"{secure.live.base}/v1/files/") and "sig=" in url  # signed while keys are on
        image = Image.open(io.BytesIO(client.download(url)))
        assert image.size == (64, 64)
    with Client(secure.live.base, verify=str(secure.cert)) as anonymous, pytest.raises(ApiError) as caught:
        anonymous.models()
    assert caught.value.status_code == 401 and caught.value.error_type == "unauthorized"


def test_openai_over_tls_with_a_bearer_key_and_an_alias(secure: Secure) -> None:
    http = openai.DefaultHttpxClient(verify=secure.context())
    with openai.OpenAI(base_url=f"{secure.live.base}/v1", api_key=secure.key, http_client=http) as client:
        response = client.images.generate(model="dall-e-3", prompt="a lighthouse", response_format="b64_json")
        assert response.data and Image.open(io.BytesIO(base64.b64decode(response.data[0].b64_json or ""))).size == (
            64,
            64,
        )
    http = openai.DefaultHttpxClient(verify=secure.context())
    with (
        openai.OpenAI(
            base_url=f"{secure.live.base}/v1", api_key="lmk_wrong", http_client=http, max_retries=0
        ) as client,
        pytest.raises(openai.AuthenticationError) as caught,
    ):
        client.images.generate(model="dall-e-3", prompt="x")
    body = caught.value.body
    assert isinstance(body, dict) and body["type"] == "authentication_error" and body["code"] == "unauthorized"
