"""Text-to-audio end to end: tiny MusicGen (+ Melody) and tiny Stable Audio through the HTTP API."""

from __future__ import annotations

import base64
import io
import math
from typing import Any

import httpx
import numpy as np
import pytest
import soundfile as sf

from limner.progress import Stage
from tests.jobs import generate, submit, wait_done, wait_state

MUSICGEN = "limner/tiny-musicgen"
MELODY = "limner/tiny-musicgen-melody"
STABLE = "limner/tiny-stable-audio"
FRAME_S = 1 / 50  # one EnCodec frame of the 32 kHz MusicGen codec
MP3_FRAME = 1152  # samples in one MPEG Layer III frame
SERVED_TYPES = {"audio/wav": {"audio/wav", "audio/x-wav"}, "audio/flac": {"audio/flac", "audio/x-flac"}}


def read_audio(http: httpx.Client, info: dict[str, Any]) -> tuple[np.ndarray[Any, Any], int]:
    """Fetch an output and decode it; check the result JSON describes the bytes served."""
    response = http.get(info["url"])
    assert response.status_code == 200
    # The local files route guesses its Content-Type from the extension (audio/x-wav on Debian).
    assert response.headers["content-type"].split(";")[0] in SERVED_TYPES.get(
        info["content_type"], {info["content_type"]}
    )
    assert info["file_size"] == len(response.content)
    samples, rate = sf.read(io.BytesIO(response.content), dtype="float32", always_2d=True)
    assert (info["sample_rate"], info["channels"], info["frames"]) == (rate, samples.shape[1], samples.shape[0])
    assert info["duration_s"] == pytest.approx(samples.shape[0] / rate, abs=1e-3)
    return samples, rate


def wav_uri(samples: np.ndarray[Any, Any], rate: int) -> str:
    buffer = io.BytesIO()
    sf.write(buffer, samples, rate, format="WAV", subtype="PCM_16")
    return "data:audio/wav;base64," + base64.b64encode(buffer.getvalue()).decode()


