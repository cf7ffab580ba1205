"""Webhook delivery and API-key cost.

1. Deliveries per second: N jobs complete with a webhook each while the dispatcher is
   stopped; then the dispatcher (the product's own, on a real SQLite store, default poll and
   concurrency) drains the backlog to a loopback receiver. Baseline in the same run: the same
   number of plain signed POSTs from one thread pool of the same size, no store.
2. End-to-end latency, from a job's completion commit to the receiver having the message
   (p50/p99), with jobs completing at a steady pace while the dispatcher runs.
3. Submit latency with and without API-key auth, on one server in one run: submissions
   without keys, then a key is made with the CLI and the same load runs with it.

    .venv/bin/python benchmarks/webhooks.py [--jobs 400] [--submits 1500]
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.harness import Server, percentile, write_result
from limner.net.guard import parse_allow_list
from limner.settings import Settings
from limner.store.deliveries import Deliveries
from limner.store.engine import Engines, make_engines, upgrade
from limner.store.jobs import JobStore
from limner.store.queue import WorkQueue
from limner.store.records import NewJob
from limner.webhooks.sender import RetryPolicy, SenderConfig, WebhookSender
from limner.webhooks.signing import Signer, generate_secret

MODEL = "limner/tiny-sd"
BODY = {"prompt": "a product photo of a ceramic mug", "seed": 1, "num_inference_steps": 4}


class Receiver:
    def __init__(self) -> None:
        self.arrivals: dict[str, float] = {}
        self.lock = threading.Lock()
        box = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length") or 0))
                with box.lock:
                    box.arrivals.setdefault(self.headers.get("webhook-id", uuid.uuid4().hex), time.time())
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait(self, count: int, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while len(self.arrivals) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(self.arrivals)} of {count} webhooks arrived")
            time.sleep(0.005)


def complete_jobs(engines: Engines, url: str, count: int, pace_s: float = 0.0) -> dict[str, float]:
    """Submit, claim and complete ``count`` jobs; returns job id -> completion commit time."""
    store, queue = JobStore(engines, priority_step_s=30), WorkQueue(engines, lease_s=60)
    done: dict[str, float] = {}
    for _ in range(count):
        job = NewJob(
            str(uuid.uuid4()), "m/a", "text-to-image", "normal", {"prompt": "p"}, "k", uuid.uuid4().hex, None, 3, url
        )
        store.submit_many([job])
        queue.claim("bench", "m/a", "k", 1)
        queue.complete("bench", job.id, {"seed": 1})
        done[job.id] = time.time()
        if pace_s:
            time.sleep(pace_s)
    return done


def dispatcher_for(engines: Engines, settings: Settings) -> WebhookSender:
    config = SenderConfig(
        signer=Signer((generate_secret(),)),
        allow=parse_allow_list(["127.0.0.1"]),
        policy=RetryPolicy(settings.webhook_retry_schedule, settings.webhook_jitter),
        timeout_s=settings.webhook_timeout_s,
        poll_s=settings.webhook_poll_s,
        concurrency=settings.webhook_concurrency,
    )
    return WebhookSender(Deliveries(engines), config, lambda payload: payload)


def message_jobs(engines: Engines) -> dict[str, str]:
    return {d.id: d.job_id for d in Deliveries(engines).find(limit=100_000)}


def baseline_posts(url: str, count: int, concurrency: int) -> float:
    """Signed POSTs from a pool of the same size over one pooled client, no store: the HTTP
    ceiling here (the dispatcher opens a connection per attempt, for the pinning)."""
    signer = Signer((generate_secret(),))
    with httpx.Client(timeout=15, trust_env=False) as client:

        def post(index: int) -> None:
            body = f'{{"request_id":"{index}","status":"OK","payload":{{"seed":1}}}}'
            headers = {**signer.headers(f"msg_base{index}", int(time.time()), body), "content-type": "application/json"}
            client.post(url, content=body, headers=headers)

        started = time.perf_counter()
        with ThreadPoolExecutor(concurrency) as pool:
            list(pool.map(post, range(count)))
        return count / (time.perf_counter() - started)


def delivery_figures(jobs: int) -> dict[str, Any]:
    settings = Settings()
    receiver = Receiver()
    home = Path(tempfile.mkdtemp(prefix="limner-bench-webhooks-"))
    engines = make_engines(f"sqlite:///{home / 'limner.db'}")
    upgrade(engines)
    # 1. Drain a backlog.
    complete_jobs(engines, receiver.url, jobs)
    dispatcher = dispatcher_for(engines, settings)
    started = time.perf_counter()
    dispatcher.start()
    receiver.wait(jobs)
    drain_per_s = jobs / (time.perf_counter() - started)
    # 2. Latency at a steady pace, dispatcher running.
    before = len(receiver.arrivals)
    completed = complete_jobs(engines, receiver.url, jobs // 2, pace_s=0.02)
    receiver.wait(before + len(completed))
    dispatcher.stop()
    owners = message_jobs(engines)
    latencies = [
        (at - completed[owners[message]]) * 1000
        for message, at in receiver.arrivals.items()
        if owners.get(message) in completed
    ]
    engines.dispose()
    baseline = baseline_posts(Receiver().url, jobs, settings.webhook_concurrency)
    return {
        "jobs": jobs,
        "dispatcher": {"poll_s": settings.webhook_poll_s, "concurrency": settings.webhook_concurrency},
        "deliveries_per_s": drain_per_s,
        "baseline_plain_posts_per_s": baseline,
        "ratio_to_baseline": drain_per_s / baseline,
        "latency_ms": {"p50": percentile(latencies, 50), "p99": percentile(latencies, 99), "n": len(latencies)},
    }


async def submit_load(base: str, clients: int, requests: int, headers: dict[str, str]) -> dict[str, Any]:
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    counter = iter(range(requests))
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30, headers=headers) as http:

        async def client() -> None:
            for _ in counter:
                started = time.perf_counter()
                response = await http.post(f"/v1/queue/{MODEL}", json=BODY)
                latencies.append(time.perf_counter() - started)
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(clients)))
        elapsed = time.perf_counter() - started
    return {
        "per_s": requests / elapsed,
        "p50_ms": percentile(latencies, 50) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
        "statuses": statuses,
    }


def auth_figures(submits: int, clients: int) -> dict[str, Any]:
    with Server(workers=0) as server:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{server.base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        asyncio.run(submit_load(server.base, clients, 200, {}))  # warm-up
        open_run = asyncio.run(submit_load(server.base, clients, submits, {}))
        key = subprocess.run(
            [sys.executable, "-m", "limner", "keys", "create", "--name", "bench", "--home", str(server.home)],
            env=server.env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        while httpx.get(f"{server.base}/v1/models", timeout=5).status_code != 401:
            time.sleep(0.1)
        keyed = asyncio.run(submit_load(server.base, clients, submits, {"Authorization": f"Key {key}"}))
    return {
        "clients": clients,
        "requests": submits,
        "without_keys": open_run,
        "with_keys": keyed,
        "p50_cost_ms": keyed["p50_ms"] - open_run["p50_ms"],
        "ratio_p50": keyed["p50_ms"] / open_run["p50_ms"],
        "ratio_throughput": keyed["per_s"] / open_run["per_s"],
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=400)
    parser.add_argument("--submits", type=int, default=1500)
    parser.add_argument("--clients", type=int, default=32)
    args = parser.parse_args()
    delivery = delivery_figures(args.jobs)
    print(
        f"webhooks: {delivery['deliveries_per_s']:.0f} deliveries/s from the outbox "
        f"(plain signed POSTs: {delivery['baseline_plain_posts_per_s']:.0f}/s, "
        f"ratio {delivery['ratio_to_baseline']:.2f}); "
        f"completion -> receiver p50 {delivery['latency_ms']['p50']:.1f} ms, p99 {delivery['latency_ms']['p99']:.1f} ms"
    )
    auth = auth_figures(args.submits, args.clients)
    print(
        f"submit without keys: {auth['without_keys']['per_s']:.0f}/s p50 {auth['without_keys']['p50_ms']:.1f} ms "
        f"p99 {auth['without_keys']['p99_ms']:.1f} ms; with keys: {auth['with_keys']['per_s']:.0f}/s "
        f"p50 {auth['with_keys']['p50_ms']:.1f} ms p99 {auth['with_keys']['p99_ms']:.1f} ms"
    )
    write_result("webhooks", {"delivery": delivery, "api_key_auth": auth})


if __name__ == "__main__":
    main()
