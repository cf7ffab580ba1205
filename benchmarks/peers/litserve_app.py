"""LitServe peer: a LitAPI with LitServe's own batching, as its docs show.

``setup`` loads the model once per worker, ``predict`` takes a batch (a list, collected by
LitServe up to ``max_batch_size`` or ``batch_timeout``), ``encode_response`` answers with the
PNG. Jobs live in LitServe's in-process queues only.

    .venv-peers/bin/python -m benchmarks.peers.litserve_app --port 8000 --model DIR
"""

# mypy: disable-error-code="import-not-found,misc"
# (litserve lives in .venv-peers only; LitAPI is untyped there, so subclassing it is Any)

# No `from __future__ import annotations`: LitServe reads decode_request's annotation at run time
# to build the route's request body (a pydantic model here; none would mean a raw Request).
import argparse
from typing import Any

import litserve as ls
from pydantic import BaseModel
from starlette.responses import Response

from benchmarks.peers.pipeline import generate, load, png


class Job(BaseModel):
    prompt: str
    seed: int
    width: int = 64
    height: int = 64
    num_inference_steps: int = 4
    guidance_scale: float = 5.0


class TinySDAPI(ls.LitAPI):
    def __init__(self, model_dir: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.model_dir = model_dir

    def setup(self, device: str) -> None:
        self.pipe = load(self.model_dir)

    def decode_request(self, request: Job) -> dict[str, Any]:
        return request.model_dump()

    def predict(self, batch: list[dict[str, Any]]) -> list[Any]:
        return generate(self.pipe, batch)

    def encode_response(self, output: Any) -> Response:
        return Response(content=png(output), media_type="image/png")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--max-batch", type=int, default=8)
    parser.add_argument("--batch-wait-s", type=float, default=0.01)
    args = parser.parse_args()
    api = TinySDAPI(args.model, max_batch_size=args.max_batch, batch_timeout=args.batch_wait_s)
    server = ls.LitServer(api, accelerator="cpu", workers_per_device=args.replicas, timeout=120)
    server.run(host="127.0.0.1", port=args.port, generate_client_file=False, log_level="warning")


if __name__ == "__main__":
    main()
