"""The Python SDK (limner.client) against the live server: sync and async, typed results,
events, timeouts that keep the request id, cancel, uploads."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import numpy as np
import pytest
import soundfile
from PIL import Image

from limner.client import (
    ApiError,
    AsyncClient,
    AudioResult,
    Client,
    ImageResult,
    JobFailed,
    MeshResult,
    RequestTimeout,
    Status,
    VideoResult,
    parse_result,
)
from tests.conftest import Live

SD = "limner/tiny-sd"
SLOW = "test/slow-sd"
UNSERVED = "test/unserved"


def decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def test_submit_events_and_a_typed_result(live: Live) -> None:
    with Client(live.base) as client:
        handle = client.submit(SD, {"prompt": "a lighthouse", "seed": 7, "num_outputs": 2, "width": 96})
        assert client.last_request_id == handle.request_id
        events = list(handle.iter_events(logs=True))
        assert all(isinstance(e, Status) and e.request_id == handle.request_id for e in events)
        assert events[-1].done and events[-1].succeeded
        stages = {e.progress.stage for e in events if e.progress}
        assert "denoising" in stages or "completed" in stages
        assert events[-1].logs and events[-1].logs[0].message
        result = handle.result()
    assert isinstance(result, ImageResult) and result.request_id == handle.request_id
    assert len(result.images) == 2 and result.seed == 7
    first = result.images[0]
    assert (first.width, first.height, first.content_type) == (96, 64, "image/png")
    assert result.raw["images"][0]["url"] == first.url and result.input["prompt"] == "a lighthouse"
    with Client(live.base) as client:
        data = client.download(first.url)
    assert first.file_size == len(data) and decode(data).size == (96, 64)


def test_subscribe_reports_the_request_id_and_every_update(live: Live) -> None:
    seen: list[Status] = []
    enqueued: list[str] = []
    with Client(live.base) as client:
        result = client.subscribe(
            SD, {"prompt": "a fox", "seed": 1}, on_queue_update=seen.append, on_enqueue=enqueued.append
        )
    assert enqueued == [result.request_id]
    assert seen[-1].done and seen[-1].request_id == result.request_id
    assert isinstance(result, ImageResult) and decode_ok(live, result.images[0].url)


def decode_ok(live: Live, url: str) -> bool:
    with Client(live.base) as client:
        return decode(client.download(url)).size == (64, 64)


def test_a_timed_out_wait_keeps_the_request_id_and_the_job(live: Live) -> None:
    with Client(live.base) as client:
        with pytest.raises(RequestTimeout) as caught:
            client.subscribe(SLOW, {"prompt": "slow", "seed": 2, "num_inference_steps": 250}, timeout=0.3)
        request_id = caught.value.request_id
        assert request_id and request_id == client.last_request_id
        assert isinstance(caught.value, TimeoutError)
        # The job went on: the id leads to its result.
        result = client.wait(SLOW, request_id, timeout=120)
        assert isinstance(result, ImageResult) and result.request_id == request_id


def test_run_times_out_into_the_same_job(live: Live) -> None:
    arguments = {"prompt": "run slow", "seed": 3, "num_inference_steps": 250}
    with Client(live.base) as client:
        fast = client.run(SD, {"prompt": "quick", "seed": 3})
        assert isinstance(fast, ImageResult) and fast.request_id
        with pytest.raises(RequestTimeout) as caught:
            client.run(SLOW, arguments, timeout=0.5)
        request_id = caught.value.request_id
        assert request_id
        listed = client.requests(model=SLOW, limit=100)["requests"]
        assert sum(r["request_id"] == request_id for r in listed) == 1
        assert client.wait(SLOW, request_id, timeout=120).input["prompt"] == "run slow"


def test_cancel_and_failures_carry_the_request_id(live: Live) -> None:
    with Client(live.base) as client:
        handle = client.submit(UNSERVED, {"prompt": "never runs"})
        assert handle.cancel() == "CANCELLATION_REQUESTED"
        with pytest.raises(JobFailed) as caught:
            handle.wait(timeout=30)
        assert caught.value.request_id == handle.request_id and caught.value.error_type == "canceled"
        assert handle.cancel() == "ALREADY_COMPLETED"
        with pytest.raises(ApiError) as bad:
            client.submit(SD, {"prompt": "x", "width": 4096})
        assert bad.value.status_code == 422 and bad.value.error_type == "limit_exceeded"
        assert "limits.max_width" in bad.value.message


def test_upload_file_then_use_it(live: Live, tmp_path: Path) -> None:
    path = tmp_path / "ramp.png"
    ramp = np.tile(np.linspace(0, 255, 96, dtype=np.uint8), (64, 1))
    Image.fromarray(ramp).convert("RGB").save(path)
    with Client(live.base) as client:
        upload = client.upload_file(path)
        assert (upload.kind, upload.width, upload.height) == ("image", 96, 64)
        assert client.upload_file(path.read_bytes()).key == upload.key
        result = client.subscribe("limner/tiny-sd-img2img", {"prompt": "paint", "image": upload.url, "seed": 1})
    assert isinstance(result, ImageResult) and (result.images[0].width, result.images[0].height) == (96, 64)


def test_speech_comes_back_as_an_audio_result(live: Live) -> None:
    with Client(live.base) as client:
        result = client.run("limner/piper-joe-us", {"text": "Hello from the client.", "output_format": "flac"})
        assert isinstance(result, AudioResult)
        clip = result.audio[0]
        samples, rate = soundfile.read(io.BytesIO(client.download(clip.url)))
    assert clip.content_type == "audio/flac" and rate == 22050
    assert clip.duration_s is not None and clip.duration_s > 0.3
    assert clip.duration_s == pytest.approx(len(samples) / rate, abs=0.01)


def test_results_are_typed_by_their_output_key() -> None:
    video = parse_result({"videos": [{"url": "u.mp4", "fps": 8, "frames": 9}], "previews": [{"url": "p.png"}]})
    assert isinstance(video, VideoResult) and video.videos[0].raw["fps"] == 8 and video.previews[0].url == "p.png"
    assert getattr(video.videos[0], "frames", None) == 9  # properties the client does not name are attributes
    mesh = parse_result({"meshes": [{"url": "m.glb", "vertices": 10}], "seed": 4})
    assert isinstance(mesh, MeshResult) and mesh.seed == 4 and [f.url for f in mesh.files] == ["m.glb"]
    other = parse_result({"masks": [{"url": "x.png"}]})
    assert type(other).__name__ == "Result" and other.files[0].url == "x.png"


def test_async_client_end_to_end(live: Live, tmp_path: Path) -> None:
    async def scenario() -> None:
        async with AsyncClient(live.base) as client:
            handle = await client.submit(SD, {"prompt": "async", "seed": 11})
            statuses = [s async for s in handle.iter_events()]
            assert statuses[-1].succeeded
            result = await handle.result()
            assert isinstance(result, ImageResult)
            assert decode(await client.download(result.images[0].url)).size == (64, 64)

            updates: list[str] = []

            async def on_update(status: Status) -> None:
                updates.append(status.status)

            again = await client.subscribe(SD, {"prompt": "async 2", "seed": 12}, on_queue_update=on_update)
            assert updates[-1] == "COMPLETED" and isinstance(again, ImageResult)

            with pytest.raises(RequestTimeout) as caught:
                await client.subscribe(SLOW, {"prompt": "slow", "seed": 5, "num_inference_steps": 250}, timeout=0.3)
            slow_id = caught.value.request_id
            assert slow_id and await client.cancel(SLOW, slow_id) in ("CANCELLATION_REQUESTED", "ALREADY_COMPLETED")

            ramp = Image.new("RGB", (64, 64), (200, 30, 30))
            buffer = io.BytesIO()
            ramp.save(buffer, format="PNG")
            upload = await client.upload_file(buffer.getvalue(), filename="red.png")
            ran = await client.run("limner/tiny-sd-img2img", {"prompt": "x", "image": upload.url, "seed": 2})
            assert isinstance(ran, ImageResult) and ran.images[0].width == 64
            assert any(m["id"] == SD for m in await client.models())

    asyncio.run(scenario())
