"""The official openai package against the live server's OpenAI-compatible routes."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator

import httpx
import numpy as np
import openai
import pytest
import soundfile
from PIL import Image

from tests.conftest import Live

SD = "limner/tiny-sd"
VOICE = "limner/piper-joe-us"


@pytest.fixture(scope="module")
def client(live: Live) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{live.base}/v1", api_key="not-checked-while-keys-are-off", max_retries=0) as c:
        yield c


def decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def test_generate_b64_json_with_size(client: openai.OpenAI) -> None:
    response = client.images.generate(
        model=SD, prompt="a lighthouse", size="96x64", response_format="b64_json", extra_body={"seed": 3}
    )
    assert response.data and len(response.data) == 1
    b64 = response.data[0].b64_json
    assert b64 is not None and response.data[0].url is None
    image = decode(base64.b64decode(b64))
    assert image.size == (96, 64) and image.format == "PNG"
    assert response.size == "96x64" and response.output_format == "png" and response.created > 0


def test_generate_urls_for_n_images(client: openai.OpenAI, live: Live) -> None:
    response = client.images.generate(model=SD, prompt="two foxes", n=2, response_format="url", size="64x64")
    assert response.data is not None and len(response.data) == 2
    images = []
    for item in response.data:
        assert item.url and item.url.startswith(f"{live.base}/v1/files/projects/default/results/")
        images.append(np.asarray(decode(httpx.get(item.url).content).convert("RGB"), dtype=np.int16))
    assert images[0].shape == (64, 64, 3) and np.abs(images[0] - images[1]).mean() > 0  # seeds seed, seed+1
    same = client.images.generate(model=SD, prompt="x", output_format="webp", response_format="b64_json")
    assert same.data and decode(base64.b64decode(same.data[0].b64_json or "")).format == "WEBP"


def test_errors_come_in_openai_shape(client: openai.OpenAI) -> None:
    cases = [
        ({"model": SD, "size": "4096x4096"}, "size", "limit_exceeded"),
        ({"model": SD, "size": "big"}, "size", "invalid_input"),
        ({"model": SD, "quality": "hd"}, "quality", "invalid_input"),
        ({"model": SD, "style": "vivid"}, "style", "invalid_input"),
        ({"model": SD, "n": 99}, "n", "invalid_input"),
        ({"model": "dall-e-3"}, "model", "invalid_input"),
        ({"model": VOICE}, "model", "invalid_input"),
        ({"model": SD, "extra_body": {"num_inference_steps": 9999}}, "num_inference_steps", "limit_exceeded"),
        ({"model": SD, "extra_body": {"no_such_field": 1}}, "no_such_field", "invalid_input"),
    ]
    for kwargs, param, code in cases:
        with pytest.raises(openai.BadRequestError) as caught:
            client.images.generate(prompt="x", **kwargs)  # type: ignore[arg-type]
        error = caught.value.body
        assert isinstance(error, dict), kwargs
        assert (error["param"], error["code"], error["type"]) == (param, code, "invalid_request_error"), error
        assert error["message"]
    raw = httpx.post(str(client.base_url) + "images/generations", json={"prompt": "x", "model": SD, "size": "1x1"})
    assert raw.status_code == 400 and set(raw.json()["error"]) == {"message", "type", "param", "code"}


def test_edit_without_and_with_a_mask(client: openai.OpenAI) -> None:
    ramp = np.tile(np.linspace(0, 255, 96, dtype=np.uint8), (64, 1))
    source = png(Image.fromarray(np.stack([ramp, ramp[::-1], ramp], axis=-1)))
    edited = client.images.edit(
        model="limner/tiny-sd-img2img",
        image=("ramp.png", source, "image/png"),
        prompt="oil painting",
        response_format="b64_json",
        extra_body={"seed": 1},
    )
    assert edited.data and decode(base64.b64decode(edited.data[0].b64_json or "")).size == (96, 64)

    mask = Image.new("RGBA", (96, 64), (0, 0, 0, 255))
    mask.paste((0, 0, 0, 0), (0, 0, 48, 64))  # OpenAI's way: transparent = edit the left half
    inpainted = client.images.edit(
        model="limner/tiny-sd-inpaint",
        image=("ramp.png", source, "image/png"),
        mask=("mask.png", png(mask), "image/png"),
        prompt="a door",
        n=2,
        response_format="url",
    )
    assert inpainted.data and len(inpainted.data) == 2
    assert decode(httpx.get(inpainted.data[0].url or "").content).size == (96, 64)

    with pytest.raises(openai.BadRequestError) as caught:
        client.images.edit(
            model="limner/tiny-sd-img2img",
            image=("ramp.png", source, "image/png"),
            mask=("mask.png", png(mask), "image/png"),
            prompt="x",
        )
    assert isinstance(caught.value.body, dict) and caught.value.body["param"] == "model"
    assert "inpainting" in caught.value.body["message"]


def test_speech_with_the_piper_voice(client: openai.OpenAI) -> None:
    text = "Limner speaks through the OpenAI client."
    wav = client.audio.speech.with_raw_response.create(model=VOICE, voice="alloy", input=text, response_format="wav")
    assert wav.headers["content-type"] == "audio/wav" and wav.headers["x-limner-voice"] == "joe"
    samples, rate = soundfile.read(io.BytesIO(wav.content))
    assert rate == 22050 and len(samples) / rate > 1.0 and np.abs(samples).max() > 0.01

    flac = client.audio.speech.create(model=VOICE, voice="joe", input=text, response_format="flac", speed=2.0)
    fast, fast_rate = soundfile.read(io.BytesIO(flac.content))
    assert fast_rate == 22050 and len(fast) < len(samples) * 0.75  # speed 2 speaks faster

    mp3 = client.audio.speech.create(model=VOICE, voice="joe", input=text)  # OpenAI's default format: mp3
    decoded, mp3_rate = soundfile.read(io.BytesIO(mp3.content))
    assert mp3.content[:3] == b"ID3" or mp3.content[0] == 0xFF
    assert mp3_rate == 22050 and abs(len(decoded) / mp3_rate - len(samples) / rate) < 0.2

    pcm = client.audio.speech.create(model=VOICE, voice="joe", input=text, response_format="pcm")
    pcm_samples = np.frombuffer(pcm.content, dtype="<i2")
    # 24 kHz 16-bit mono, OpenAI's pcm (piper varies its phoneme lengths a little between runs)
    assert len(pcm.content) % 2 == 0 and abs(len(pcm_samples) / 24000 - len(samples) / rate) < 0.3

    for kwargs, param in (
        ({"voice": "marvin"}, "voice"),
        ({"voice": "joe", "response_format": "opus"}, "response_format"),
        ({"voice": "joe", "instructions": "whisper"}, "instructions"),
        ({"voice": "joe", "model": SD}, "model"),
    ):
        args = {"model": VOICE, "input": text, **kwargs}
        with pytest.raises(openai.BadRequestError) as caught:
            client.audio.speech.create(**args)  # type: ignore[arg-type]
        assert isinstance(caught.value.body, dict) and caught.value.body["param"] == param, caught.value.body
