"""The routing tests' two limners: a provider (over TLS, API keys on) and a router in front of it.

The "remote provider" is a second limner on loopback over TLS with API keys on: its fal queue
routes are the provider of the ``fal-queue`` entries, and its OpenAI routes the one of the
``openai-images`` entries. The router is a limner (API + one worker, over TLS too, so fal-client
can call its routes) whose catalog names local tiny models, those provider entries, and routes
over both. Session-scoped (registered by tests/conftest.py): the provider-family tests and the
route tests share one pair of servers. A test that kills the provider revives it on its port.
"""

from __future__ import annotations

import re
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Live
from tests.live import create_key, start_live, stop_live
from tests.test_fal_tls import make_certificate

ROUTER_CATALOG = """
models:
  - id: test/local-sd
    task: text-to-image
    family: diffusers-image
    source: tiny://sd
    defaults: {width: 64, height: 64, num_inference_steps: 2, guidance_scale: 5.0}
    limits: {max_width: 128, max_height: 128, max_steps: 8}
    runtime: {dtype: float32, memory_mb: 64}
  - id: test/local-slow
    task: text-to-image
    family: diffusers-image
    source: tiny://sd
    defaults: {width: 64, height: 64, num_inference_steps: 40, guidance_scale: 5.0}
    limits: {max_width: 128, max_height: 128, max_steps: 5000}
    runtime: {dtype: float32, memory_mb: 64}
  - id: test/local-broken
    task: text-to-image
    family: diffusers-image
    source: hf://limner-tests/not-on-this-machine
    defaults: {width: 64, height: 64, num_inference_steps: 2}
    runtime: {dtype: float32}
  - id: prov/remote-sd
    task: text-to-image
    family: fal-queue
    source: {base}/v1/queue/limner/tiny-sd
    defaults: {width: 64, height: 64, num_inference_steps: 2}
    limits: {max_steps: 500}
    runtime: {api_key_env: PROVIDER_KEY, max_concurrency: 2, usd_per_output: 0.003}
  - id: prov/remote-slow
    task: text-to-image
    family: fal-queue
    source: {base}/v1/queue/test/slow-sd
    defaults: {width: 64, height: 64, num_inference_steps: 2}
    limits: {max_steps: 5000}
    runtime: {api_key_env: PROVIDER_KEY, usd_per_output: 0.003}
  - id: prov/openai-sd
    task: text-to-image
    family: openai-images
    source: {base}/v1
    defaults: {width: 64, height: 64}
    call_args: {model: limner/tiny-sd, num_inference_steps: 2}
    runtime: {api_key_env: PROVIDER_KEY, usd_per_output: 0.002}
  - id: prov/openai-extra
    task: text-to-image
    family: openai-images
    source: {base}/v1
    defaults: {width: 64, height: 64, num_inference_steps: 2}
    call_args: {model: limner/tiny-sd}
    runtime: {api_key_env: PROVIDER_KEY, extra_body: true}
  - id: prov/openai-img2img
    task: image-to-image
    family: openai-images
    source: {base}/v1
    call_args: {model: limner/tiny-sd-img2img, num_inference_steps: 2}
    runtime: {api_key_env: PROVIDER_KEY}
  - id: prov/openai-inpaint
    task: inpainting
    family: openai-images
    source: {base}/v1
    call_args: {model: limner/tiny-sd-inpaint, num_inference_steps: 2}
    runtime: {api_key_env: PROVIDER_KEY}
  - id: prov/fal-named
    task: text-to-image
    family: fal-queue
    source: {base}/v1/queue/limner/tiny-sd
    defaults: {width: 64, height: 64, num_inference_steps: 2}
    runtime: {api_key_env: PROVIDER_KEY, input_names: fal, usd_per_output: 0.001, usd_per_second: 0.01}
  - id: prov/fal-img2img
    task: image-to-image
    family: fal-queue
    source: {base}/v1/queue/limner/tiny-sd-img2img
    defaults: {num_inference_steps: 2, strength: 0.5}
    runtime: {api_key_env: PROVIDER_KEY}
  - id: prov/fal-llm
    task: text-generation
    family: fal-queue
    source: {base}/v1/queue/limner/tiny-llama
    defaults: {max_tokens: 8, temperature: 0}
    runtime: {api_key_env: PROVIDER_KEY, usd_per_output: 0.0001}
  - id: prov/openai-chat
    task: text-generation
    family: openai-images
    source: {base}/v1
    defaults: {temperature: 0}
    limits: {max_output_tokens: 5000}
    call_args: {model: test/slow-llama}
    runtime: {api_key_env: PROVIDER_KEY, usd_per_output: 0.0002}
  - id: prov/no-key
    task: text-to-image
    family: fal-queue
    source: {base}/v1/queue/limner/tiny-sd
    runtime: {api_key_env: NOT_SET_ANYWHERE}

routes:
  - id: route/unavailable-first
    task: text-to-image
    targets: [{model: test/local-broken}, {model: prov/remote-sd}]
  - id: route/cheapest
    task: text-to-image
    strategy: lowest-cost
    targets: [{model: prov/remote-sd}, {model: prov/openai-sd}]
  - id: route/strict
    task: text-to-image
    params: strict
    targets: [{model: test/local-sd}]
  - id: route/coerce
    task: text-to-image
    params: coerce
    targets: [{model: test/local-sd}]
  - id: route/no-fallback-on-422
    task: text-to-image
    targets: [{model: prov/remote-sd}, {model: test/local-sd}]
  - id: route/budget
    task: text-to-image
    latency_budget_s: 8
    targets: [{model: test/local-slow}, {model: prov/remote-sd}]
  - id: route/lanes
    task: text-to-image
    targets: [{model: prov/remote-sd, when: {priority: [high]}}, {model: test/local-sd}]
  - id: route/cancel
    task: text-to-image
    targets: [{model: prov/remote-slow}]
  - id: route/remote-first
    task: text-to-image
    params: coerce
    cooldown: {failures: 1, seconds: 20}
    targets: [{model: prov/remote-slow}, {model: test/local-sd}]
"""


