"""Ray Serve peer: a plain deployment with ``@serve.batch``, as Ray Serve's batching guide shows,
without limner. Runs in limner's venv (ray[serve] is limner's `ray` extra) but imports nothing of
limner. This process starts a local Ray instance, runs the app and then waits; jobs live in the
proxy's and replicas' memory only.

    .venv/bin/python -m benchmarks.peers.ray_app --port 8000 --model DIR
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from benchmarks.peers.pipeline import generate, load, png


def build(model_dir: str, replicas: int, max_batch: int, batch_wait_s: float) -> Any:
    from ray import serve

    # Ray Serve's guide: max_ongoing_requests must be at least max_batch_size for batches to fill.
    @serve.deployment(num_replicas=replicas, ray_actor_options={"num_cpus": 1}, max_ongoing_requests=2 * max_batch)
    class TinySD:
        def __init__(self) -> None:
            self.pipe = load(model_dir)

        @serve.batch(max_batch_size=max_batch, batch_wait_timeout_s=batch_wait_s)
        async def handle_batch(self, jobs: list[dict[str, Any]]) -> list[bytes]:
            return [png(image) for image in generate(self.pipe, jobs)]

        async def __call__(self, request: Request) -> Response:
            job = await request.json()
            content: bytes = await self.handle_batch(job)
            return Response(content=content, media_type="image/png")

    return TinySD.bind()  # type: ignore[attr-defined]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--max-batch", type=int, default=8)
    parser.add_argument("--batch-wait-s", type=float, default=0.01)
    args = parser.parse_args()
    import ray
    from ray import serve

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a loopback cluster: no token
    ray.init(num_cpus=args.replicas, include_dashboard=False, log_to_driver=False)
    serve.start(http_options={"host": "127.0.0.1", "port": args.port})
    serve.run(build(args.model, args.replicas, args.max_batch, args.batch_wait_s), route_prefix="/")
    print("READY", flush=True)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
