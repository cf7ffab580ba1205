"""The official openai package against POST /v1/chat/completions on the live server: plain and
streamed completions, images as image_url parts, the error shapes; and fal's any-llm alias."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import openai
import pytest

from tests.conftest import Live
from tests.jobs import data_uri, result, wait_done
from tests.photos import coffee

TINY = "limner/tiny-llama"


@pytest.fixture
def client(live: Live) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{live.base}/v1", api_key="not-checked-while-keys-are-off", max_retries=0) as c:
        yield c


def test_a_completion_is_a_job_with_openai_fields(client: openai.OpenAI, http: httpx.Client) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model=TINY,
        messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": "a red cat"}],
        max_tokens=10,
        temperature=0,
        seed=1,
    )
    done = raw.parse()
    choice = done.choices[0]
    assert done.object == "chat.completion" and done.model == TINY
    assert choice.message.role == "assistant" and isinstance(choice.message.content, str)
    assert choice.finish_reason in ("stop", "length")
    assert done.usage is not None and 0 < done.usage.completion_tokens <= 10
    assert done.usage.total_tokens == done.usage.prompt_tokens + done.usage.completion_tokens
    # It is an ordinary job: the same text in its queue result.
    job_id = raw.headers["x-limner-request-id"]
    assert result(http, TINY, job_id)["output"] == choice.message.content


def test_streaming_sends_chunks_that_add_up_to_the_text(client: openai.OpenAI) -> None:
    body = {
        "model": "test/slow-llama",
        "messages": [{"role": "user", "content": "tell me"}],
        "max_tokens": 300,
        "temperature": 0,
        "seed": 5,
    }
    whole = client.chat.completions.create(**body)  # type: ignore[call-overload]
    stream = client.chat.completions.create(**body, stream=True, stream_options={"include_usage": True})  # type: ignore[call-overload]
    pieces: list[str] = []
    finish = None
    usage = None
    chunks = 0
    for event in stream:
        assert event.object == "chat.completion.chunk"
        chunks += 1
        if event.usage is not None:
            usage = event.usage
        for choice in event.choices:
            pieces.append(choice.delta.content or "")
            finish = choice.finish_reason or finish
    assert "".join(pieces) == whole.choices[0].message.content
    assert finish == "length" and usage is not None and usage.completion_tokens == 300
    assert chunks >= 4  # a role chunk, text, the finish and the usage at least


def test_a_stop_string_ends_a_stream_and_never_shows(client: openai.OpenAI) -> None:
    base = {
        "model": "limner/tiny-qwen2",
        "messages": [{"role": "user", "content": "the sky over the sea"}],
        "max_tokens": 24,
        "temperature": 0,
        "seed": 2,
    }
    text = client.chat.completions.create(**base).choices[0].message.content or ""  # type: ignore[call-overload]
    stop = text[len(text) // 2 : len(text) // 2 + 2]
    stream = client.chat.completions.create(**base, stop=stop, stream=True)  # type: ignore[call-overload]
    streamed = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert streamed == text[: text.find(stop)]


def test_an_image_url_part_goes_to_an_image_to_text_model(client: openai.OpenAI) -> None:
    image = data_uri(coffee().resize((96, 64)))
    done = client.chat.completions.create(
        model="limner/tiny-idefics3",
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is on the table?"},
                    {"type": "image_url", "image_url": {"url": image}},
                ],
            }
        ],
        max_tokens=8,
    )
    assert isinstance(done.choices[0].message.content, str)
    assert done.usage is not None and done.usage.prompt_tokens > 8


def test_error_shapes_are_openai_s(client: openai.OpenAI, live: Live) -> None:
    with pytest.raises(openai.BadRequestError) as bad:
        client.chat.completions.create(model=TINY, messages=[{"role": "user", "content": "x"}], max_tokens=513)
    error = bad.value.body
    assert isinstance(error, dict) and error["param"] == "max_tokens" and error["type"] == "invalid_request_error"
    assert "limits.max_output_tokens" in error["message"] and error["code"] == "limit_exceeded"
    with pytest.raises(openai.BadRequestError) as wrong:
        client.chat.completions.create(model="limner/tiny-sd", messages=[{"role": "user", "content": "x"}])
    assert wrong.value.body["param"] == "model" and "text-generation" in wrong.value.body["message"]  # type: ignore[index]
    with pytest.raises(openai.BadRequestError) as tools:
        client.chat.completions.create(
            model=TINY,
            messages=[{"role": "user", "content": "x"}],
            tools=[{"type": "function", "function": {"name": "f", "parameters": {}}}],
        )
    assert tools.value.body["param"] == "tools"  # type: ignore[index]
    with pytest.raises(openai.BadRequestError) as many:
        client.chat.completions.create(model=TINY, messages=[{"role": "user", "content": "x"}], n=2)
    assert many.value.body["param"] == "n"  # type: ignore[index]
    # An image sent to a text model is refused, naming messages.
    with pytest.raises(openai.BadRequestError) as pic:
        client.chat.completions.create(
            model=TINY,
            messages=[
                {
                    "role": "user",
                    "content": [{"type": "image_url", "image_url": {"url": data_uri(coffee().resize((32, 32)))}}],
                }
            ],
        )
    assert pic.value.body["param"] == "model" and "image-to-text" in pic.value.body["message"]  # type: ignore[index]
    with httpx.Client(base_url=live.base) as http:
        empty = http.post("/v1/chat/completions", json={"model": TINY, "messages": []})
        assert empty.status_code == 400 and empty.json()["error"]["param"] == "messages"
        # A prompt over the model's input tokens fails in the worker: still a 400 naming the limit.
        long = http.post(
            "/v1/chat/completions",
            json={
                "model": "test/short-llama",
                "max_tokens": 2,
                "messages": [{"role": "user", "content": "the cat sat " * 20}],
            },
        )
        assert long.status_code == 400 and "limits.max_input_tokens" in long.json()["error"]["message"]
        assert long.json()["error"]["code"] == "limit_exceeded"


def test_fal_any_llm_alias(http: httpx.Client) -> None:
    submitted = http.post(
        "/v1/queue/fal-ai/any-llm",
        json={"prompt": "a cat", "system_prompt": "be brief", "model": TINY, "max_tokens": 5, "seed": 1},
    )
    assert submitted.status_code == 202, submitted.text
    handle = submitted.json()
    assert f"/v1/queue/{TINY}/requests/" in handle["status_url"]
    assert wait_done(http, TINY, handle["request_id"])["state"] == "succeeded"
    body = http.get(handle["response_url"]).json()
    assert isinstance(body["output"], str) and body["usage"]["output_tokens"] <= 5
    unknown = http.post("/v1/queue/fal-ai/any-llm", json={"prompt": "x", "model": "google/gemini-flash-1.5"})
    assert unknown.status_code == 422 and unknown.json()["detail"][0]["loc"] == ["body", "model"]
