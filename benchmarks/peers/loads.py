"""The client loads every stack gets: a closed loop, Poisson arrivals, and a run with a crash.

Each job is one image; its end-to-end time runs from the client sending it to the client holding
the PNG bytes, by whatever path the stack's own docs give a client: the PNG in the response
(LitServe, Ray Serve; BentoML's JSON list), limner's ``POST /v1/run`` and then the file, or
Celery's submit and then polling the task (every ``poll_s``).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from benchmarks.harness import percentile
from benchmarks.peers.stacks import Config, Stack

MODEL = "limner/tiny-sd"
TIMEOUT = httpx.Timeout(120.0, connect=5.0)
LIMITS = httpx.Limits(max_connections=512, max_keepalive_connections=512)


class JobFailed(Exception):
    """The stack answered that the job failed (or answered something that is not its PNG)."""


def job_body(cfg: Config, tag: str, seed: int) -> dict[str, Any]:
    return {
        "prompt": f"{tag} {seed}",
        "seed": seed,
        "width": cfg.width,
        "height": cfg.height,
        "num_inference_steps": cfg.steps,
        "guidance_scale": 5.0,
    }


class Client:
    def __init__(self, stack: Stack, http: httpx.AsyncClient, poll_s: float) -> None:
        self.stack, self.http, self.poll_s = stack, http, poll_s

    async def run(self, job: dict[str, Any]) -> bytes:
        """One job, end to end: its PNG."""
        kind = self.stack.client
        if kind == "limner":
            response = await self.http.post(f"{self.stack.url}/v1/run/{MODEL}", json=job)
            if response.status_code != 200:
                raise JobFailed(f"{response.status_code} {response.text[:200]}")
            file = await self.http.get(response.json()["images"][0]["url"])
            return png_of(file)
        if kind == "celery":
            return await self.wait(await self.submit(job), deadline=time.monotonic() + 600)
        if kind == "bentoml":
            response = await self.http.post(f"{self.stack.url}{self.stack.path}", json={"jobs": [job]})
            if response.status_code != 200:
                raise JobFailed(f"{response.status_code} {response.text[:200]}")
            return base64.b64decode(response.json()[0])
        response = await self.http.post(f"{self.stack.url}{self.stack.path}", json=job)
        return png_of(response)

    async def submit(self, job: dict[str, Any]) -> str:
        """Async stacks only: queue the job, its id once the stack accepted it."""
        if self.stack.client == "limner":
            response = await self.http.post(f"{self.stack.url}/v1/queue/{MODEL}", json=job)
            if response.status_code != 202:
                raise JobFailed(f"{response.status_code} {response.text[:200]}")
            return str(response.json()["request_id"])
        response = await self.http.post(f"{self.stack.url}/generate", json=job)
        if response.status_code != 200:
            raise JobFailed(f"{response.status_code} {response.text[:200]}")
        return str(response.json()["task_id"])

    async def wait(self, job_id: str, deadline: float, *, tolerate_down: bool = False) -> bytes:
        """Poll an accepted job until it succeeded (its PNG) or failed; TimeoutError at ``deadline``.
        With ``tolerate_down``, connection errors (the stack restarting) are polled through."""
        while time.monotonic() < deadline:
            try:
                if self.stack.client == "limner":
                    base = f"{self.stack.url}/v1/queue/{MODEL}/requests/{job_id}"
                    status = (await self.http.get(f"{base}/status")).json()
                    if status.get("state") == "succeeded":
                        result = (await self.http.get(base)).json()
                        return png_of(await self.http.get(result["images"][0]["url"]))
                    if status.get("state") in ("failed", "canceled"):
                        raise JobFailed(str(status.get("error")))
                else:
                    body = (await self.http.get(f"{self.stack.url}/tasks/{job_id}")).json()
                    if body["status"] == "SUCCESS":
                        return base64.b64decode(body["png"])
                    if body["status"] in ("FAILURE", "REVOKED"):
                        raise JobFailed(body["status"])
            except (httpx.TransportError, ValueError):
                if not tolerate_down:
                    raise
            await asyncio.sleep(self.poll_s)
        raise TimeoutError(job_id)


def png_of(response: httpx.Response) -> bytes:
    if response.status_code != 200 or not response.content.startswith(b"\x89PNG"):
        raise JobFailed(f"{response.status_code} {response.text[:200]}")
    return response.content


def client_for(stack: Stack, poll_s: float) -> tuple[Client, httpx.AsyncClient]:
    http = httpx.AsyncClient(timeout=TIMEOUT, limits=LIMITS)
    return Client(stack, http, poll_s), http


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    first_sent: float = float("inf")
    last_done: float = 0.0

    def row(self, submitted: int) -> dict[str, Any]:
        span = self.last_done - self.first_sent if self.latencies else 0.0
        row: dict[str, Any] = {
            "submitted": submitted,
            "completed": len(self.latencies),
            "errors": len(self.errors),
            "error_kinds": sorted(set(self.errors))[:3],
            "jobs_per_s": len(self.latencies) / span if span > 0 else 0.0,
        }
        for q in (50, 95, 99):
            row[f"p{q}_s"] = round(percentile(self.latencies, q), 4)
        return row


async def timed(client: Client, job: dict[str, Any], tally: Tally) -> None:
    sent = time.perf_counter()
    tally.first_sent = min(tally.first_sent, sent)
    try:
        await client.run(job)
    except (httpx.HTTPError, JobFailed, TimeoutError, KeyError, ValueError) as exc:
        tally.errors.append(type(exc).__name__)
        return
    done = time.perf_counter()
    tally.latencies.append(done - sent)
    tally.last_done = max(tally.last_done, done)


async def closed_loop(
    stack: Stack, cfg: Config, jobs: int, concurrency: int, tag: str, poll_s: float
) -> dict[str, Any]:
    """``concurrency`` clients, each sending its next job when its last one came back, until
    ``jobs`` are done: throughput at saturation."""
    client, http = client_for(stack, poll_s)
    tally = Tally()
    seeds = iter(range(jobs))

    async def one_client() -> None:
        for seed in seeds:
            await timed(client, job_body(cfg, tag, seed), tally)

    async with http:
        await asyncio.gather(*(one_client() for _ in range(concurrency)))
    return {"load": "closed", "concurrency": concurrency, **tally.row(jobs)}


def schedule(rate: float, duration: float, seed: int) -> list[float]:
    """Arrival offsets (seconds) of a Poisson process: exponential gaps, seeded."""
    rng = random.Random(seed)
    offsets, t = [], rng.expovariate(rate)
    while t < duration:
        offsets.append(t)
        t += rng.expovariate(rate)
    return offsets


async def poisson(stack: Stack, cfg: Config, rate: float, duration: float, seed: int, poll_s: float) -> dict[str, Any]:
    """Jobs arrive at the seeded offsets whatever happened to earlier ones (an open loop)."""
    client, http = client_for(stack, poll_s)
    tally = Tally()
    offsets = schedule(rate, duration, seed)
    start = time.perf_counter()

    async def arrive(index: int, offset: float) -> None:
        await asyncio.sleep(max(0.0, start + offset - time.perf_counter()))
        await timed(client, job_body(cfg, f"rate{rate:g}", 10_000 * seed + index), tally)

    async with http:
        await asyncio.gather(*(arrive(i, o) for i, o in enumerate(offsets)))
    return {"load": "poisson", "rate": rate, **tally.row(len(offsets))}


async def probe(stack: Stack, cfg: Config, within_s: float, poll_s: float, tag: str = "check", seed: int = 7) -> str:
    """Send the check job until one comes back (the stack is up and its model loaded); the
    sha256 of its PNG, the same for every stack if they run the same work. After a restart the
    probe is a new job (``tag``), so that limner's result cache cannot answer it."""
    client, http = client_for(stack, poll_s)
    deadline = time.monotonic() + within_s
    last: Exception | None = None
    async with http:
        while time.monotonic() < deadline:
            try:
                data = await asyncio.wait_for(client.run(job_body(cfg, tag, seed)), timeout=60)
                return hashlib.sha256(data).hexdigest()
            except (httpx.HTTPError, JobFailed, TimeoutError, KeyError, ValueError) as exc:
                last = exc
            if not stack.alive():
                raise RuntimeError(f"{stack.name} exited:\n{stack.logs()}")
            await asyncio.sleep(0.5)
    raise TimeoutError(f"{stack.name} not ready in {within_s:.0f} s ({last!r}):\n{stack.logs()}")


