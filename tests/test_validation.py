"""Bad input gets a clear 4xx naming the field and the limit: never a 500, never a lost job."""

from __future__ import annotations

import base64
import struct
import zlib

import httpx
import pytest

from tests.jobs import generate

SD = "limner/tiny-sd"


def refused(
    http: httpx.Client, body: object, model: str = SD, status: int = 422, **kwargs: object
) -> dict[str, object]:
    response = http.post(f"/v1/queue/{model}", json=body, **kwargs)  # type: ignore[arg-type]
    assert response.status_code == status, response.text
    payload: dict[str, object] = response.json()
    return payload


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"prompt": "x" * 2001}, "prompt", "2000"),
        ({"prompt": "x", "width": 1024}, "width", "max_width"),
        ({"prompt": "x", "height": 32}, "height", "min_height"),
        ({"prompt": "x", "width": 100}, "width", "multiple of 8"),
        ({"prompt": "x", "num_inference_steps": 51}, "num_inference_steps", "max_steps"),
        ({"prompt": "x", "num_outputs": 9}, "num_outputs", "max_outputs"),
        ({"prompt": "x", "guidance_scale": 99}, "guidance_scale", "max_guidance_scale"),
        ({"prompt": "x", "seed": -1}, "seed", "greater than or equal"),
        ({"prompt": "x", "seed": 2**40}, "seed", "less than or equal"),
        ({"prompt": "x", "output_format": "gif"}, "output_format", "png"),
        ({"prompt": ""}, "prompt", "at least 1"),
        ({"width": 64}, "prompt", "required"),
        ({"prompt": "x", "sizes": 3}, "sizes", "not permitted"),
        ({"prompt": "x", "num_inference_steps": "many"}, "num_inference_steps", "integer"),
    ],
)
def test_field_limits(http: httpx.Client, body: dict[str, object], field: str, words: str) -> None:
    detail = refused(http, body)["detail"]
    assert isinstance(detail, list)
    assert detail[0]["loc"] == ["body", field]
    assert words in detail[0]["msg"]


def test_pixel_budget_names_the_limit(http: httpx.Client) -> None:
    detail = refused(http, {"prompt": "x", "width": 512, "height": 512}, model="test/slow-sd")["detail"]
    assert isinstance(detail, list) and "max_width" in detail[0]["msg"]
    detail = refused(http, {"prompt": "x", "width": 512, "height": 520})["detail"]
    assert isinstance(detail, list) and "max_height" in detail[0]["msg"]


def test_unsupported_fields_are_refused_not_ignored(http: httpx.Client) -> None:
    detail = refused(http, {"prompt": "x", "negative_prompt": "blur"}, model="limner/tiny-flux")["detail"]
    assert isinstance(detail, list)
    assert detail[0]["loc"] == ["body", "negative_prompt"] and "not supported" in detail[0]["msg"]


def test_malformed_bodies(http: httpx.Client) -> None:
    response = http.post(f"/v1/queue/{SD}", content=b"{not json", headers={"Content-Type": "application/json"})
    assert response.status_code == 422 and "not valid JSON" in response.text
    assert refused(http, ["a", "list"])["error_type"] == "invalid_input"
    assert refused(http, "a string")["error_type"] == "invalid_input"


def test_oversized_body_is_413(http: httpx.Client) -> None:
    huge = b'{"prompt": "' + b"x" * (33 * 1024 * 1024) + b'"}'
    response = http.post(f"/v1/queue/{SD}", content=huge, headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert "max_body_bytes" in response.json()["detail"][0]["msg"]


def test_unknown_model_and_request(http: httpx.Client) -> None:
    response = http.post("/v1/queue/nobody/nothing", json={"prompt": "x"})
    assert response.status_code == 404 and response.json()["error_type"] == "unknown_model"
    assert http.get("/v1/models/nobody/nothing").status_code == 404
    missing = "00000000-0000-0000-0000-000000000000"
    for method, suffix in (("GET", "/status"), ("GET", ""), ("PUT", "/cancel"), ("GET", "/status/stream")):
        response = http.request(method, f"/v1/queue/{SD}/requests/{missing}{suffix}")
        assert response.status_code == 404, (method, suffix)
    # A real request id asked for under the wrong model is not found either.
    handle = http.post(f"/v1/queue/{SD}", json={"prompt": "x", "seed": 1}).json()
    assert http.get(f"/v1/queue/limner/tiny-flux/requests/{handle['request_id']}/status").status_code == 404


def _png_header_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims a huge size, with a tiny (invalid) body: a decompression bomb."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    crc = struct.pack(">I", zlib.crc32(chunk) & 0xFFFFFFFF)
    idat = b"IDAT" + zlib.compress(b"\x00" * 16)
    return (
        b"\x89PNG\r\n\x1a\n"
        + struct.pack(">I", len(ihdr))
        + chunk
        + crc
        + struct.pack(">I", len(idat) - 4)
        + idat
        + struct.pack(">I", zlib.crc32(idat) & 0xFFFFFFFF)
    )


def test_image_inputs_are_checked_before_decoding(http: httpx.Client) -> None:
    bomb = "data:image/png;base64," + base64.b64encode(_png_header_claiming(100_000, 100_000)).decode()
    detail = refused(http, {"prompt": "x", "image": bomb}, model="limner/tiny-sd-img2img")["detail"]
    assert isinstance(detail, list) and detail[0]["loc"] == ["body", "image"]
    assert "max_input_pixels" in detail[0]["msg"]
    # Under PIL's own ceiling but over the model's: refused by limner's check, from the header.
    big = "data:image/png;base64," + base64.b64encode(_png_header_claiming(5000, 5000)).decode()
    detail = refused(http, {"prompt": "x", "image": big}, model="limner/tiny-sd-img2img")["detail"]
    assert isinstance(detail, list) and "5000x5000" in detail[0]["msg"] and "max_input_pixels" in detail[0]["msg"]
    for bad, words in (
        ("data:image/png;base64,@@@@", "base64"),
        ("data:image/png;base64," + base64.b64encode(b"not an image").decode(), "not a readable image"),
        ("http://127.0.0.1:9/cat.png", "loopback"),
        ("ftp://example.com/cat.png", "http"),
    ):
        detail = refused(http, {"prompt": "x", "image": bad}, model="limner/tiny-sd-img2img")["detail"]
        assert isinstance(detail, list) and words in detail[0]["msg"], (bad, detail)


def test_the_worker_is_fine_after_all_that(http: httpx.Client) -> None:
    assert generate(http, SD, {"prompt": "still here", "seed": 1})["images"]


def test_max_pixels_is_checked_on_its_own() -> None:
    """Within max_width and max_height, but over max_pixels: only the pixel check can refuse it."""
    from limner.catalog.entry import CatalogEntry
    from limner.catalog.inputs import finalize_input, parse_input
    from limner.errors import LimitExceeded

    entry = CatalogEntry.model_validate(
        {
            "id": "test/pixels",
            "task": "text-to-image",
            "family": "diffusers-image",
            "source": "tiny://sd",
            "defaults": {"width": 64, "height": 64},
            "limits": {"max_width": 512, "max_height": 512, "max_pixels": 65536},
        }
    )
    finalize_input(entry, parse_input(entry, {"prompt": "x", "width": 256, "height": 256}))  # exactly at the budget
    with pytest.raises(LimitExceeded) as over:
        finalize_input(entry, parse_input(entry, {"prompt": "x", "width": 512, "height": 256}))
    assert "max_pixels" in over.value.message and "512x256" in over.value.message
    assert over.value.loc == ("body", "width")
