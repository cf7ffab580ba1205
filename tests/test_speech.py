"""Text-to-speech end to end with a real piper voice (the limner[piper] extra) over HTTP."""

from __future__ import annotations

import importlib.util
import io
import os
import sys
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import soundfile as sf

from limner.catalog import load_catalog
from limner.errors import ModelUnavailable
from tests.jobs import generate, submit, wait_done, wait_state

VOICE = "limner/piper-joe-us"
TEXT = "Hello from limner. This voice runs on your own machine."

if importlib.util.find_spec("piper") is None:
    if os.environ.get("CI"):
        pytest.fail("piper-tts is not installed in CI; `make install` installs the limner[piper] extra")
    pytest.skip("piper-tts is not installed: pip install 'limner[piper]'", allow_module_level=True)


def speech(http: httpx.Client, body: dict[str, Any]) -> tuple[dict[str, Any], np.ndarray[Any, Any], int]:
    result = generate(http, VOICE, body)
    (info,) = result["audio"]
    response = http.get(info["url"])
    assert response.status_code == 200 and info["file_size"] == len(response.content)
    samples, rate = sf.read(io.BytesIO(response.content), dtype="float32")
    assert (info["sample_rate"], info["frames"], info["channels"]) == (rate, samples.shape[0], 1)
    assert info["duration_s"] == pytest.approx(samples.shape[0] / rate, abs=1e-3)
    return info, samples, rate


def test_speaks_text_as_wav(http: httpx.Client) -> None:
    info, samples, rate = speech(http, {"text": TEXT, "voice": "joe"})
    assert info["content_type"] == "audio/wav" and rate == 22050
    assert 1.5 < samples.shape[0] / rate < 10  # a sentence and a half of speech
    assert float(np.sqrt(np.mean(samples**2))) > 0.01  # speech, not silence


def test_speed_and_output_format(http: httpx.Client) -> None:
    _, normal, _ = speech(http, {"text": TEXT})
    info, fast, rate = speech(http, {"text": TEXT, "speed": 2.0, "output_format": "flac", "sample_rate": 16000})
    assert info["content_type"] == "audio/flac" and rate == 16000
    assert fast.shape[0] / 16000 < 0.75 * normal.shape[0] / 22050
    mp3, samples, rate = speech(http, {"text": "Short.", "output_format": "mp3"})
    assert mp3["content_type"] == "audio/mpeg" and rate == 22050 and samples.shape[0] > 0


def test_progress_per_sentence(http: httpx.Client) -> None:
    text = " ".join(f"This is sentence number {n}, spoken in its turn." for n in range(1, 41))
    handle = submit(http, VOICE, {"text": text})
    seen = wait_state(
        http,
        VOICE,
        handle["request_id"],
        lambda b: b["progress"].get("stage") == "synthesizing" and b["progress"]["step"] > 0,
    )
    assert seen["progress"]["total"] == 40 and seen["progress"]["step"] <= 40
    final = wait_done(http, VOICE, handle["request_id"])
    assert final["state"] == "succeeded"


def test_bad_speech_inputs_name_the_field_and_the_limit(http: httpx.Client) -> None:
    for body, field, words in (
        ({"text": "hi", "voice": "nobody"}, "voice", "limits.voices"),
        ({"text": "x" * 5001}, "text", "limits.max_text_chars"),
        ({"text": "hi", "speed": 10}, "speed", "less than or equal"),
        ({"text": ""}, "text", "at least 1"),
        ({"text": "hi", "prompt": "no such field"}, "prompt", "Extra inputs"),
    ):
        response = http.post(f"/v1/queue/{VOICE}", json=body)
        assert response.status_code == 422, response.text
        detail = response.json()["detail"][0]
        assert detail["loc"] == ["body", field] and words in detail["msg"], detail
    schema = http.get(f"/v1/models/{VOICE}").json()
    assert schema["task"] == "text-to-speech" and schema["limits"]["voices"] == ["joe"]
    assert schema["input_schema"]["properties"]["text"]["maxLength"] == 5000


def test_without_piper_the_model_is_unavailable_with_what_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from limner.adapters.base import LoadEnv
    from limner.adapters.piper_tts import PiperAdapter, voice_files

    entry = load_catalog().get(VOICE)
    monkeypatch.setitem(sys.modules, "piper", None)  # import piper now raises ImportError
    with pytest.raises(ModelUnavailable, match=r"limner\[piper\]"):
        PiperAdapter().load(entry, LoadEnv(device="cpu", models_dir=tmp_path))
    missing = entry.model_copy(update={"source": "pip://no-such-voice-package"})
    with pytest.raises(ModelUnavailable, match="pip install no-such-voice-package"):
        voice_files(missing)
