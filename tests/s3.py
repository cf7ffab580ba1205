"""An S3 protocol server for tests: moto's server mode in its own process on 127.0.0.1.

limner's S3 code is pointed at it through LIMNER_S3_ENDPOINT_URL and the usual AWS_* variables,
exactly as at any S3-compatible server; nothing in the product knows it is moto.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.services import free_port

CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "limner-test-key",
    "AWS_SECRET_ACCESS_KEY": "limner-test-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@dataclass
class S3Server:
    endpoint: str
    popen: subprocess.Popen[bytes]
    log: Path
    buckets: list[str] = field(default_factory=list)

    @classmethod
    def start(cls) -> S3Server:
        port = free_port()
        log = Path(tempfile.mkdtemp(prefix="limner-moto-")) / "moto.log"
        with open(log, "wb") as out:
            popen = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        server = cls(f"http://127.0.0.1:{port}", popen, log)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if popen.poll() is not None:
                raise RuntimeError(f"moto_server exited:\n{log.read_text()[-2000:]}")
            try:
                httpx.get(f"{server.endpoint}/moto-api/", timeout=1)
                return server
            except httpx.TransportError:
                time.sleep(0.1)
        popen.kill()
        raise TimeoutError("moto_server did not start in 60 s")

    def stop(self) -> None:
        self.popen.terminate()
        try:
            self.popen.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()

    def env(self) -> dict[str, str]:
        """What a limner process needs to use this server."""
        return {**CREDENTIALS, "LIMNER_S3_ENDPOINT_URL": self.endpoint}

    def client(self) -> Any:
        """A boto3 client of the test's own (to make buckets and look at objects)."""
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            region_name=CREDENTIALS["AWS_DEFAULT_REGION"],
        )

    def bucket(self, name: str) -> str:
        self.client().create_bucket(Bucket=name)
        self.buckets.append(name)
        return name


def verify_presigned(url: str, secret: str, now: float | None = None) -> str:
    """Check a presigned GET URL the way S3 does (SigV4 query signature, then expiry):
    "ok", "bad signature" or "expired". moto's server does not check presigned URLs, so the
    tests check what limner hands out here, written from the SigV4 spec."""
    import calendar
    import hashlib
    import hmac
    from urllib.parse import parse_qsl, urlsplit

    parts = urlsplit(url)
    raw = [p for p in parts.query.split("&") if p]
    query = dict(parse_qsl(parts.query))
    canonical_query = "&".join(sorted(p for p in raw if not p.startswith("X-Amz-Signature=")))
    canonical = "\n".join(["GET", parts.path, canonical_query, f"host:{parts.netloc}", "", "host", "UNSIGNED-PAYLOAD"])
    amz_date = query["X-Amz-Date"]
    _key_id, day, region, service, _term = query["X-Amz-Credential"].split("/")
    scope = f"{day}/{region}/{service}/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = f"AWS4{secret}".encode()
    for part in (day, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    expected = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, query.get("X-Amz-Signature", "")):
        return "bad signature"
    signed_at = calendar.timegm(time.strptime(amz_date, "%Y%m%dT%H%M%SZ"))
    if (time.time() if now is None else now) > signed_at + int(query["X-Amz-Expires"]):
        return "expired"
    return "ok"
