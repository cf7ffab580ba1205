"""image-to-text through the HTTP API: a caption of an uploaded photo, a question, progress
with the text so far, and the image-size and token limits as 422s that name them."""

from __future__ import annotations

import httpx
from PIL import Image

from tests.jobs import data_uri, generate, submit, wait_done
from tests.photos import coffee

VLM = "limner/tiny-idefics3"


def test_a_caption_and_an_answer_from_a_photo(http: httpx.Client) -> None:
    image = data_uri(coffee().resize((96, 64)))
    caption = generate(http, VLM, {"image": image, "max_tokens": 10, "seed": 1})
    assert isinstance(caption["output"], str) and caption["finish_reason"] in ("stop", "length")
    # Image tokens count as input: more than the prompt's words alone.
    assert caption["usage"]["input_tokens"] > 10 and 0 < caption["usage"]["output_tokens"] <= 10
    again = generate(http, VLM, {"image": image, "max_tokens": 10, "seed": 1})
    assert again["output"] == caption["output"]  # temperature 0 by default: greedy
    other = generate(http, VLM, {"image": image, "prompt": "what is on the table?", "max_tokens": 10, "seed": 1})
    assert other["usage"]["input_tokens"] != caption["usage"]["input_tokens"]


def test_image_size_and_output_limits_are_422s_naming_them(http: httpx.Client) -> None:
    big = data_uri(Image.new("RGB", (80, 80), (10, 20, 30)))  # 6400 pixels > 4096
    response = http.post("/v1/queue/test/small-idefics3", json={"image": big})
    assert response.status_code == 422, response.text
    detail = response.json()["detail"][0]
    assert detail["loc"][:2] == ["body", "image"] and "max_input_pixels" in detail["msg"]
    small = data_uri(Image.new("RGB", (32, 32), (10, 20, 30)))
    too_long = http.post("/v1/queue/test/small-idefics3", json={"image": small, "max_tokens": 65})
    assert too_long.status_code == 422 and "limits.max_output_tokens" in too_long.text
    handle = submit(http, "test/small-idefics3", {"image": small, "max_tokens": 4, "seed": 2})
    assert wait_done(http, "test/small-idefics3", handle["request_id"])["state"] == "succeeded"
