"""Family ``faults``: a text-to-image "model" that fails on request, for fault drills.

Operators and tests point a catalog entry at it to watch how limner behaves when a model
raises, runs out of memory, hangs, or takes its process down, without needing a broken
real model. The prompt says what to do:

    raise     the model raises (error_type model_error)
    oom       the model runs out of memory (error_type out_of_memory, retried per policy)
    hang      the model never returns (the batch timeout fails it; the worker is replaced)
    exit      the process dies mid-job (a poison job: retried until out of attempts)
    steps:N   N steps of 50 ms each, with progress and cancellation
    anything else: a plain image of the requested size, colored by the seed

No torch: it costs nothing to load.
"""

from __future__ import annotations

import os
import time

from PIL import Image

from limner import progress
from limner.adapters.base import JobOutput, LoadedModel, LoadEnv, RunContext, WorkItem
from limner.catalog.entry import CatalogEntry
from limner.media.images import encode_image


class FaultsAdapter:
    # 1. load: nothing to load.
    def load(self, entry: CatalogEntry, env: LoadEnv) -> LoadedModel:
        return LoadedModel(handle=None, revision="faults-1", size_bytes=0, device=env.device)

    def unload(self, model: LoadedModel) -> None:
        model.handle = None

    def run(self, model: LoadedModel, entry: CatalogEntry, items: list[WorkItem], ctx: RunContext) -> list[JobOutput]:
        outputs = []
        for item in items:
            # 2. check: the prompt is the instruction.
            prompt = str(item.input["prompt"]).strip()
            # 3. run
            if prompt == "raise":
                raise RuntimeError("injected fault: the model raised")
            if prompt == "oom":
                raise MemoryError("injected fault: the model ran out of memory")
            if prompt == "hang":
                while True:
                    time.sleep(3600)
            if prompt == "exit":
                os._exit(3)
            if prompt.startswith("steps:"):
                total = int(prompt.split(":", 1)[1])
                ctx.stage(progress.DENOISING)
                for step in range(total):
                    if ctx.should_stop():
                        break
                    time.sleep(0.05)
                    ctx.step(step + 1, total)
            # 4. encode
            seed = int(item.input.get("seed") or 0)
            color = (seed * 53 % 256, seed * 97 % 256, seed * 193 % 256)
            files = []
            for _ in range(int(item.input.get("num_outputs", 1))):
                image = Image.new("RGB", (int(item.input["width"]), int(item.input["height"])), color)
                files.append(encode_image(image, str(item.input.get("output_format", "png"))))
            outputs.append(JobOutput(files={"images": files}))
        return outputs


def make_adapter() -> FaultsAdapter:
    return FaultsAdapter()
