"""Prompt enhancement: its own task (a template per target family, versioned), opt-in on image
requests (prompt_used in the image result), and the photo-to-variations workflow."""

from __future__ import annotations

import re

import httpx

from tests.jobs import data_uri, generate
from tests.photos import coffee

ENGLISH = {
    "a",
    "an",
    "the",
    "of",
    "in",
    "on",
    "with",
    "and",
    "light",
    "photo",
    "product",
    "soft",
    "background",
    "white",
    "image",
    "shot",
    "detailed",
    "lighting",
    "high",
    "quality",
    "table",
    "sharp",
    "focus",
    "is",
}


def english_words(text: str) -> int:
    return len([w for w in re.findall(r"[a-z]+", text.lower()) if w in ENGLISH])


def test_a_prompt_enhancement_job_names_its_template(http: httpx.Client) -> None:
    body = generate(http, "limner/tiny-enhance", {"prompt": "a cat", "target_family": "diffusers-image", "seed": 1})
    assert isinstance(body["output"], str) and body["output"]
    assert body["template"] == {"family": "diffusers-image", "version": "1"}
    other = generate(http, "limner/tiny-enhance", {"prompt": "a cat", "target_family": "shap-e", "seed": 1})
    assert other["template"] == {"family": "default", "version": "1"}  # no template for it: the default one
    # Different templates make different prompts for the model: different input tokens.
    assert other["usage"]["input_tokens"] != body["usage"]["input_tokens"]


def test_enhance_prompt_on_an_image_request_records_the_prompt_used(http: httpx.Client) -> None:
    request = {"prompt": "a red boat", "seed": 4, "enhance_prompt": "limner/tiny-enhance"}
    first = generate(http, "limner/tiny-sd", request)
    assert len(first["images"]) == 1
    assert first["prompt_used"] and first["prompt_used"] != "a red boat"
    made = first["prompt_enhancement"]
    assert made["model"]["id"] == "limner/tiny-enhance" and made["prompt"] == "a red boat"
    assert made["template"] == {"family": "diffusers-image", "version": "1"}
    again = generate(http, "limner/tiny-sd", {**request, "seed": 4})
    assert again["prompt_used"] == first["prompt_used"]  # seeded: the same enhancement
    plain = generate(http, "limner/tiny-sd", {"prompt": "a red boat", "seed": 4})
    assert "prompt_used" not in plain


def test_enhance_prompt_must_name_an_enhance_model(http: httpx.Client) -> None:
    wrong = http.post("/v1/queue/limner/tiny-sd", json={"prompt": "x", "enhance_prompt": "limner/tiny-llama"})
    assert wrong.status_code == 422 and wrong.json()["detail"][0]["loc"] == ["body", "enhance_prompt"]
    unknown = http.post("/v1/queue/limner/tiny-sd", json={"prompt": "x", "enhance_prompt": "nobody/nothing"})
    assert unknown.status_code == 422 and "no model nobody/nothing" in unknown.text


def test_smollm2_enhances_in_english(http: httpx.Client) -> None:
    body = generate(
        http, "limner/enhance-smollm2", {"prompt": "a coffee cup", "target_family": "diffusers-image", "seed": 2}
    )
    assert english_words(body["output"]) >= 3, body["output"]


def test_photo_to_variations_analyzes_enhances_and_generates(http: httpx.Client) -> None:
    photo = data_uri(coffee().resize((96, 64)))
    body = generate(
        http, "limner/photo-to-variations", {"image": photo, "brief": "a cosy cafe scene", "variations": 2, "seed": 3}
    )
    assert len(body["images"]) == 2
    assert isinstance(body["caption"], str)
    assert english_words(body["prompt_used"]) >= 3, body["prompt_used"]
    assert body["template"] == {"family": "diffusers-image", "version": "1"}
