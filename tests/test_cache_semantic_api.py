"""Semantic cache hits through the HTTP API: a live API and worker over a tiny SD model whose
catalog entry opts in to semantic hits (the default method, slots). A paraphrase is served
the earlier image and says why; a change of one attribute (colour, negation, text to render)
runs the model; another project never sees the first project's results."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from limner.catalog.options import DEFAULT_SLOTS_THRESHOLD
from tests.jobs import result, wait_done
from tests.services import ROOT, Proc, child_env, free_port, wait_http, wait_workers

MODEL = "test/semantic-sd"
CATALOG = """
models:
  - id: test/semantic-sd
    task: text-to-image
    family: diffusers-image
    source: tiny://sd
    defaults: {width: 64, height: 64, num_inference_steps: 2, guidance_scale: 5.0}
    runtime: {dtype: float32, memory_mb: 64}
    cache: {mode: semantic, semantic: true}
"""


class Stack:
    def __init__(self, tmp: Path) -> None:
        catalog = tmp / "catalog.yaml"
        catalog.write_text(CATALOG)
        self.home = tmp / "home"
        self.env = child_env(self.home)
        self.keys = {project: self._key(project) for project in ("alpha", "beta")}
        self.base = f"http://127.0.0.1:{free_port()}"
        port = self.base.rsplit(":", 1)[1]
        self.api = Proc(["serve", "--workers", "0", "--port", port, "--catalog", str(catalog)], self.env, tmp / "a.log")
        wait_http(f"{self.base}/healthz", self.api)
        self.worker = Proc(["worker", "--catalog", str(catalog)], self.env, tmp / "worker.log")
        wait_workers(self.base, 1)

    def _key(self, project: str) -> str:
        made = subprocess.run(
            [sys.executable, "-m", "limner", "keys", "create", "--name", project, "--project", project],
            env=self.env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
        return made.stdout.strip()

    def close(self) -> None:
        self.worker.stop()
        self.api.stop()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    made = Stack(tmp_path_factory.mktemp("semantic"))
    yield made
    made.close()


def run(stack: Stack, prompt: str, project: str = "alpha", **extra: Any) -> dict[str, Any]:
    headers = {"Authorization": f"Key {stack.keys[project]}"}
    with httpx.Client(base_url=stack.base, timeout=60, headers=headers) as http:
        response = http.post(f"/v1/queue/{MODEL}", json={"prompt": prompt, **extra})
        assert response.status_code == 202, response.text
        request_id = response.json()["request_id"]
        assert wait_done(http, MODEL, request_id)["state"] == "succeeded"
        return {"request_id": request_id, **result(http, MODEL, request_id)}


def test_a_paraphrase_hits_and_explains_itself(stack: Stack) -> None:
    source = run(stack, "product photo of a red leather armchair in a sunny living room")
    assert "cache" not in source and source["usage"]["compute_s"] > 0
    hit = run(stack, "A red leather armchair in a sunlit living room, product photo.")
    assert hit["cache"] == {
        "hit": "semantic",
        "similarity": 1.0,
        "matched_prompt": "product photo of a red leather armchair in a sunny living room",
        "method": "slots",
        "source_request_id": source["request_id"],
        "saved_compute_s": pytest.approx(source["usage"]["compute_s"], abs=1e-3),
    }
    assert hit["images"][0]["url"] == source["images"][0]["url"] and hit["seed"] == source["seed"]
    assert hit["input"]["prompt"] == "A red leather armchair in a sunlit living room, product photo."

    # Only a soft word differs: the embedding of the normalised prompts decides, and says how close.
    soft = run(stack, "a beautiful red leather armchair in a sunny living room")
    assert soft["cache"]["hit"] == "semantic" and soft["cache"]["method"] == "slots"
    assert DEFAULT_SLOTS_THRESHOLD <= soft["cache"]["similarity"] < 1.0


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("a red dress on a mannequin, studio lighting", "a blue dress on a mannequin, studio lighting"),
        ("a coffee mug without a handle on a desk", "a coffee mug with a handle on a desk"),
        ("a neon sign that says 'OPEN' in a window", "a neon sign that says 'CLOSED' in a window"),
    ],
    ids=["colour", "negation", "quoted-text"],
)
def test_a_one_attribute_change_runs_the_model(stack: Stack, first: str, second: str) -> None:
    source = run(stack, first)
    assert run(stack, first.upper())["cache"]["source_request_id"] == source["request_id"]  # it is cached
    changed = run(stack, second)
    assert "cache" not in changed and changed["usage"]["compute_s"] > 0
    assert changed["images"][0]["url"] != source["images"][0]["url"]


def test_hits_stay_inside_the_project(stack: Stack) -> None:
    source = run(stack, "a wooden cabin in the snow at night, aerial view")
    assert run(stack, "aerial view of a wooden cabin in the snow at night")["cache"]["hit"] == "semantic"
    other = run(stack, "aerial view of a wooden cabin in the snow at night", project="beta")
    assert "cache" not in other and other["images"][0]["url"] != source["images"][0]["url"]


def test_parameters_and_seeds_are_not_paraphrased(stack: Stack) -> None:
    run(stack, "a green teapot on a marble countertop")
    assert "cache" not in run(stack, "a green teapot on marble countertop", width=128)
    assert "cache" not in run(stack, "a green teapot on marble countertop", seed=5)  # that seed's image
