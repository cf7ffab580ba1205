"""The fal-queue family beyond text-to-image, fal's field names both ways, and fal-client and
webhooks on a route, against the routing stack's real servers (tests/routing_stack.py)."""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys

import pytest
from PIL import Image

from tests.receiver import receiver
from tests.routing_stack import Stack, run
from tests.services import ROOT, WEBHOOK_SECRET


def png(width: int, height: int, colour: tuple[int, int, int]) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(buffer, "PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def test_limner_takes_fals_field_names(stack: Stack) -> None:
    with stack.http(stack.provider) as http:
        made = http.post(
            "/v1/run/limner/tiny-sd",
            json={"prompt": "fal-shaped", "image_size": {"width": 96, "height": 64}, "num_images": 2, "seed": 1},
        )
        assert made.status_code == 200, made.text
        assert [(i["width"], i["height"]) for i in made.json()["images"]] == [(96, 64), (96, 64)]
        both = http.post("/v1/queue/limner/tiny-sd", json={"prompt": "x", "num_images": 2, "num_outputs": 1})
        preset = http.post("/v1/queue/limner/tiny-sd", json={"prompt": "x", "image_size": "portrait_4_3"})
        unknown = http.post("/v1/queue/limner/tiny-sd", json={"prompt": "x", "image_size": "poster"})
    assert both.status_code == 422 and both.json()["detail"][0]["loc"] == ["body", "num_images"]
    assert "num_outputs or fal's num_images" in both.json()["detail"][0]["msg"]
    # portrait_4_3 is 768x1024: over tiny-sd's 512x512, refused naming the limit.
    assert preset.status_code == 422 and preset.json()["detail"][0]["loc"][-1] in ("width", "height")
    assert unknown.status_code == 422 and "landscape_4_3" in unknown.json()["detail"][0]["msg"]


def test_an_entry_with_fal_names_and_a_per_second_price(stack: Stack) -> None:
    done = run(stack, "prov/fal-named", {"prompt": "named like fal", "num_outputs": 2, "width": 64, "height": 96})
    assert done["code"] == 200, done
    result = done["body"]
    # The provider understood image_size and num_images: two 64x96 images came back.
    assert [(i["width"], i["height"]) for i in result["images"]] == [(64, 96), (64, 96)]
    usage = result["usage"]
    assert usage["device"] == "remote" and usage["remote_s"] > 0
    assert usage["cost_usd"] == pytest.approx(2 * 0.001 + 0.01 * usage["remote_s"], abs=1e-6)


def test_input_files_go_to_the_provider(stack: Stack) -> None:
    red, blue = png(64, 64, (220, 20, 20)), png(64, 64, (20, 20, 220))
    reds = run(stack, "prov/fal-img2img", {"prompt": "a lantern", "image": red, "seed": 2})
    blues = run(stack, "prov/fal-img2img", {"prompt": "a lantern", "image": blue, "seed": 2})
    assert reds["code"] == 200 and blues["code"] == 200, (reds, blues)
    pictures = []
    with stack.http() as http:
        for done in (reds, blues):
            image = done["body"]["images"][0]
            assert image["url"].startswith(stack.router.base) and (image["width"], image["height"]) == (64, 64)
            pictures.append(Image.open(io.BytesIO(http.get(image["url"]).content)).convert("RGB"))
    # Same prompt and seed, other input image: other pixels (the tiny model's random weights keep
    # no colour, but its output follows its input).
    assert pictures[0].tobytes() != pictures[1].tobytes()
    with stack.http(stack.provider) as provider:
        remote_id = reds["body"]["provider"]["request_id"]
        remote = provider.get(f"/v1/queue/limner/tiny-sd-img2img/requests/{remote_id}").json()
        sent = Image.open(io.BytesIO(provider.get(remote["input"]["image"]).content)).convert("RGB")
    assert sent.size == (64, 64) and sent.getpixel((10, 10)) == (220, 20, 20)  # the provider got the red input


def test_a_text_model_behind_fal_queue(stack: Stack) -> None:
    done = run(stack, "prov/fal-llm", {"prompt": "say something", "seed": 3})
    assert done["code"] == 200, done
    result = done["body"]
    assert isinstance(result["output"], str) and result["finish_reason"] in ("stop", "length")
    assert result["usage"]["output_tokens"] >= 1 and result["usage"]["cost_usd"] == pytest.approx(0.0001)


def test_fal_client_and_a_webhook_on_a_route(stack: Stack) -> None:
    hostport = stack.router.base.removeprefix("https://")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("FAL_", "LIMNER_"))},
        "FAL_KEY": "any-key-the-router-has-keys-off",
        "FAL_QUEUE_RUN_HOST": f"{hostport}/v1/queue",
        "FAL_RUN_HOST": f"{hostport}/v1/run",
        "SSL_CERT_FILE": str(stack.cert),
    }
    with receiver() as hook:
        done = subprocess.run(
            [sys.executable, str(ROOT / "tests" / "fal_route_scenario.py"), "route/unavailable-first", hook.url],
            env=env, cwd=ROOT, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-4000:]
        seen = json.loads(done.stdout.strip().splitlines()[-1])
        hooked = seen["hooked"]
        hook.wait_for(lambda _r: any(m.json["type"] == "request.completed" for m in hook.for_request(hooked)))
        messages = hook.verified(WEBHOOK_SECRET, hooked)
    assert seen["updates"][-1] == "Completed"
    assert seen["images"] == [[64, 64], [64, 64]]  # fal's image_size and num_images, through the route
    assert seen["routing"]["served_by"] == "prov/remote-sd"
    final = messages[-1]
    assert final["status"] == "OK" and final["payload"]["routing"]["served_by"] == "prov/remote-sd"
    assert final["payload"]["images"][0]["url"].startswith(stack.router.base)
