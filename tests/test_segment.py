"""Segmentation and background removal end to end, through the live API and worker: MediaPipe's
real person model on a real photograph, a tiny random-weight SAM 2, and BiRefNet's opt-in."""

from __future__ import annotations

from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.jobs import data_uri, fetch_image, generate, submit, wait_done
from tests.photos import grace_hopper

CUTOUT = "google/mediapipe-selfie-background-removal"
PERSON = "google/mediapipe-selfie-segmentation"
SAM = "limner/tiny-sam2"

# Regions of the 512x600 portrait: (left, top, right, bottom).
FACE = (200, 150, 320, 300)
TORSO = (150, 480, 400, 600)
TOP_CORNERS = ((0, 0, 60, 60), (452, 0, 512, 60))


def mean_in(pixels: np.ndarray[Any, Any], box: tuple[int, int, int, int]) -> float:
    left, top, right, bottom = box
    return float(pixels[top:bottom, left:right].mean())


def check_mask_file(http: httpx.Client, info: dict[str, Any], size: tuple[int, int]) -> np.ndarray[Any, Any]:
    mask = fetch_image(http, info["url"])
    assert mask.format == "PNG" and mask.mode == "L" and mask.size == size
    pixels = np.asarray(mask)
    assert (info["width"], info["height"]) == size
    assert info["coverage"] == pytest.approx(np.count_nonzero(pixels >= 128) / pixels.size, abs=1e-6)
    return pixels


def test_person_cutout_on_a_real_photo(http: httpx.Client) -> None:
    photo = grace_hopper()
    body = generate(http, CUTOUT, {"image": data_uri(photo)})
    cutout = fetch_image(http, body["images"][0]["url"])
    assert cutout.format == "PNG" and cutout.mode == "RGBA" and cutout.size == photo.size
    alpha = np.asarray(cutout.getchannel("A"))
    assert mean_in(alpha, FACE) > 230 and mean_in(alpha, TORSO) > 230
    for corner in TOP_CORNERS:
        assert mean_in(alpha, corner) < 20
    # The colour is the photo's; the mask file is the alpha channel.
    assert np.array_equal(np.asarray(cutout.convert("RGB")), np.asarray(photo))
    mask = check_mask_file(http, body["masks"][0], photo.size)
    assert np.array_equal(mask, alpha)
    assert 0.35 < body["images"][0]["coverage"] < 0.85
    assert body["model"]["revision"] == "mediapipe==0.10.21"


def test_person_segmentation_mask_is_binary(http: httpx.Client) -> None:
    photo = grace_hopper().resize((256, 300))
    body = generate(http, PERSON, {"image": data_uri(photo, "JPEG")})
    mask = check_mask_file(http, body["masks"][0], (256, 300))
    assert set(np.unique(mask).tolist()) == {0, 255}
    assert mask[150, 128] == 255 and mask[5, 5] == 0  # the face, the background


def test_prompts_are_refused_by_a_model_that_takes_none(http: httpx.Client) -> None:
    image = data_uri(Image.new("RGB", (64, 64)))
    response = http.post(f"/v1/queue/{PERSON}", json={"image": image, "points": [[10, 10]]})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "points"]
    schema = http.get(f"/v1/models/{PERSON}").json()["input_schema"]["properties"]
    assert "points" not in schema and "box" not in schema and "image" in schema


def test_sam2_points_and_box(http: httpx.Client) -> None:
    photo = grace_hopper().resize((160, 188))
    request = {
        "image": data_uri(photo),
        "points": [[80, 60], [10, 10]],
        "point_labels": [1, 0],
        "box": [40, 20, 130, 180],
    }
    first = generate(http, SAM, request)
    again = generate(http, SAM, request)
    assert len(first["masks"]) == 1 and "score" in first["masks"][0]
    a = check_mask_file(http, first["masks"][0], (160, 188))
    assert set(np.unique(a).tolist()) <= {0, 255}
    assert np.array_equal(a, check_mask_file(http, again["masks"][0], (160, 188)))  # deterministic
    multi = generate(http, SAM, {**request, "multimask": True})
    scores = [m["score"] for m in multi["masks"]]
    assert len(scores) == 3 and scores == sorted(scores, reverse=True)
    for info in multi["masks"]:
        check_mask_file(http, info, (160, 188))


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"points": [[1, 1], [2, 2]], "point_labels": [1]}, "point_labels"),
        ({"box": [50, 10, 20, 40]}, "box"),
        ({"points": [[1, 1]] * 17}, "points"),
    ],
)
def test_sam2_bad_prompts_are_refused(http: httpx.Client, body: dict[str, Any], field: str) -> None:
    response = http.post(f"/v1/queue/{SAM}", json={"image": data_uri(Image.new("RGB", (64, 64))), **body})
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"][:2] == ["body", field]


@pytest.mark.parametrize(("body", "field"), [({}, "points"), ({"points": [[500, 5]]}, "points")])
def test_sam2_prompt_checks_that_need_the_image(http: httpx.Client, body: dict[str, Any], field: str) -> None:
    handle = submit(http, SAM, {"image": data_uri(Image.new("RGB", (64, 64))), **body})
    final = wait_done(http, SAM, handle["request_id"])
    assert final["state"] == "failed" and final["error_type"] == "invalid_input"
    assert http.get(handle["response_url"]).status_code == 422


def test_remote_code_needs_an_explicit_opt_in(http: httpx.Client) -> None:
    listed = http.get("/v1/models/ZhengPeng7/BiRefNet").json()
    assert listed["runtime"]["trust_remote_code"] is False
    handle = submit(http, "ZhengPeng7/BiRefNet", {"image": data_uri(Image.new("RGB", (64, 64)))})
    final = wait_done(http, "ZhengPeng7/BiRefNet", handle["request_id"])
    assert final["state"] == "failed" and final["error_type"] == "model_unavailable"
    assert "trust_remote_code" in final["error"]
