"""Shared fixtures: real stores (SQLite and PostgreSQL), and a live limner (API + worker)."""

from __future__ import annotations

import os
import ssl
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.s3 import S3Server
from tests.services import Postgres, Proc, child_env, free_port, pg_bin, wait_http, wait_workers

TEST_CATALOG = """
models:
  - id: test/slow-sd
    task: text-to-image
    family: diffusers-image
    source: tiny://sd
    title: Tiny SD with room for many steps (for cancel and crash tests)
    defaults: {width: 64, height: 64, num_inference_steps: 4, guidance_scale: 5.0}
    limits: {max_width: 256, max_height: 256, max_steps: 5000, max_outputs: 2}
    runtime: {dtype: float32, max_batch_size: 1, memory_mb: 64}
  - id: test/faults
    task: text-to-image
    family: faults
    source: builtin://faults
    title: Fails on request (see limner.adapters.faults)
    defaults: {width: 64, height: 64, num_inference_steps: 1}
    runtime: {timeout_s: 4, max_attempts: 2}
  - id: test/slow-wan
    task: text-to-video
    family: wan
    source: tiny://wan
    title: Tiny Wan with room for many steps (for video cancel tests)
    defaults: {width: 32, height: 32, num_frames: 5, fps: 8, num_inference_steps: 4}
    limits: {min_width: 16, min_height: 16, max_width: 64, max_height: 64, size_multiple: 16, frames_multiple: 4,
             max_steps: 5000}
    runtime: {dtype: float32, memory_mb: 64}
    call_args: {max_sequence_length: 64}
  - id: test/slow-controlnet
    task: text-to-image
    family: diffusers-controlnet
    source: tiny://sd
    title: Tiny SD + canny ControlNet with room for many steps (for cancel tests)
    defaults: {width: 64, height: 64, num_inference_steps: 4, guidance_scale: 5.0}
    limits: {max_width: 128, max_height: 128, max_steps: 5000}
    runtime: {dtype: float32, controlnet: "tiny://sd-controlnet", control_type: canny, memory_mb: 64}
  - id: test/slow-llama
    task: text-generation
    family: transformers-causal-lm
    source: tiny://llama
    title: Tiny Llama with room for many tokens (for streaming and cancel tests)
    limits: {max_output_tokens: 1900}
    runtime: {dtype: float32, memory_mb: 16}
    call_args: {min_new_tokens: 1900}  # random weights end turns at random: never here
  - id: test/short-llama
    task: text-generation
    family: transformers-causal-lm
    source: tiny://llama
    title: Tiny Llama that takes 32 prompt tokens at most
    limits: {max_input_tokens: 32}
    runtime: {dtype: float32, memory_mb: 16}
  - id: test/nf4-llama
    task: text-generation
    family: transformers-causal-lm
    source: tiny://llama
    title: Tiny Llama in 4-bit NF4 (CUDA only)
    runtime: {quantization: nf4, offload: model}
  - id: test/fp16-llama
    task: text-generation
    family: transformers-causal-lm
    source: tiny://llama
    title: Tiny Llama in float16 (GPU only)
    runtime: {dtype: float16}
  - id: test/bf16-llama
    task: text-generation
    family: transformers-causal-lm
    source: tiny://llama
    title: Tiny Llama in bfloat16 (runs on the CPU)
    runtime: {dtype: bfloat16, memory_mb: 16}
  - id: test/small-idefics3
    task: image-to-text
    family: transformers-vlm
    source: tiny://idefics3
    title: Tiny Idefics3 that takes images of 4096 pixels at most
    defaults: {max_tokens: 32}
    limits: {max_input_pixels: 4096, max_output_tokens: 64}
    runtime: {dtype: float32, memory_mb: 16}
  - id: test/offline-hub
    task: text-to-image
    family: diffusers-image
    source: hf://limner-tests/not-on-this-machine
    title: A hub model this machine cannot reach
    defaults: {width: 64, height: 64, num_inference_steps: 2}
    runtime: {dtype: float32}
  - id: test/small-inputs-img2img
    task: image-to-image
    family: diffusers-image
    source: tiny://sd
    title: Image to image with a small input-file limit
    defaults: {num_inference_steps: 2}
    limits: {max_input_bytes: 100000, max_input_pixels: 65536}
    runtime: {dtype: float32, memory_mb: 64}
  - id: test/nf4-sd
    task: text-to-image
    family: diffusers-image
    source: tiny://sd
    title: 4-bit NF4 weights, which need bitsandbytes and a CUDA GPU
    defaults: {width: 64, height: 64, num_inference_steps: 2}
    runtime: {quantization: nf4, offload: model}
  - id: test/fp16-sd
    task: text-to-image
    family: diffusers-image
    source: tiny://sd
    title: float16 weights, which a CPU worker refuses
    defaults: {width: 64, height: 64, num_inference_steps: 2}
    runtime: {dtype: float16}
  - id: test/bf16-sd
    task: text-to-image
    family: diffusers-image
    source: tiny://sd
    title: bfloat16 weights, which run on the CPU too
    defaults: {width: 64, height: 64, num_inference_steps: 2}
    runtime: {dtype: bfloat16, vae_slicing: true, memory_mb: 64}
  - id: test/approximate-sd
    task: text-to-image
    family: diffusers-image
    source: tiny://sd
    title: Tiny SD with semantic and approximate caching
    defaults: {width: 64, height: 64, num_inference_steps: 20, guidance_scale: 5.0}
    runtime: {dtype: float32, max_batch_size: 4, memory_mb: 64}
    cache: {mode: semantic, semantic: true, approximate: {enabled: true}}

workflows:
  - id: test/chain
    title: Draft, then restyle the draft
    inputs:
      prompt: {type: string, required: true}
      seed: {type: integer}
    steps:
      - id: draft
        model: limner/tiny-sd
        input: {prompt: $input.prompt, seed: $input.seed, num_inference_steps: 2}
      - id: restyle
        model: limner/tiny-sd-img2img
        input: {image: $draft.images.0.url, prompt: "${input.prompt}, oil painting", seed: $input.seed,
                num_inference_steps: 2}
    output: {images: $restyle.images, draft: $draft.images.0.url}
  - id: test/fan-out
    title: Two independent steps, then one image per colour (for_each), then a pick (when)
    inputs:
      colours: {type: list, required: true}
      upscale: {type: boolean, default: false}
    steps:
      - id: left
        model: test/faults
        input: {prompt: "steps:10", seed: 1}
      - id: right
        model: test/faults
        input: {prompt: "steps:10", seed: 2}
      - id: shades
        model: test/faults
        for_each: $input.colours
        input: {prompt: "a ${item} swatch, ${left.seed}", seed: $index}
      - id: big
        model: xinntao/realesrgan-x4plus
        when: $input.upscale
        input: {image: $right.images.0.url}
    output: {left: $left.images, right: $right.images, shades: $shades.images}
  - id: test/failing
    title: A step that raises, with retries
    inputs:
      fault: {type: string, default: raise}
    steps:
      - id: ok
        model: test/faults
        input: {prompt: plain, seed: 1}
      - id: boom
        model: test/faults
        retries: 1
        input: {prompt: $input.fault, seed: 2}
      - id: never
        model: test/faults
        input: {prompt: "after ${boom.seed}", seed: 3}
    output: {images: $never.images}
  - id: test/flaky
    title: A step that fails once and succeeds on its retry
    inputs:
      token: {type: string, required: true}
    steps:
      - id: shaky
        model: test/faults
        retries: 1
        input: {prompt: "flaky:1:${input.token}", seed: 5}
    output: {images: $shaky.images}
  - id: test/slow-steps
    title: A long step (for cancel)
    inputs:
      steps: {type: integer, default: 2000}
    steps:
      - id: long
        model: test/slow-sd
        input: {prompt: "a long one", num_inference_steps: $input.steps, seed: 1}
    output: {images: $long.images}
  - id: test/three-steps
    title: A short step, a long one, a short one (for kills mid-workflow)
    inputs:
      steps: {type: integer, default: 300}
    steps:
      - id: first
        model: test/faults
        input: {prompt: plain, seed: 1}
      - id: long
        model: test/slow-sd
        input: {prompt: "after ${first.seed}", num_inference_steps: $input.steps, seed: 2}
      - id: last
        model: test/faults
        input: {prompt: "done ${long.seed}", seed: 3}
    output: {images: $last.images}
  - id: test/timed
    title: A step that outlives its timeout
    steps:
      - id: long
        model: test/slow-sd
        timeout_s: 1.5
        input: {prompt: "too long", num_inference_steps: 4000, seed: 1}
    output: {images: $long.images}
"""