async def warm(stack: Stack, cfg: Config, replicas: int, poll_s: float) -> None:
    """Bursts of concurrent jobs, so that every replica has loaded the model and run a batch."""
    for burst in range(3):
        await closed_loop(
            stack,
            cfg,
            jobs=4 * replicas * cfg.max_batch,
            concurrency=2 * replicas * cfg.max_batch,
            tag=f"warm{burst}",
            poll_s=poll_s,
        )


async def crash_run(
    stack: Stack,
    cfg: Config,
    *,
    rate: float,
    duration: float,
    kill_at: float,
    bound_s: float,
    poll_s: float,
    restart: Callable[[], float],
) -> dict[str, Any]:
    """Poisson arrivals for ``duration`` s; at ``kill_at`` every process of the stack is
    SIGKILLed and ``restart`` (run in a thread) brings it back, returning its downtime. Then
    accepted jobs get up to ``bound_s`` to complete.

    A job is accepted when the stack gave it an id (limner's 202, Celery's task id) or, for the
    synchronous stacks, when its request was sent on an open connection (the server held it; only
    the answer tells the client more). Accepted jobs that never complete are lost. Requests the
    stack refused to connect while it was down are counted apart: their clients know to retry."""
    client, http = client_for(stack, poll_s)
    offsets = schedule(rate, duration, seed=99)
    counts = {"refused": 0, "unanswered": 0, "accepted": 0, "completed": 0, "failed": 0, "lost": 0}
    lock = threading.Lock()
    start = time.perf_counter()
    end_of_arrivals = time.monotonic() + duration
    downtime: list[float] = []
    killed: list[int] = []

    def count(key: str) -> None:
        with lock:
            counts[key] += 1

    async def arrive(index: int, offset: float) -> None:
        await asyncio.sleep(max(0.0, start + offset - time.perf_counter()))
        job = job_body(cfg, "crash", index)
        if stack.client in ("limner", "celery"):
            try:
                job_id = await client.submit(job)
            except httpx.ConnectError:
                return count("refused")
            except (httpx.HTTPError, JobFailed):
                return count("unanswered")
            count("accepted")
            try:
                await client.wait(job_id, deadline=end_of_arrivals + bound_s, tolerate_down=True)
                count("completed")
            except JobFailed:
                count("failed")
            except TimeoutError:
                count("lost")
            return
        try:
            await client.run(job)
            count("accepted")
            count("completed")
        except httpx.ConnectError:
            count("refused")
        except (httpx.TransportError, JobFailed, KeyError, ValueError):
            count("accepted")
            count("lost")

    async def killer() -> None:
        await asyncio.sleep(kill_at)
        killed.append(stack.crash())
        downtime.append(await asyncio.to_thread(restart))

    async with http:
        await asyncio.gather(killer(), *(arrive(i, o) for i, o in enumerate(offsets)))
    return {
        "rate": rate,
        "duration_s": duration,
        "kill_at_s": kill_at,
        "bound_s": bound_s,
        "processes_killed": killed[0] if killed else 0,
        "downtime_s": round(downtime[0], 2) if downtime else None,
        "submitted": len(offsets),
        **counts,
        "lost_or_failed": counts["lost"] + counts["failed"],
    }