@dataclass
class Stack:
    provider: Live
    router: Live
    key: str
    cert: Path
    provider_catalog: Path
    tls: list[str]
    seen: list[str] = field(default_factory=list)  # every response body the tests read

    def revive_provider(self) -> None:
        """The provider again, on its port and with its store (its keys), after a test killed it."""
        for proc in (self.provider.worker, self.provider.api):
            if proc.alive():
                proc.stop()
        self.provider = start_live(
            self.provider_catalog,
            serve_args=self.tls,
            scheme="https",
            verify=str(self.cert),
            home=self.provider.home,
            port=int(self.provider.base.rsplit(":", 1)[1]),
        )
        # The jobs it had when it died would run again (their leases lapse): the killed test's
        # long jobs are nobody's now, so cancel them, or the next tests wait behind them.
        with self.http(self.provider) as http:
            for status in ("IN_PROGRESS", "IN_QUEUE"):
                for job in http.get("/v1/requests", params={"status": status}).json()["requests"]:
                    http.put(f"/v1/queue/{job['model_id']}/requests/{job['request_id']}/cancel")

    def http(self, live: Live | None = None) -> httpx.Client:
        live = live or self.router
        client = live.client()
        if live is self.provider:
            client.headers["Authorization"] = f"Key {self.key}"
        client.event_hooks["response"] = [self._keep]
        return client

    def _keep(self, response: httpx.Response) -> None:
        response.read()
        self.seen.append(response.text)


@pytest.fixture(scope="session")
def stack(catalogs: tuple[Path, Path]) -> Iterator[Stack]:
    served, _ = catalogs
    cert, key_file = make_certificate(Path(tempfile.mkdtemp(prefix="limner-provider-")))
    tls = ["--tls-cert", str(cert), "--tls-key", str(key_file)]
    provider = start_live(served, serve_args=tls, scheme="https", verify=str(cert))
    key = create_key(provider.home, provider.env, "router", base=provider.base, verify=str(cert))
    folder = Path(tempfile.mkdtemp(prefix="limner-router-"))
    catalog = folder / "router.yaml"
    catalog.write_text(ROUTER_CATALOG.replace("{base}", provider.base))
    router = start_live(
        catalog,
        serve_args=tls,
        env={"PROVIDER_KEY": key, "SSL_CERT_FILE": str(cert)},
        scheme="https",
        verify=str(cert),
    )
    made_stack = Stack(provider, router, key, cert, served, tls)
    yield made_stack
    stop_live(router)
    if made_stack.provider.api.alive():
        stop_live(made_stack.provider)


def run(stack: Stack, model: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> dict[str, Any]:
    """Submit to the router and wait for the end; the final status plus the result (or error)."""
    with stack.http() as http:
        submitted = http.post(f"/v1/queue/{model}", json=body, headers=headers or {})
        assert submitted.status_code == 202, submitted.text
        return wait_end(http, model, submitted.json()["request_id"])


def wait_end(http: httpx.Client, model: str, request_id: str) -> dict[str, Any]:
    while True:
        status = http.get(f"/v1/queue/{model}/requests/{request_id}/status", params={"logs": 1}).json()
        if status["status"] == "COMPLETED":
            answer = http.get(f"/v1/queue/{model}/requests/{request_id}")
            return {"status": status, "code": answer.status_code, "body": answer.json()}
        time.sleep(0.1)


def remote_request_of(http: httpx.Client, route: str, request_id: str) -> tuple[str, str]:
    """(attempt job id, the provider's request id) of a route job's running attempt."""
    while True:
        logs = http.get(f"/v1/queue/{route}/requests/{request_id}/status", params={"logs": 1}).json()["logs"]
        attempts = [m.group(1) for line in logs if (m := re.search(r"\(request ([0-9a-f-]{36})\)", line["message"]))]
        if attempts:
            child = attempts[-1]
            child_logs = http.get(f"/v1/queue/prov/remote-slow/requests/{child}/status", params={"logs": 1}).json()
            found = [re.search(r"provider as request ([0-9a-f-]{36})", ln["message"]) for ln in child_logs["logs"]]
            remote = next((m.group(1) for m in found if m), None)
            if remote:
                return child, remote
        time.sleep(0.1)
