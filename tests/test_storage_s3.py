"""S3 storage against a real S3 protocol server on loopback (moto's server mode)."""

from __future__ import annotations

import time
from urllib.parse import parse_qs, urlparse

import httpx
import pytest

from limner.api.file_urls import FileUrlSigner, SignedUrlStorage
from limner.errors import NotFound, StorageUnavailable
from limner.settings import load_settings
from limner.storage import S3Storage, open_storage, storage_for
from tests.s3 import CREDENTIALS, S3Server, verify_presigned
from tests.services import free_port

SECRET = CREDENTIALS["AWS_SECRET_ACCESS_KEY"]


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, s3_server: S3Server) -> S3Server:
    """boto3 finds its credentials and region where it always does: the environment."""
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    return s3_server


@pytest.fixture(scope="module")
def bucket(s3_server: S3Server) -> str:
    return s3_server.bucket("limner-unit")


@pytest.fixture
def store(aws_env: S3Server, bucket: str) -> S3Storage:
    storage = open_storage(f"s3://{bucket}/media/v1", s3_endpoint_url=aws_env.endpoint, s3_url_ttl_s=120)
    assert isinstance(storage, S3Storage)
    return storage


def test_objects_live_under_the_prefix_with_their_content_type(store: S3Storage, s3_server: S3Server) -> None:
    store.put("results/job-1/images-0.png", b"\x89PNG not really", "image/png")
    head = s3_server.client().head_object(Bucket=store.bucket, Key="media/v1/results/job-1/images-0.png")
    assert head["ContentType"] == "image/png"
    assert head["ContentLength"] == len(b"\x89PNG not really")
    assert store.exists("results/job-1/images-0.png")
    assert store.get("results/job-1/images-0.png") == b"\x89PNG not really"
    store.delete("results/job-1/images-0.png")
    assert not store.exists("results/job-1/images-0.png")
    with pytest.raises(NotFound):
        store.get("results/job-1/images-0.png")


def test_keys_are_checked_before_any_request(store: S3Storage) -> None:
    for bad in ("../escape.png", "/abs.png", "a//b.png"):
        with pytest.raises(Exception, match="not a valid storage key"):
            store.put(bad, b"x", "image/png")


def test_presigned_urls_fetch_and_expire(store: S3Storage) -> None:
    store.put("uploads/abc.png", b"pixels", "image/png")
    url = store.url("uploads/abc.png", "http://api.example")
    parsed = urlparse(url)
    query = parse_qs(parsed.query)
    assert url.startswith(f"{store.endpoint_url}/{store.bucket}/media/v1/uploads/abc.png?")
    assert query["X-Amz-Expires"] == ["120"]
    response = httpx.get(url)
    assert response.status_code == 200 and response.content == b"pixels"
    assert response.headers["content-type"] == "image/png"
    assert verify_presigned(url, SECRET) == "ok"
    assert verify_presigned(url, SECRET, now=time.time() + 121) == "expired"
    assert verify_presigned(url.replace("X-Amz-Expires=120", "X-Amz-Expires=999"), SECRET) == "bad signature"


def test_own_urls_are_recognised_as_keys(store: S3Storage) -> None:
    url = store.url("inputs/f00d.png", "")
    assert store.key_for_url(url) == "inputs/f00d.png"
    assert store.key_for_url(url.split("?")[0]) == "inputs/f00d.png"  # expired or bare: still ours
    other_prefix = url.replace("/media/v1/", "/media/v2/")
    assert store.key_for_url(other_prefix) is None
    assert store.key_for_url(url.replace("127.0.0.1", "localhost")) is None
    assert store.key_for_url("https://example.com/limner-unit/media/v1/inputs/f00d.png") is None
    assert store.key_for_url(url.replace("inputs/f00d.png", "inputs/%2E%2E/x.png")) is None


def test_signed_file_urls_never_wrap_presigned_ones(store: S3Storage) -> None:
    """With API keys on, /v1/files URLs get ?expires&sig; an S3 URL already carries its own."""
    signed = SignedUrlStorage(store, FileUrlSigner(b"k" * 32, 60), enabled=lambda: True)
    url = signed.url("uploads/abc.png", "http://api.example")
    assert "sig=" not in url and "expires=" not in url
    assert verify_presigned(url, SECRET) == "ok"


def test_settings_choose_the_store(aws_env: S3Server, bucket: str, tmp_path: object) -> None:
    settings = load_settings(
        home=str(tmp_path), storage=f"s3://{bucket}", s3_endpoint_url=aws_env.endpoint, s3_url_ttl_s=30
    )
    storage = storage_for(settings)
    assert isinstance(storage, S3Storage)
    assert storage.prefix == "" and storage.url_ttl_s == 30


def test_a_missing_bucket_or_server_is_storage_unavailable(aws_env: S3Server) -> None:
    missing = S3Storage("limner-no-such-bucket", endpoint_url=aws_env.endpoint)
    with pytest.raises(StorageUnavailable, match="limner-no-such-bucket"):
        missing.put("results/x/y.png", b"x", "image/png")
    down = S3Storage("limner-unit", endpoint_url=f"http://127.0.0.1:{free_port()}")
    with pytest.raises(StorageUnavailable) as caught:
        down.get("results/x/y.png")
    assert caught.value.retryable and caught.value.status_code == 503
