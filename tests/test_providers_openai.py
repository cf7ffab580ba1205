"""The openai-images family's text-generation (chat completions, streamed) against the routing
stack's provider, a real limner whose /v1/chat/completions serves a tiny Llama
(tests/routing_stack.py), and its images (generations and multipart edits) against the same
limner's Images API. Its test/slow-llama never ends a turn early (min_new_tokens), so
``max_tokens`` decides the length, and a long run can be watched and canceled."""

from __future__ import annotations

import base64
import io
import time
from typing import Any

import pytest
from PIL import Image

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


# -- images: generations, edits (multipart) and the fields OpenAI's API lacks ------------------


def png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def data_uri(image: Image.Image) -> str:
    return "data:image/png;base64," + base64.b64encode(png(image)).decode()


def provider_input(stack: Stack, model: str) -> dict[str, Any]:
    """The input of the provider's latest job of ``model`` (the one our call made)."""
    with stack.http(stack.provider) as provider:
        [job] = provider.get("/v1/requests", params={"model": model, "limit": 1}).json()["requests"]
        answer = provider.get(f"/v1/queue/{model}/requests/{job['request_id']}")
        assert answer.status_code == 200, answer.text
        fields: dict[str, Any] = answer.json()["input"]
        return fields


def provider_image(stack: Stack, url: str) -> Image.Image:
    with stack.http(stack.provider) as provider:
        got = provider.get(url)
        assert got.status_code == 200, got.text
        return Image.open(io.BytesIO(got.content))


def test_an_image_edit_goes_to_the_provider_as_a_file(stack: Stack) -> None:
    red = Image.new("RGB", (96, 64), (220, 20, 20))
    done = run(stack, "prov/openai-img2img", {"prompt": "a lantern", "image": data_uri(red)})
    assert done["code"] == 200, done
    result = done["body"]
    # No size was asked for: the output takes the input image's.
    assert [(i["width"], i["height"]) for i in result["images"]] == [(96, 64)]
    assert result["seed"] is None  # OpenAI's API takes no seed: none is reported as used
    sent = provider_input(stack, "limner/tiny-sd-img2img")
    assert sent["num_inference_steps"] == 2  # the entry's call_args went as form fields
    image = provider_image(stack, sent["image"]).convert("RGB")
    assert image.size == (96, 64) and image.getpixel((10, 10)) == (220, 20, 20)


@pytest.mark.parametrize("invert", [False, True])
def test_an_inpainting_mask_arrives_as_the_provider_reads_it(stack: Stack, invert: bool) -> None:
    # limner's mask is white where repainted; a smaller one than the image is resized to it.
    mask = Image.new("L", (32, 32), 0)
    mask.paste(255, (0, 0, 16, 32))  # the left half
    image = Image.new("RGB", (64, 64), (20, 20, 220))
    body = {"prompt": "a door", "image": data_uri(image), "mask_image": data_uri(mask), "invert_mask": invert}
    done = run(stack, "prov/openai-inpaint", body)
    assert done["code"] == 200, done
    assert done["body"]["images"][0]["width"] == 64
    sent = provider_input(stack, "limner/tiny-sd-inpaint")
    got = provider_image(stack, sent["mask_image"]).convert("L")
    # It went as OpenAI's (transparent = repaint) and the provider read it back as limner's.
    left, right = (0, 255) if invert else (255, 0)
    assert got.size == (64, 64) and (got.getpixel((5, 30)), got.getpixel((58, 30))) == (left, right)


def test_fields_openai_lacks_are_refused_unless_the_entry_sends_them(stack: Stack) -> None:
    with stack.http() as http:
        shown = http.get("/v1/models/prov/openai-sd").json()
        refused = {
            name: http.post("/v1/queue/prov/openai-sd", json={"prompt": "x", name: value})
            for name, value in (("seed", 3), ("negative_prompt", "blur"), ("loras", [{"id": "a/b"}]))
        }
    assert {"seed", "negative_prompt", "num_inference_steps", "loras"} <= set(shown["unsupported"])
    for name, answer in refused.items():
        assert answer.status_code == 422, (name, answer.text)
        assert answer.json()["detail"][0]["loc"] == ["body", name]
    # An entry with runtime.extra_body sends them (the provider here is a limner, which takes them).
    done = run(stack, "prov/openai-extra", {"prompt": "x", "seed": 7, "negative_prompt": "blur"})
    assert done["code"] == 200, done
    assert done["body"]["seed"] == 7
    sent = provider_input(stack, "limner/tiny-sd")
    assert (sent["seed"], sent["negative_prompt"], sent["num_inference_steps"]) == (7, "blur", 2)
