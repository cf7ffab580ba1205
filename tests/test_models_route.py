"""/v1/models tells the truth per model: only its task's limits, and whether this server can
run it (available: {ok, reason}) as its workers see it."""

from __future__ import annotations

import httpx
import pytest

from limner.catalog import load_catalog
from limner.tasks import TASKS, Limits


def models(http: httpx.Client) -> dict[str, dict[str, object]]:
    return {m["id"]: m for m in http.get("/v1/models").json()["models"]}


def test_each_model_shows_only_its_tasks_limits(http: httpx.Client) -> None:
    listed = models(http)
    removal = listed["google/mediapipe-selfie-background-removal"]["limits"]
    assert isinstance(removal, dict)
    assert "voices" not in removal and "max_frames" not in removal and "max_steps" not in removal
    assert set(removal) == {"max_input_bytes", "max_input_pixels"}
    speech = listed["limner/piper-joe-us"]["limits"]
    assert isinstance(speech, dict) and "voices" in speech and "max_width" not in speech
    image = listed["limner/tiny-sd"]["limits"]
    assert isinstance(image, dict) and {"max_width", "max_pixels", "max_steps"} <= set(image)
    assert "max_input_bytes" not in image  # text-to-image takes no file (IP-Adapter entries do)


@pytest.mark.parametrize(
    ("model", "ok", "words"),
    [
        ("limner/tiny-sd", True, "tiny random-weight build"),
        ("xinntao/realesrgan-x4plus", True, "ready"),
        ("test/offline-hub", False, "not in the local Hugging Face cache"),
        ("black-forest-labs/flux.1-schnell", False, "HF_HUB_OFFLINE=1"),
        ("ZhengPeng7/BiRefNet", False, "runtime.trust_remote_code: true"),
        ("test/nf4-sd", False, "needs a CUDA worker"),
        ("test/fp16-sd", False, "needs a GPU worker"),
    ],
)
def test_available_says_what_this_server_can_run_and_why_not(
    http: httpx.Client, model: str, ok: bool, words: str
) -> None:
    available = http.get(f"/v1/models/{model}").json()["available"]
    assert available["ok"] is ok and words in available["reason"], available


def test_the_listing_filters_by_availability(http: httpx.Client) -> None:
    runnable = {m["id"] for m in http.get("/v1/models", params={"available": "true"}).json()["models"]}
    not_here = {m["id"] for m in http.get("/v1/models", params={"available": "false"}).json()["models"]}
    assert "limner/tiny-sd" in runnable and "test/offline-hub" in not_here and not runnable & not_here


class Recording(Limits):
    """Limits that remember which of them were read."""

    def __getattribute__(self, name: str) -> object:
        if name in Limits.model_fields:
            object.__getattribute__(self, "__dict__").setdefault("_read", set()).add(name)
        return super().__getattribute__(name)


@pytest.mark.parametrize("task", sorted(TASKS))
def test_a_tasks_declared_limits_cover_every_limit_its_checks_read(task: str) -> None:
    spec = TASKS[task]
    entry = next(e for e in load_catalog() if e.task == task)
    limits = Recording(**entry.limits.model_dump())
    spec.input_model.schema_limits(limits)
    placeholders = {n: "x" for n, f in spec.input_model.model_fields.items() if f.is_required()}
    placeholders |= spec.input_model.catalog_placeholders  # text-generation: a prompt or messages
    spec.input_model.model_validate({**placeholders, **entry.defaults}).check_limits(limits)
    read = limits.__dict__.get("_read", set())
    assert read <= set(spec.input_model.limit_names()), read - set(spec.input_model.limit_names())
    if task == "text-to-image":  # the recording itself works
        assert {"max_pixels", "max_width", "max_steps", "max_prompt_chars"} <= read
