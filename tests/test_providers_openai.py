"""The openai-images family's text-generation (chat completions, streamed) against the routing
stack's provider, a real limner whose /v1/chat/completions serves a tiny Llama
(tests/routing_stack.py). Its test/slow-llama never ends a turn early (min_new_tokens), so
``max_tokens`` decides the length, and a long run can be watched and canceled."""

from __future__ import annotations

import time

import pytest

from tests.routing_stack import Stack, run, wait_end

CHAT = "prov/openai-chat"


def test_a_chat_model_behind_openai_chat_completions(stack: Stack) -> None:
    done = run(stack, CHAT, {"messages": [{"role": "user", "content": "count to five"}], "max_tokens": 6, "seed": 1})
    assert done["code"] == 200, done
    result = done["body"]
    assert isinstance(result["output"], str) and result["output"]
    assert result["finish_reason"] == "length"  # 6 tokens, then the limit
    assert result["usage"]["output_tokens"] == 6 and result["usage"]["input_tokens"] > 0
    assert result["usage"]["cost_usd"] == pytest.approx(0.0002) and result["usage"]["device"] == "remote"


def test_over_the_providers_limit_is_the_callers_error(stack: Stack) -> None:
    # This entry allows 5000 tokens; the provider's model 1900: it answers 422, not retried.
    done = run(stack, CHAT, {"prompt": "too long", "max_tokens": 4000})
    assert done["status"]["error_type"] == "invalid_input", done
    assert "max_tokens" in done["status"]["error"]


def test_the_text_streams_into_progress_and_cancel_reaches_the_provider(stack: Stack) -> None:
    with stack.http() as http:
        submitted = http.post(f"/v1/queue/{CHAT}", json={"prompt": "talk for a long time", "max_tokens": 1900})
        assert submitted.status_code == 202, submitted.text
        request_id = submitted.json()["request_id"]
        while True:  # the provider's tokens show in this job's progress as they come
            status = http.get(f"/v1/queue/{CHAT}/requests/{request_id}/status").json()
            text = (status.get("progress") or {}).get("text")
            if text:
                break
            assert status["status"] != "COMPLETED", status
            time.sleep(0.05)
        assert http.put(f"/v1/queue/{CHAT}/requests/{request_id}/cancel").status_code == 202
        ended = wait_end(http, CHAT, request_id)
    assert ended["status"]["error_type"] == "canceled"
    # The provider's job was canceled too (the closed stream), long before its 1900 tokens.
    with stack.http(stack.provider) as provider:
        while True:
            [remote] = provider.get("/v1/requests", params={"model": "test/slow-llama", "limit": 1}).json()["requests"]
            if remote["status"] == "COMPLETED":
                break
            time.sleep(0.1)
    assert remote["state"] == "canceled", remote
