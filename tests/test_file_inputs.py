"""File inputs through the live API: uploads, data URIs, URLs, and the limits on each."""

from __future__ import annotations

import base64
import hashlib
import io
import struct
import wave
import zlib
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.conftest import Live
from tests.jobs import data_uri, fetch_image, generate, pixels

IMG2IMG = "limner/tiny-sd-img2img"
SMALL = "test/small-inputs-img2img"  # limits: max_input_bytes 100000, max_input_pixels 65536


def gradient(width: int = 96, height: int = 64) -> Image.Image:
    ramp = np.tile(np.linspace(0, 255, width, dtype=np.uint8), (height, 1))
    return Image.fromarray(np.stack([ramp, ramp[::-1], ramp], axis=-1))


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` pixels (RGB), with a token IDAT.

    Decoding it would need width*height*3 bytes; a checker that reads the header only
    refuses it without allocating anything."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 1024))
        + chunk(b"IEND", b"")
    )


def wav_bytes(seconds: float = 0.1, rate: int = 8000) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(b"\x00\x01" * int(seconds * rate))
    return buffer.getvalue()


def error_of(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code in (413, 422), (response.status_code, response.text)
    detail: dict[str, Any] = response.json()["detail"][0]
    return detail


# -- uploads ------------------------------------------------------------------------------------


def test_upload_then_use_the_url_as_an_input(http: httpx.Client, live: Live) -> None:
    data = png_bytes(gradient())
    response = http.post("/v1/files", files={"file": ("source.png", data, "application/octet-stream")})
    assert response.status_code == 201, response.text
    upload = response.json()
    digest = hashlib.sha256(data).hexdigest()
    assert upload["key"] == f"projects/default/uploads/{digest}.png"
    assert upload["url"] == f"{live.base}/v1/files/projects/default/uploads/{digest}.png"
    assert (upload["kind"], upload["content_type"], upload["file_size"]) == ("image", "image/png", len(data))
    assert (upload["width"], upload["height"]) == (96, 64)
    assert http.get(upload["url"]).content == data
    # The same bytes as a raw body land under the same key.
    raw = http.post("/v1/files", content=data, headers={"Content-Type": "image/png"})
    assert raw.status_code == 201 and raw.json()["key"] == upload["key"]

    by_url = generate(http, IMG2IMG, {"prompt": "paint", "image": upload["url"], "seed": 5})
    assert fetch_image(http, by_url["images"][0]["url"]).size == (96, 64)
    by_data = generate(http, IMG2IMG, {"prompt": "paint", "image": data_uri(gradient()), "seed": 5})
    # The same image by URL or inline gives the same output.
    assert np.array_equal(pixels(http, by_url["images"][0]["url"]), pixels(http, by_data["images"][0]["url"]))


def test_upload_sniffs_audio_and_refuses_other_bytes(http: httpx.Client) -> None:
    wav = wav_bytes()
    response = http.post("/v1/files", content=wav, headers={"Content-Type": "application/octet-stream"})
    assert response.status_code == 201, response.text
    assert (response.json()["kind"], response.json()["content_type"]) == ("audio", "audio/wav")
    assert response.json()["key"].endswith(".wav")
    for name, data in (("FLAC", b"fLaC\x00\x00\x00\x22" + bytes(40)), ("OGG", b"OggS\x00\x02" + bytes(40))):
        assert http.post("/v1/files", content=data).json()["content_type"] in ("audio/flac", "audio/ogg"), name
    assert http.post("/v1/files", content=b"ID3\x04\x00" + bytes(40)).json()["content_type"] == "audio/mpeg"

    text = http.post("/v1/files", content=b"just some text", headers={"Content-Type": "image/png"})
    assert text.status_code == 422
    assert error_of(text)["loc"] == ["body", "file"] and "must be an image" in error_of(text)["msg"]
    empty = http.post("/v1/files", content=b"")
    assert empty.status_code == 422 and "empty" in error_of(empty)["msg"]
    no_part = http.post("/v1/files", files={"other": ("a.png", b"x")})
    assert no_part.status_code == 422 and "no file part named 'file'" in error_of(no_part)["msg"]


def test_uploads_over_the_server_limit_are_refused(http: httpx.Client) -> None:
    over = b"\x00" * (20 * 1024 * 1024 + 1)  # max_upload_bytes defaults to 20 MiB
    for response in (
        http.post("/v1/files", content=over),
        http.post("/v1/files", files={"file": ("big.png", over, "image/png")}),
    ):
        assert response.status_code == 413
        assert "max_upload_bytes" in error_of(response)["msg"] and response.json()["error_type"] == "payload_too_large"


# -- limits on every route a file comes in by ---------------------------------------------------


def test_decompression_bombs_are_refused_before_decoding(http: httpx.Client) -> None:
    huge = png_claiming(100_000, 100_000)  # 10^10 pixels, 30 GB decoded; 1 kB on the wire
    assert Image.open(io.BytesIO(png_claiming(300, 200))).size == (300, 200)  # the crafted header is valid
    response = http.post(f"/v1/queue/{IMG2IMG}", json={"prompt": "x", "image": "data:image/png;base64," + _b64(huge)})
    assert response.status_code == 422 and response.json()["error_type"] == "limit_exceeded"
    detail = error_of(response)
    assert detail["loc"] == ["body", "image"]
    assert "decompression bomb" in detail["msg"] and "limits.max_input_pixels" in detail["msg"]

    # Under Pillow's own bomb threshold, the model's limit still names the size.
    large = png_claiming(5000, 5000)
    response = http.post(f"/v1/queue/{IMG2IMG}", json={"prompt": "x", "image": "data:image/png;base64," + _b64(large)})
    assert "image is 5000x5000, over this model's limit of 16777216 pixels" in error_of(response)["msg"]

    uploaded = http.post("/v1/files", content=huge)
    assert uploaded.status_code == 422 and "decompression bomb" in error_of(uploaded)["msg"]
    # An upload that is fine for the server may still be over one model's limits.
    fine = http.post("/v1/files", content=png_claiming(300, 300)).json()
    response = http.post(f"/v1/queue/{SMALL}", json={"prompt": "x", "image": fine["url"]})
    assert "300x300, over this model's limit of 65536 pixels (limits.max_input_pixels)" in error_of(response)["msg"]


def test_input_bytes_over_the_model_limit(http: httpx.Client) -> None:
    noise = Image.fromarray(np.random.default_rng(0).integers(0, 255, (200, 200, 3), dtype=np.uint8))
    data = png_bytes(noise)
    assert len(data) > 100_000
    response = http.post(f"/v1/queue/{SMALL}", json={"prompt": "x", "image": data_uri(noise)})
    detail = error_of(response)
    assert detail["loc"] == ["body", "image"] and "limit of 100000 bytes (limits.max_input_bytes)" in detail["msg"]
    upload = http.post("/v1/files", content=data).json()
    response = http.post(f"/v1/queue/{SMALL}", json={"prompt": "x", "image": upload["url"]})
    assert "limit of 100000 bytes (limits.max_input_bytes)" in error_of(response)["msg"]


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("http://127.0.0.1:9/x.png", "is 127.0.0.1, a loopback address"),
        ("http://localhost:9/x.png", "resolves to"),
        ("http://[::ffff:127.0.0.1]:9/x.png", "a loopback address in IPv6 form (127.0.0.1)"),
        ("http://169.254.169.254/latest/meta-data/iam", "the cloud metadata service"),
        ("http://10.0.0.5/x.png", "is 10.0.0.5, a private address"),
        ("http://100.64.0.1/x.png", "carrier-grade NAT"),
        ("ftp://example.com/x.png", "not an http(s) URL"),
    ],
)
def test_urls_into_private_networks_are_refused(http: httpx.Client, url: str, words: str) -> None:
    response = http.post(f"/v1/queue/{IMG2IMG}", json={"prompt": "x", "image": url})
    assert response.status_code == 422 and response.json()["error_type"] == "invalid_input"
    detail = error_of(response)
    assert detail["loc"] == ["body", "image"]
    assert detail["msg"].startswith("image: ") and words in detail["msg"]
    if "http(s)" not in words:
        assert "LIMNER_FETCH_ALLOW_HOSTS" in detail["msg"]


def test_own_urls_need_no_fetch_and_unknown_ones_are_named(http: httpx.Client, live: Live) -> None:
    missing = f"{live.base}/v1/files/uploads/{'0' * 64}.png"
    response = http.post(f"/v1/queue/{IMG2IMG}", json={"prompt": "x", "image": missing})
    assert "which this server does not hold" in error_of(response)["msg"]
    response = http.post(f"/v1/queue/{IMG2IMG}", json={"prompt": "x", "image": "not a url"})
    assert "must be a data: URI or an http(s) URL" in error_of(response)["msg"]


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_own_file_urls_by_any_loopback_name(http: httpx.Client, live: Live) -> None:
    """A result URL written with localhost instead of 127.0.0.1 is still this server's file."""
    first = generate(http, "limner/tiny-sd", {"prompt": "source", "seed": 8})
    url = first["images"][0]["url"].replace("127.0.0.1", "localhost")
    assert "localhost" in url
    out = generate(http, "limner/tiny-sd-img2img", {"prompt": "again", "image": url, "seed": 1})
    assert out["images"][0]["width"] == 64