# Only the API knows this model, so its jobs stay queued: no worker can claim them.
UNSERVED_CATALOG = """
models:
  - id: test/unserved
    task: text-to-image
    family: diffusers-image
    source: tiny://sd
    defaults: {width: 64, height: 64, num_inference_steps: 2}
"""


@pytest.fixture(scope="session")
def catalogs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("catalog")
    served, unserved = folder / "test.yaml", folder / "unserved.yaml"
    served.write_text(TEST_CATALOG)
    unserved.write_text(UNSERVED_CATALOG)
    return served, unserved


# -- PostgreSQL ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    bindir = pg_bin()
    if bindir is None:
        if os.environ.get("LIMNER_REQUIRE_POSTGRES") == "1":
            pytest.fail("PostgreSQL binaries are not installed, and LIMNER_REQUIRE_POSTGRES=1")
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql)")
    server = Postgres(bindir)
    server.start()
    yield server
    server.destroy()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty job store of each kind."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'limner.db'}"
    server: Postgres = request.getfixturevalue("postgres")
    server.reset()
    return server.url


# -- S3 -----------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """An S3 protocol server (moto's server mode) on 127.0.0.1, for the whole session."""
    server = S3Server.start()
    yield server
    server.stop()


# -- a live limner ------------------------------------------------------------------------------


