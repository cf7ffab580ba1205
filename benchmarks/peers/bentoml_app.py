"""BentoML peer: a service with adaptive batching (``batchable=True``, ``max_batch_size``), as
BentoML's adaptive-batching guide shows. A batchable API takes one list argument: each client
sends a list of one job and gets back a list of one PNG, base64 in JSON (BentoML serializes an
image only as a whole response, not inside the list a batchable API returns). Jobs live in the
workers' memory only.

    PEER_MODEL_DIR=DIR .venv-peers/bin/bentoml serve benchmarks.peers.bentoml_app:TinySD --port 8000
"""

# mypy: disable-error-code="import-not-found,misc,untyped-decorator"
# (bentoml lives in .venv-peers only)

from __future__ import annotations

import base64
import os

import bentoml
from pydantic import BaseModel

from benchmarks.peers.pipeline import generate, load, png

REPLICAS = int(os.environ.get("PEER_REPLICAS", "2"))
MAX_BATCH = int(os.environ.get("PEER_MAX_BATCH", "8"))


class Job(BaseModel):
    prompt: str
    seed: int
    width: int = 64
    height: int = 64
    num_inference_steps: int = 4
    guidance_scale: float = 5.0


@bentoml.service(workers=REPLICAS, resources={"cpu": "1"}, traffic={"timeout": 120})
class TinySD:
    def __init__(self) -> None:
        self.pipe = load(os.environ["PEER_MODEL_DIR"])

    @bentoml.api(batchable=True, max_batch_size=MAX_BATCH)
    def generate(self, jobs: list[Job]) -> list[str]:
        images = generate(self.pipe, [job.model_dump() for job in jobs])
        return [base64.b64encode(png(image)).decode() for image in images]
