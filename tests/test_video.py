"""Text to video and image to video end to end: a live API and worker, over real HTTP.

Every video is downloaded and decoded with PyAV: its frame count, rate, size and duration
must be what was asked for, and what the result says. The tiny models are random-weight
builds of the real architectures (Wan2.1, CogVideoX, Stable Video Diffusion, AnimateDiff).
"""

from __future__ import annotations

import io
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import httpx
import numpy as np
import pytest
from PIL import Image

from limner.media.video import encode_video, probe_video
from limner.tiny import build_tiny
from tests.jobs import data_uri, fetch_image, generate, submit, wait_done, wait_state

WAN = "limner/tiny-wan"


def decode(http: httpx.Client, url: str) -> tuple[list[np.ndarray[Any, Any]], dict[str, Any]]:
    """All frames of the MP4 at ``url`` (RGB arrays) and what its stream says about itself."""
    response = http.get(url)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "video/mp4"
    with av.open(io.BytesIO(response.content), mode="r") as container:
        stream = container.streams.video[0]
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(stream)]
        assert stream.duration is not None and stream.time_base is not None
        info = {
            "codec": stream.codec_context.name,
            "pix_fmt": stream.codec_context.pix_fmt,
            "fps": stream.average_rate,
            "duration_s": float(stream.duration * stream.time_base),
            "size": len(response.content),
        }
    return frames, info


def source_image(width: int = 96, height: int = 64) -> Image.Image:
    ramp = np.tile(np.linspace(0, 255, width, dtype=np.uint8), (height, 1))
    return Image.fromarray(np.stack([ramp, ramp[:, ::-1], np.full_like(ramp, 90)], axis=-1))


def check_video(http: httpx.Client, body: dict[str, Any], frames: int, fps: int, width: int, height: int) -> None:
    (video,) = body["videos"]
    decoded, info = decode(http, video["url"])
    assert len(decoded) == frames
    assert all(f.shape == (height, width, 3) for f in decoded)
    assert info["codec"] == "h264" and info["pix_fmt"] == "yuv420p"
    assert info["fps"] == Fraction(fps, 1)
    assert info["duration_s"] == pytest.approx(frames / fps, abs=1e-3)
    # The result reports what the file holds.
    assert (video["width"], video["height"], video["frames"], video["fps"]) == (width, height, frames, fps)
    assert video["duration_s"] == pytest.approx(frames / fps, abs=1e-3)
    assert video["content_type"] == "video/mp4" and video["file_size"] == info["size"]
    (poster,) = body["previews"]
    image = fetch_image(http, poster["url"])
    assert image.format == "PNG" and image.size == (width, height) == (poster["width"], poster["height"])
    # The poster is the first frame (up to the video's lossy compression).
    assert np.abs(np.asarray(image.convert("RGB"), dtype=np.int16) - decoded[0]).mean() < 12


@pytest.mark.parametrize(
    ("model", "frames", "fps", "width", "height"),
    [
        (WAN, 9, 8, 64, 48),
        ("limner/tiny-cogvideox", 9, 12, 48, 32),
        ("limner/tiny-animatediff", 6, 5, 64, 40),
    ],
)
def test_text_to_video(http: httpx.Client, model: str, frames: int, fps: int, width: int, height: int) -> None:
    request = {
        "prompt": "a red fox running",
        "negative_prompt": "blurry",
        "num_frames": frames,
        "fps": fps,
        "width": width,
        "height": height,
        "num_inference_steps": 2,
        "seed": 11,
    }
    body = generate(http, model, request)
    check_video(http, body, frames, fps, width, height)
    assert body["seed"] == 11 and body["input"]["num_frames"] == frames


@pytest.mark.parametrize(
    ("model", "extra", "frames", "width", "height"),
    [
        ("limner/tiny-wan-i2v", {"prompt": "the camera pans"}, 5, 64, 64),
        ("limner/tiny-cogvideox-i2v", {"prompt": "waves"}, 9, 32, 32),
        ("limner/tiny-svd", {"motion_bucket_id": 40, "noise_aug_strength": 0.1}, 7, 64, 48),
    ],
)
def test_image_to_video(
    http: httpx.Client, model: str, extra: dict[str, Any], frames: int, width: int, height: int
) -> None:
    request = {"image": data_uri(source_image()), "num_frames": frames, "num_inference_steps": 2, "seed": 5, **extra}
    if model != "limner/tiny-cogvideox-i2v":  # that one only makes its one size (its defaults)
        request |= {"width": width, "height": height}
    body = generate(http, model, request)
    check_video(http, body, frames, body["input"]["fps"], width, height)
    assert body["input"]["image"].startswith(str(http.base_url))  # the stored input, by URL


def test_progress_and_logs(http: httpx.Client) -> None:
    handle = submit(http, WAN, {"prompt": "slow", "seed": 1, "num_inference_steps": 40, "width": 32, "height": 32})
    seen = wait_state(
        http,
        WAN,
        handle["request_id"],
        lambda b: b["status"] == "COMPLETED" or (b["progress"].get("stage") == "denoising" and b["progress"]["step"]),
    )
    if seen["status"] != "COMPLETED":  # a fast machine may finish first; the logs still tell
        assert seen["progress"]["total"] == 40 and 0 < seen["progress"]["percent"] <= 100
    final = wait_done(http, WAN, handle["request_id"])
    assert final["state"] == "succeeded"
    logs = [line["message"] for line in http.get(handle["status_url"], params={"logs": 1}).json()["logs"]]
    assert "decoded 9 frames of 32x32" in logs
    assert any(m.startswith("encoded an H.264 MP4") for m in logs)


