"""A live limner (API + worker) on S3 storage: results, uploads as inputs, presigned URLs, retention."""

from __future__ import annotations

import hashlib
import io
import time
from collections.abc import Iterator
from urllib.parse import parse_qs, urlparse

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.conftest import Live
from tests.jobs import generate, submit, wait_done
from tests.live import start_live, stop_live
from tests.s3 import CREDENTIALS, S3Server, verify_presigned

SECRET = CREDENTIALS["AWS_SECRET_ACCESS_KEY"]
TTL_S = 30
PREFIX = "tenant-a"


@pytest.fixture(scope="module")
def s3_bucket(s3_server: S3Server) -> str:
    return s3_server.bucket("limner-live")


@pytest.fixture(scope="module")
def live_s3(s3_server: S3Server, s3_bucket: str) -> Iterator[Live]:
    env = {**s3_server.env(), "LIMNER_S3_URL_TTL_S": str(TTL_S)}
    storage = ["--storage", f"s3://{s3_bucket}/{PREFIX}"]
    live = start_live(None, serve_args=storage, worker_args=storage, env=env)
    yield live
    stop_live(live)


@pytest.fixture
def http_s3(live_s3: Live) -> Iterator[httpx.Client]:
    with live_s3.client() as client:
        yield client


def decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def object_key(url: str, bucket: str) -> str:
    """The bucket key a path-style presigned URL names."""
    return urlparse(url).path.removeprefix(f"/{bucket}/")


def test_results_are_written_to_the_bucket_and_served_presigned(
    http_s3: httpx.Client, live_s3: Live, s3_server: S3Server, s3_bucket: str
) -> None:
    result = generate(http_s3, "limner/tiny-sd", {"prompt": "a lighthouse", "seed": 3, "width": 96, "height": 64})
    image = result["images"][0]
    url = image["url"]
    assert url.startswith(f"{s3_server.endpoint}/{s3_bucket}/{PREFIX}/projects/default/results/")
    assert parse_qs(urlparse(url).query)["X-Amz-Expires"] == [str(TTL_S)]
    response = httpx.get(url)  # straight from the store, no limner in between
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    assert decode(response.content).size == (96, 64) == (image["width"], image["height"])
    assert image["file_size"] == len(response.content)
    head = s3_server.client().head_object(Bucket=s3_bucket, Key=object_key(url, s3_bucket))
    assert head["ContentType"] == "image/png"
    # Nothing went to the local files directory.
    assert not list((live_s3.home / "files").rglob("*.png"))


def test_presigned_urls_expire_and_files_urls_keep_working(
    http_s3: httpx.Client, live_s3: Live, s3_bucket: str
) -> None:
    result = generate(http_s3, "limner/tiny-sd", {"prompt": "a fox", "seed": 4})
    url = result["images"][0]["url"]
    assert verify_presigned(url, SECRET) == "ok"
    assert verify_presigned(url, SECRET, now=time.time() + TTL_S + 1) == "expired"

    # A /v1/files URL (handed out by a server on local storage, say) redirects to a fresh one.
    key = object_key(url, s3_bucket).removeprefix(f"{PREFIX}/")
    redirect = http_s3.get(f"/v1/files/{key}")
    assert redirect.status_code == 307
    fresh = redirect.headers["location"]
    assert object_key(fresh, s3_bucket) == f"{PREFIX}/{key}"
    assert verify_presigned(fresh, SECRET) == "ok"
    followed = http_s3.get(f"/v1/files/{key}", follow_redirects=True)
    assert followed.status_code == 200 and followed.content == httpx.get(url).content
    assert http_s3.get("/v1/files/../etc/passwd").status_code in (404, 422)


def test_an_upload_is_stored_in_the_bucket_and_used_as_an_input(
    http_s3: httpx.Client, s3_server: S3Server, s3_bucket: str
) -> None:
    ramp = np.tile(np.linspace(0, 255, 80, dtype=np.uint8), (64, 1))
    buffer = io.BytesIO()
    Image.fromarray(np.stack([ramp, ramp[::-1], ramp], axis=-1)).save(buffer, format="PNG")
    data = buffer.getvalue()
    response = http_s3.post("/v1/files", files={"file": ("ramp.png", data, "image/png")})
    assert response.status_code == 201, response.text
    upload = response.json()
    digest = hashlib.sha256(data).hexdigest()
    assert upload["key"] == f"projects/default/uploads/{digest}.png"
    assert upload["url"].startswith(f"{s3_server.endpoint}/{s3_bucket}/{PREFIX}/projects/default/uploads/{digest}.png?")
    stored = s3_server.client().get_object(Bucket=s3_bucket, Key=f"{PREFIX}/projects/default/uploads/{digest}.png")
    assert stored["Body"].read() == data

    # The presigned URL as an input: the API reads it from the bucket (fetching it would be
    # refused: the store is on loopback, which this server's fetch guard does not allow).
    result = generate(http_s3, "limner/tiny-sd-img2img", {"prompt": "paint", "image": upload["url"], "seed": 1})
    assert decode(httpx.get(result["images"][0]["url"]).content).size == (80, 64)
    input_url = result["input"]["image"]
    assert object_key(input_url, s3_bucket) == f"{PREFIX}/projects/default/inputs/{digest}.png"
    assert httpx.get(input_url).content == data  # the worker read the same object


def test_expired_results_are_deleted_from_the_bucket(
    http_s3: httpx.Client, s3_server: S3Server, s3_bucket: str
) -> None:
    handle = submit(http_s3, "limner/tiny-sd", {"prompt": "gone soon", "seed": 9})
    model, request_id = "limner/tiny-sd", handle["request_id"]
    response = http_s3.post(
        f"/v1/queue/{model}?result_ttl_s=1", json={"prompt": "gone soon", "seed": 9}
    )  # a second job, kept one second
    assert response.status_code == 202
    short_id = response.json()["request_id"]
    wait_done(http_s3, model, request_id)
    wait_done(http_s3, model, short_id)
    key = object_key(http_s3.get(f"/v1/queue/{model}/requests/{short_id}").json()["images"][0]["url"], s3_bucket)
    deadline = time.monotonic() + 30
    while http_s3.get(f"/v1/queue/{model}/requests/{short_id}").status_code != 410:
        assert time.monotonic() < deadline, "the result never expired"
        time.sleep(0.2)
    # The route answers 410 from the clock; the cleanup pass (every 0.3 s here) deletes the objects.
    store = s3_server.client()
    while store.list_objects_v2(Bucket=s3_bucket, Prefix=f"{PREFIX}/projects/default/results/{short_id}/").get(
        "KeyCount", 0
    ):
        assert time.monotonic() < deadline, f"{key} was never deleted"
        time.sleep(0.2)
    kept = http_s3.get(f"/v1/queue/{model}/requests/{request_id}").json()["images"][0]["url"]
    assert httpx.get(kept).status_code == 200