@dataclass
class Live:
    base: str
    home: Path
    api: Proc
    worker: Proc
    env: dict[str, str]
    verify: str | bool = True  # the CA file of a server with a self-made TLS certificate

    def client(self) -> httpx.Client:
        verify = ssl.create_default_context(cafile=self.verify) if isinstance(self.verify, str) else self.verify
        return httpx.Client(base_url=self.base, timeout=30, verify=verify)


@pytest.fixture(scope="session")
def live(catalogs: tuple[Path, Path]) -> Iterator[Live]:
    """``limner serve --workers 0`` plus one ``limner worker`` on the same SQLite store."""
    served, unserved = catalogs
    home = Path(tempfile.mkdtemp(prefix="limner-live-"))
    port = free_port()
    env = child_env(home)
    api = Proc(
        ["serve", "--workers", "0", "--port", str(port), "--catalog", str(served), "--catalog", str(unserved)],
        env,
        home / "api.log",
    )
    base = f"http://127.0.0.1:{port}"
    wait_http(f"{base}/healthz", api)
    worker = Proc(["worker", "--catalog", str(served)], env, home / "worker.log")
    wait_workers(base, 1)
    yield Live(base=base, home=home, api=api, worker=worker, env=env)
    worker.stop()
    api.stop()


@pytest.fixture
def http(live: Live) -> Iterator[httpx.Client]:
    with live.client() as client:
        yield client


# -- the routing tests' provider and router (session-wide: shared by the modules that use them) --

from tests.routing_stack import stack  # noqa: E402, F401
