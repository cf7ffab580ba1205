"""FastAPI + Celery + Redis peer: the async pattern the seed names, as Celery's docs and the usual
FastAPI tutorial show. ``POST /generate`` queues a task with ``apply_async`` and answers its id;
``GET /tasks/{id}`` reports the task's state and, once it succeeded, its PNG (base64: the JSON
serializer). The worker loads the model in each pool process (``worker_process_init``) and runs
one task at a time per process; Celery has no batching of its own. The Redis server (Debian's
redis-server) is both broker and result backend.

Celery's defaults acknowledge a task when a worker receives it. PEER_ACKS_LATE=1 sets what the
docs advise for tasks that must survive a worker crash (``task_acks_late`` with
``task_reject_on_worker_lost``); on Redis an unacknowledged task comes back only after the
transport's visibility_timeout (default one hour).

    PEER_BROKER=redis://127.0.0.1:6379/0 PEER_MODEL_DIR=DIR \
        .venv-peers/bin/python -m celery -A benchmarks.peers.celery_app worker --concurrency 2
    .venv-peers/bin/python -m uvicorn benchmarks.peers.celery_app:api --port 8000
"""

# mypy: disable-error-code="import-not-found,misc,untyped-decorator"
# (celery lives in .venv-peers only)

from __future__ import annotations

import base64
import os
from typing import Any

from celery import Celery
from celery.result import AsyncResult
from celery.signals import worker_process_init
from fastapi import FastAPI
from pydantic import BaseModel

from benchmarks.peers.pipeline import generate, load, png

BROKER = os.environ.get("PEER_BROKER", "redis://127.0.0.1:6379/0")
app = Celery("peers", broker=BROKER, backend=BROKER)
app.conf.update(task_serializer="json", result_serializer="json", accept_content=["json"])
if os.environ.get("PEER_ACKS_LATE") == "1":
    app.conf.update(task_acks_late=True, task_reject_on_worker_lost=True)

_pipe: list[Any] = []  # the pool process's model, loaded once when the process starts


@worker_process_init.connect
def load_model(**_: Any) -> None:
    _pipe.append(load(os.environ["PEER_MODEL_DIR"]))


@app.task(name="peers.generate")
def generate_task(
    prompt: str, seed: int, width: int, height: int, num_inference_steps: int, guidance_scale: float
) -> str:
    job = {
        "prompt": prompt,
        "seed": seed,
        "width": width,
        "height": height,
        "num_inference_steps": num_inference_steps,
        "guidance_scale": guidance_scale,
    }
    return base64.b64encode(png(generate(_pipe[0], [job])[0])).decode()


class Job(BaseModel):
    prompt: str
    seed: int
    width: int = 64
    height: int = 64
    num_inference_steps: int = 4
    guidance_scale: float = 5.0


api = FastAPI()


@api.post("/generate")
def submit(job: Job) -> dict[str, str]:
    task = generate_task.apply_async(kwargs=job.model_dump())
    return {"task_id": str(task.id)}


@api.get("/tasks/{task_id}")
def status(task_id: str) -> dict[str, Any]:
    result = AsyncResult(task_id, app=app)
    if result.successful():
        return {"task_id": task_id, "status": "SUCCESS", "png": result.result}
    return {"task_id": task_id, "status": str(result.status)}


@api.get("/healthz")
def healthz() -> dict[str, bool]:
    return {"ok": True}
