"""One error renderer: every route answers in its protocol's shape (limner's, or OpenAI's on the
OpenAI-compatible routes), every 429 carries Retry-After, and malformed bodies are 4xx, never 500.

A server of its own: a small body limit and an anonymous quota of two jobs a minute."""

from __future__ import annotations

import json
from collections.abc import Iterator

import openai
import pytest

from tests.conftest import Live
from tests.live import start_live, stop_live

QUOTAS = json.dumps({"anonymous": {"jobs_per_minute": 2}})
MAX_BODY = 65536


@pytest.fixture(scope="module")
def server() -> Iterator[Live]:
    live = start_live(None, env={"LIMNER_QUOTAS": QUOTAS, "LIMNER_MAX_BODY_BYTES": str(MAX_BODY)})
    yield live
    stop_live(live)


def test_413_in_each_protocols_shape(server: Live) -> None:
    with server.client() as http:
        big = {"prompt": "x" * (MAX_BODY + 10)}
        limner = http.post("/v1/queue/limner/tiny-sd", json=big)
        assert limner.status_code == 413 and limner.json()["error_type"] == "payload_too_large"
        assert "max_body_bytes" in limner.json()["detail"][0]["msg"]
    client = openai.OpenAI(base_url=f"{server.base}/v1", api_key="unused", max_retries=0)
    with pytest.raises(openai.APIStatusError) as refused:
        client.images.generate(model="limner/tiny-sd", prompt="x" * (MAX_BODY + 10))
    assert refused.value.status_code == 413
    error = refused.value.response.json()["error"]
    assert error["code"] == "payload_too_large" and "max_body_bytes" in error["message"]


def test_malformed_bodies_are_4xx_never_500(server: Live) -> None:
    deep = "[" * 5000 + "]" * 5000
    nested = {"prompt": "x", "seed": 1}
    for _ in range(40):
        nested = {"prompt": "x", "extra": nested}
    with server.client() as http:
        for path in ("/v1/queue/limner/tiny-sd", "/v1/run/limner/tiny-sd", "/v1/estimate/limner/tiny-sd"):
            answer = http.post(path, content=deep, headers={"Content-Type": "application/json"})
            assert answer.status_code == 422 and answer.json()["error_type"] == "invalid_input", (path, answer.text)
            too_deep = http.post(path, json=nested)
            assert too_deep.status_code == 422 and "nested deeper than 32" in too_deep.text
        nul = http.post("/v1/queue/limner/tiny-sd", json={"prompt": "a\u0000b"})
        assert nul.status_code == 422 and nul.json()["detail"][0]["loc"] == ["body", "prompt"], nul.text
        key_nul = http.post("/v1/keys", json={"name": "a\u0000b"})
        assert key_nul.status_code == 422, key_nul.text
        query_nul = http.get("/v1/requests", params={"model": "a\u0000b"})
        assert query_nul.status_code == 422 and "NUL" in query_nul.text
        unknown = http.get("/v1/no-such-route")
        assert unknown.status_code == 404 and unknown.json()["error_type"] == "not_found"
        wrong_method = http.delete("/v1/models")
        assert wrong_method.status_code == 405 and wrong_method.json()["error_type"] == "method_not_allowed"
        deep_openai = http.post("/v1/images/generations", content=deep, headers={"Content-Type": "application/json"})
        assert deep_openai.status_code == 400 and deep_openai.json()["error"]["type"] == "invalid_request_error"


def test_429_carries_retry_after_on_every_protocol(server: Live) -> None:
    client = openai.OpenAI(base_url=f"{server.base}/v1", api_key="unused", max_retries=0)
    with server.client() as http:
        answers = [http.post("/v1/queue/limner/tiny-sd", json={"prompt": f"q{i}"}) for i in range(3)]
        assert [a.status_code for a in answers[:2]] == [202, 202]
        over = answers[2]
        assert over.status_code == 429 and over.json()["error_type"] == "quota_exceeded"
        assert 1 <= int(over.headers["Retry-After"]) <= 60
        with pytest.raises(openai.RateLimitError) as limited:
            client.images.generate(model="limner/tiny-sd", prompt="over the quota")
        assert 1 <= int(limited.value.response.headers["retry-after"]) <= 60
        error = limited.value.response.json()["error"]
        assert error["type"] == "rate_limit_error" and error["code"] == "quota_exceeded"
        speech = http.post("/v1/audio/speech", json={"model": "limner/piper-joe-us", "input": "hi", "voice": "alloy"})
        assert speech.status_code == 429 and "retry-after" in speech.headers and "error" in speech.json()
