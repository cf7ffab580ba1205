"""Controlled generation end to end: ControlNet (canny, pose, depth) and IP-Adapter on the tiny
SD, through the live API and worker, and the refusal of these fields by models without them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
import pytest
from PIL import Image

from limner.tiny import TINY_MODEL_NAMES, build_tiny
from tests.jobs import data_uri, fetch_image, generate, pixels, submit, wait_done, wait_state
from tests.photos import grace_hopper

CANNY = "limner/tiny-sd-controlnet-canny"
POSE = "limner/tiny-sd-controlnet-pose"
DEPTH = "limner/tiny-sd-controlnet-depth"
IP = "limner/tiny-sd-ip-adapter"
SD = "limner/tiny-sd"
BASE = {"prompt": "a portrait", "seed": 11, "width": 96, "height": 96}


def photo(size: int = 96) -> Image.Image:
    return grace_hopper().resize((size, size))


def failed(http: httpx.Client, model: str, body: dict[str, Any]) -> dict[str, Any]:
    handle = submit(http, model, body)
    final = wait_done(http, model, handle["request_id"])
    assert final["state"] == "failed", final
    return final


def test_canny_map_is_opencv_canny_and_steers_the_image(http: httpx.Client) -> None:
    body = generate(http, CANNY, {**BASE, "control_image": data_uri(photo())})
    image = fetch_image(http, body["images"][0]["url"])
    assert image.size == (96, 96) and body["model"]["revision"].count("+controlnet-tiny-") == 1
    control = np.asarray(fetch_image(http, body["control_maps"][0]["url"]).convert("L"))
    assert np.array_equal(control, cv2.Canny(np.asarray(photo().convert("L")), 100, 200))
    flipped = generate(http, CANNY, {**BASE, "control_image": data_uri(photo().transpose(Image.Transpose.ROTATE_90))})
    assert np.abs(pixels(http, body["images"][0]["url"]) - pixels(http, flipped["images"][0]["url"])).mean() > 1


def test_control_scale_zero_is_the_base_model(http: httpx.Client) -> None:
    controlled = generate(http, CANNY, {**BASE, "control_image": data_uri(photo()), "control_scale": 0.0})
    plain = generate(http, SD, BASE)
    difference = np.abs(pixels(http, controlled["images"][0]["url"]) - pixels(http, plain["images"][0]["url"]))
    assert difference.max() <= 1


def test_pose_map_from_a_real_photo(http: httpx.Client) -> None:
    body = generate(http, POSE, {**BASE, "width": 128, "height": 128, "control_image": data_uri(photo(256))})
    skeleton = np.asarray(fetch_image(http, body["control_maps"][0]["url"]).convert("RGB"))
    assert skeleton.shape == (128, 128, 3)
    drawn = skeleton.max(axis=2) > 40
    assert 0.005 < drawn.mean() < 0.3  # limbs and joints, not a filled picture
    assert not drawn[:10, :10].any() and not drawn[:10, -10:].any()  # background stays black
    assert drawn[20:100, 30:100].any()  # the head and shoulders
    nobody = failed(http, POSE, {**BASE, "control_image": data_uri(Image.new("RGB", (96, 96), "white"))})
    assert nobody["error_type"] == "invalid_input" and "no person" in nobody["error"]


def test_depth_from_an_estimator_or_a_precomputed_map(http: httpx.Client) -> None:
    ramp = Image.linear_gradient("L").resize((96, 96)).convert("RGB")
    body = generate(http, DEPTH, {**BASE, "control_image": data_uri(ramp), "control_preprocess": False})
    assert np.array_equal(np.asarray(fetch_image(http, body["control_maps"][0]["url"])), np.asarray(ramp))
    estimated = generate(http, DEPTH, {**BASE, "control_image": data_uri(photo())})
    depth = np.asarray(fetch_image(http, estimated["control_maps"][0]["url"]), dtype=np.int16)
    assert depth.shape == (96, 96, 3) and np.array_equal(depth[..., 0], depth[..., 2])  # a grey depth map
    assert depth.std() > 1 and not np.array_equal(depth, np.asarray(ramp, dtype=np.int16))
    assert "+controlnet-tiny-" in estimated["model"]["revision"]


def test_cancel_a_running_controlnet_job(http: httpx.Client) -> None:
    model = "test/slow-controlnet"
    body = {"prompt": "long", "seed": 4, "num_inference_steps": 4000, "control_image": data_uri(photo(64))}
    handle = submit(http, model, body)
    wait_state(http, model, handle["request_id"], lambda b: b["progress"].get("step", 0) >= 2)
    assert http.put(handle["cancel_url"]).json() == {"status": "CANCELLATION_REQUESTED"}
    final = wait_done(http, model, handle["request_id"], timeout=60)
    assert final["state"] == "canceled" and final["progress"]["step"] < 4000
    assert http.get(handle["response_url"]).status_code == 409
    assert generate(http, CANNY, {**BASE, "control_image": data_uri(photo())})["images"]  # the worker goes on


def test_controlnet_needs_a_control_image(http: httpx.Client) -> None:
    final = failed(http, CANNY, BASE)
    assert final["error_type"] == "invalid_input" and "control_image" in final["error"]


def test_ip_adapter_follows_the_reference_image(http: httpx.Client) -> None:
    red, blue = (data_uri(Image.new("RGB", (64, 64), color)) for color in ("red", "blue"))
    a = generate(http, IP, {**BASE, "ip_adapter_image": red})
    b = generate(http, IP, {**BASE, "ip_adapter_image": blue})
    assert "+ip-adapter-tiny-" in a["model"]["revision"]
    assert np.abs(pixels(http, a["images"][0]["url"]) - pixels(http, b["images"][0]["url"])).mean() > 1
    plain = pixels(http, generate(http, SD, BASE)["images"][0]["url"])
    off = generate(http, IP, {**BASE, "ip_adapter_image": red, "ip_adapter_scale": 0.0})
    no_reference = generate(http, IP, BASE)
    for body in (off, no_reference):  # scale 0, or no reference: the base model's image
        assert np.abs(pixels(http, body["images"][0]["url"]) - plain).max() <= 1


@pytest.mark.parametrize(
    ("model", "field"),
    [(SD, "control_image"), (SD, "ip_adapter_image"), (IP, "control_scale"), (CANNY, "ip_adapter_scale")],
)
def test_models_without_the_feature_refuse_its_fields(http: httpx.Client, model: str, field: str) -> None:
    value: Any = 0.5 if field.endswith("scale") else data_uri(photo(32))
    response = http.post(f"/v1/queue/{model}", json={"prompt": "x", field: value})
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == ["body", field]
    listed = http.get(f"/v1/models/{model}").json()
    assert field in listed["unsupported"] and field not in listed["input_schema"]["properties"]


def test_ip_adapter_is_reported_in_the_catalog(http: httpx.Client) -> None:
    listed = http.get(f"/v1/models/{IP}").json()
    assert listed["runtime"]["ip_adapter"]["weight_name"] == "ip-adapter_sd15.safetensors"
    assert "ip_adapter_image" in listed["input_schema"]["properties"]
    canny = http.get(f"/v1/models/{CANNY}").json()
    assert canny["runtime"]["control_type"] == "canny" and "control_image" in canny["input_schema"]["properties"]


@pytest.mark.parametrize("name", TINY_MODEL_NAMES)
def test_tiny_model_builds_are_reproducible_safetensors(name: str, tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    build_tiny(name, first)
    build_tiny(name, second)
    files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(second) for p in second.rglob("*") if p.is_file())
    assert any(f.suffix == ".safetensors" for f in files)
    assert not [f for f in files if f.suffix in {".bin", ".pt", ".pth", ".ckpt"}]
    for rel in files:
        assert (first / rel).read_bytes() == (second / rel).read_bytes(), rel