def test_cancel_a_running_video(http: httpx.Client) -> None:
    model = "test/slow-wan"
    handle = submit(http, model, {"prompt": "long", "seed": 2, "num_inference_steps": 4000})
    wait_state(http, model, handle["request_id"], lambda b: b["progress"].get("step", 0) >= 2)
    assert http.put(handle["cancel_url"]).json() == {"status": "CANCELLATION_REQUESTED"}
    final = wait_done(http, model, handle["request_id"], timeout=60)
    assert final["state"] == "canceled" and final["progress"]["step"] < 4000
    assert http.get(handle["response_url"]).status_code == 409
    # The worker goes on.
    assert generate(http, WAN, {"prompt": "after", "seed": 3, "num_inference_steps": 1})["videos"]


@pytest.mark.parametrize(
    ("model", "body", "field", "words"),
    [
        (WAN, {"prompt": "x", "num_frames": 37}, "num_frames", "max_frames"),
        (WAN, {"prompt": "x", "num_frames": 10}, "num_frames", "frames_multiple"),
        (WAN, {"prompt": "x", "num_frames": 33, "fps": 2}, "num_frames", "max_duration_s"),
        (WAN, {"prompt": "x", "fps": 120}, "fps", "max_fps"),
        (WAN, {"prompt": "x", "width": 72}, "width", "size_multiple"),
        (WAN, {"prompt": "x", "output_format": "gif"}, "output_format", "mp4"),
        (WAN, {"prompt": "x", "image": "data:,"}, "image", "Extra inputs"),
        ("limner/tiny-svd", {"image": "data:image/png;base64,aGVsbG8=", "seed": 1}, "image", "not a readable image"),
        ("limner/tiny-svd", {"image": "IMAGE", "prompt": "a cat"}, "prompt", "not supported"),
        ("limner/tiny-wan-i2v", {"image": "IMAGE", "motion_bucket_id": 3}, "motion_bucket_id", "not supported"),
        ("limner/tiny-cogvideox-i2v", {"image": "IMAGE", "width": 48}, "width", "max_width"),
        ("limner/tiny-cogvideox", {"prompt": "x", "num_frames": 13}, "num_frames", "frames_multiple"),
    ],
)
def test_bad_input_is_refused_naming_the_field(
    http: httpx.Client, model: str, body: dict[str, Any], field: str, words: str
) -> None:
    if body.get("image") == "IMAGE":
        body = {**body, "image": data_uri(source_image())}
    response = http.post(f"/v1/queue/{model}", json=body)
    assert response.status_code == 422, response.text
    detail = response.json()["detail"][0]
    assert detail["loc"] == ["body", field]
    assert words in detail["msg"]


def test_models_show_video_limits(http: httpx.Client) -> None:
    wan = http.get(f"/v1/models/{WAN}").json()
    assert wan["task"] == "text-to-video" and wan["family"] == "wan"
    props = wan["input_schema"]["properties"]
    assert props["num_frames"]["maximum"] == 33 and props["num_frames"]["default"] == 9
    assert props["width"]["multipleOf"] == 16
    svd = http.get("/v1/models/limner/tiny-svd").json()
    assert "prompt" not in svd["input_schema"]["properties"]  # unsupported fields are not offered
    assert "motion_bucket_id" in svd["input_schema"]["properties"]
    animatediff = http.get("/v1/models/limner/tiny-animatediff").json()
    assert animatediff["components"] == {"motion_adapter": "tiny://animatediff-motion-adapter"}
    tasks = {m["task"] for m in http.get("/v1/models").json()["models"]}
    assert {"text-to-video", "image-to-video"} <= tasks


# -- the pieces on their own -------------------------------------------------------------------


@pytest.mark.parametrize("name", ["wan", "wan-i2v", "cogvideox", "cogvideox-i2v", "svd", "animatediff-motion-adapter"])
def test_tiny_video_builds_are_reproducible_safetensors(name: str, tmp_path: Path) -> None:
    pytest.importorskip("diffusers")
    build_tiny(name, tmp_path / "a")
    build_tiny(name, tmp_path / "b")
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*") if p.is_file())
    assert any(f.suffix == ".safetensors" for f in files)
    assert not [f for f in files if f.suffix in {".bin", ".pt", ".pth", ".ckpt"}]
    for rel in files:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel


def test_encode_video_measures_the_file() -> None:
    frames = np.random.default_rng(0).random((13, 48, 80, 3)).astype(np.float32)
    media = encode_video(frames, 24)
    assert media.content_type == "video/mp4" and media.extension == "mp4"
    assert media.properties == probe_video(media.data)
    assert media.properties["frames"] == 13 and media.properties["fps"] == 24.0
    assert (media.properties["width"], media.properties["height"]) == (80, 48)
    assert media.properties["duration_s"] == pytest.approx(13 / 24, abs=1e-3)
    assert media.data[4:8] == b"ftyp" and media.data.find(b"moov") < media.data.find(b"mdat")  # fast start
    pil = [Image.fromarray((f * 255).astype(np.uint8)) for f in frames[:3]]
    assert encode_video(pil, 1).properties["frames"] == 3
    with pytest.raises(ValueError, match="even sizes"):
        encode_video(np.zeros((2, 33, 32, 3), np.uint8), 8)