def tone(hz: float, seconds: float, rate: int = 22050) -> np.ndarray[Any, Any]:
    t = np.arange(int(seconds * rate)) / rate
    return (0.4 * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def refused(http: httpx.Client, model: str, body: dict[str, Any]) -> dict[str, Any]:
    response = http.post(f"/v1/queue/{model}", json=body)
    assert response.status_code == 422, response.text
    detail: dict[str, Any] = response.json()["detail"][0]
    return detail


def test_musicgen_makes_wav_of_the_requested_length(http: httpx.Client) -> None:
    request = {"prompt": "a calm piano tune", "seed": 3, "duration_s": 1.5, "num_outputs": 2}
    body = generate(http, MUSICGEN, request)
    assert body["seed"] == 3 and body["input"]["duration_s"] == 1.5
    assert body["model"]["revision"].startswith("tiny-")
    waves = []
    for info in body["audio"]:
        assert info["content_type"] == "audio/wav"
        samples, rate = read_audio(http, info)
        assert rate == 32000 and samples.shape[1] == 1
        assert abs(samples.shape[0] / rate - 1.5) <= FRAME_S
        assert np.abs(samples).max() > 0  # not silence
        waves.append(samples)
    assert not np.array_equal(waves[0], waves[1])  # seeds 3 and 4
    again = generate(http, MUSICGEN, request)
    for info, wave in zip(again["audio"], waves, strict=True):
        assert np.array_equal(read_audio(http, info)[0], wave)  # same input and seed, same audio
    # Each output samples with its own seed: alone, seed 4 makes the same codes as in the pair
    # (the codec's batched float maths may move a sample by a bit or two).
    alone = generate(http, MUSICGEN, {**request, "seed": 4, "num_outputs": 1})
    assert np.allclose(read_audio(http, alone["audio"][0])[0], waves[1], atol=4 / 32768)


def test_flac_mp3_and_resampling(http: httpx.Client) -> None:
    request = {"prompt": "drums", "seed": 1, "duration_s": 1.0}
    flac = generate(http, MUSICGEN, {**request, "output_format": "flac", "sample_rate": 16000})["audio"][0]
    assert flac["content_type"] == "audio/flac"
    samples, rate = read_audio(http, flac)
    assert rate == 16000 and abs(samples.shape[0] - 16000) <= 16000 * FRAME_S
    mp3 = generate(http, MUSICGEN, {**request, "output_format": "mp3"})
    info = mp3["audio"][0]
    assert info["content_type"] == "audio/mpeg"
    samples, rate = read_audio(http, info)
    assert rate == 32000 and abs(samples.shape[0] - 32000) <= MP3_FRAME


def test_stable_audio_stereo_with_negative_prompt(http: httpx.Client) -> None:
    body = generate(
        http,
        STABLE,
        {"prompt": "rain on a tin roof", "negative_prompt": "music", "duration_s": 2.0, "seed": 5, "num_outputs": 2},
    )
    assert body["input"]["num_inference_steps"] == 8  # the catalog default, recorded
    first, second = (read_audio(http, info) for info in body["audio"])
    for samples, rate in (first, second):
        assert rate == 16000 and samples.shape == (32000, 2)
    assert not np.array_equal(first[0], second[0])
    sfx = generate(http, STABLE, {"prompt": "a door slams", "duration_s": 0.5, "seed": 5, "sample_rate": 44100})
    samples, rate = read_audio(http, sfx["audio"][0])
    assert rate == 44100 and samples.shape == (22050, 2)


def test_progress_then_cancel_of_a_running_music_job(http: httpx.Client) -> None:
    handle = submit(http, MUSICGEN, {"prompt": "a very long song", "seed": 1, "duration_s": 100})
    seen = wait_state(
        http,
        MUSICGEN,
        handle["request_id"],
        lambda b: b["progress"].get("stage") == Stage.GENERATING and b["progress"]["step"] > 2,
    )
    total = math.ceil(100 * 50) + 3  # frames for 100 s, plus the codebook delay
    assert seen["status"] == "IN_PROGRESS" and seen["progress"]["total"] == total
    assert http.put(handle["cancel_url"]).json() == {"status": "CANCELLATION_REQUESTED"}
    final = wait_done(http, MUSICGEN, handle["request_id"], timeout=60)
    assert final["state"] == "canceled" and final["progress"]["step"] < total
    assert generate(http, MUSICGEN, {"prompt": "after", "seed": 2, "duration_s": 0.5})["audio"]  # worker is fine


def test_melody_conditioning_from_an_uploaded_wav(http: httpx.Client) -> None:
    request = {"prompt": "a folk song", "seed": 7, "duration_s": 1.0, "melody": wav_uri(tone(440, 2.0), 22050)}
    first = generate(http, MELODY, request)
    assert first["input"]["melody"].startswith(str(http.base_url).rstrip("/"))  # stored once, shown as a URL
    stored = http.get(first["input"]["melody"])
    assert stored.status_code == 200 and sf.info(io.BytesIO(stored.content)).samplerate == 22050
    samples, rate = read_audio(http, first["audio"][0])
    assert rate == 32000 and abs(samples.shape[0] / rate - 1.0) <= FRAME_S
    # The stored melody's URL is a valid input too; same melody and seed, same audio.
    again = generate(http, MELODY, {**request, "melody": first["input"]["melody"]})
    assert np.array_equal(read_audio(http, again["audio"][0])[0], samples)
    # Another melody (a chord that moves) changes the music.
    moving = np.concatenate([tone(262, 0.5), tone(330, 0.5), tone(392, 0.5), tone(523, 0.5)])
    other = generate(http, MELODY, {**request, "melody": wav_uri(moving, 22050)})
    assert not np.array_equal(read_audio(http, other["audio"][0])[0], samples)
    without = generate(http, MELODY, {"prompt": "a folk song", "seed": 7, "duration_s": 1.0})
    assert not np.array_equal(read_audio(http, without["audio"][0])[0], samples)


def test_bad_audio_inputs_name_the_field_and_the_limit(http: httpx.Client) -> None:
    over = refused(http, STABLE, {"prompt": "x", "duration_s": 11})
    assert over["loc"] == ["body", "duration_s"] and "limits.max_duration_s" in over["msg"]
    steps = refused(http, STABLE, {"prompt": "x", "num_inference_steps": 500})
    assert steps["loc"] == ["body", "num_inference_steps"] and "limits.max_steps" in steps["msg"]
    for model, field, value in (
        (MUSICGEN, "melody", wav_uri(tone(440, 1.0), 22050)),
        (MUSICGEN, "negative_prompt", "noise"),
        (MUSICGEN, "num_inference_steps", 10),
        (STABLE, "melody", wav_uri(tone(440, 1.0), 22050)),
    ):
        detail = refused(http, model, {"prompt": "x", field: value})
        assert detail["loc"] == ["body", field] and "not supported" in detail["msg"]
    long_melody = refused(http, MELODY, {"prompt": "x", "melody": wav_uri(tone(220, 31.0, 8000), 8000)})
    assert long_melody["loc"] == ["body", "melody"] and "limits.max_input_audio_s" in long_melody["msg"]
    garbage = "data:audio/wav;base64," + base64.b64encode(b"RIFF not really a wave file" * 20).decode()
    unreadable = refused(http, MELODY, {"prompt": "x", "melody": garbage})
    assert unreadable["loc"] == ["body", "melody"] and "not readable audio" in unreadable["msg"]
    fmt = refused(http, MUSICGEN, {"prompt": "x", "output_format": "ogg"})
    assert fmt["loc"] == ["body", "output_format"]
    rate = refused(http, MUSICGEN, {"prompt": "x", "output_format": "mp3", "sample_rate": 96000})
    assert rate["loc"] == ["body", "sample_rate"] and "MP3" in rate["msg"]
    low = refused(http, MUSICGEN, {"prompt": "x", "sample_rate": 100})
    assert low["loc"] == ["body", "sample_rate"]


def test_models_show_audio_schemas(http: httpx.Client) -> None:
    musicgen = http.get(f"/v1/models/{MUSICGEN}").json()
    assert musicgen["task"] == "text-to-audio"
    props = musicgen["input_schema"]["properties"]
    assert "negative_prompt" not in props and "melody" not in props
    assert props["duration_s"]["maximum"] == 120 and props["duration_s"]["default"] == 2.0
    melody = http.get(f"/v1/models/{MELODY}").json()
    assert "melody" in melody["input_schema"]["properties"] and melody["limits"]["max_input_audio_s"] == 30
    sfx = http.get("/v1/models/stabilityai/stable-audio-open-sfx").json()
    assert sfx["limits"]["max_duration_s"] == 47 and "same weights" in sfx["description"]
