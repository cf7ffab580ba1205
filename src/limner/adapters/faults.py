"""Family ``faults``: a text-to-image "model" that fails on request, for fault drills.

Operators and tests point a catalog entry at it to watch how limner behaves when a model
raises, runs out of memory, hangs, or takes its process down, without needing a broken
real model. The prompt says what to do:

    raise     the model raises (error_type model_error)
    oom       the model runs out of memory (error_type out_of_memory, retried per policy)
    hang      the model never returns (the batch timeout fails it; the worker is replaced)
    exit      the process dies mid-job (a poison job: retried until out of attempts)
    steps:N   N steps of 50 ms each, with progress and cancellation
    flaky:N:name  raises the first N times this worker runs a job with this prompt, then
              succeeds (a transient failure: what a workflow step's retries are for)
    anything else: a plain image of the requested size, colored by the seed

No torch: it costs nothing to load.
"""

from __future__ import annotations

import os
import time
from collections import Counter

from PIL import Image

from limner.adapters.base import Chunk, FamilyAdapter, JobOutput, LoadedModel, LoadEnv, RunContext, WorkItem
from limner.catalog.entry import CatalogEntry
from limner.media.images import encode_image
from limner.progress import Stage
from limner.tasks.image import TextToImageInput


class FaultsAdapter(FamilyAdapter[TextToImageInput, str, list[Image.Image]]):
    rows_per_call = 1

    # 1. load: nothing to load.
    def load(self, entry: CatalogEntry, env: LoadEnv) -> LoadedModel:
        # The handle counts the runs of each flaky prompt (per worker process).
        return LoadedModel(handle=Counter[str](), revision="faults-1", size_bytes=0, device=env.device)

    def unload(self, model: LoadedModel) -> None:
        model.handle = None

    # 2. check: nothing; 3. prepare: the prompt is the instruction.
    def prepare(
        self, model: LoadedModel, entry: CatalogEntry, items: list[WorkItem[TextToImageInput]], ctx: RunContext
    ) -> list[list[str]]:
        return [[item.input.prompt.strip()] for item in items]

    # 4. call
    def call(
        self, model: LoadedModel, entry: CatalogEntry, chunk: Chunk[TextToImageInput, str]
    ) -> list[list[Image.Image]]:
        [prompt], spec = chunk.rows, chunk.input
        if prompt == "raise":
            raise RuntimeError("injected fault: the model raised")
        if prompt == "oom":
            raise MemoryError("injected fault: the model ran out of memory")
        if prompt == "hang":
            while True:
                time.sleep(3600)
        if prompt == "exit":
            os._exit(3)
        if prompt.startswith("flaky:"):
            failures = int(prompt.split(":")[1])
            runs: Counter[str] = model.handle
            runs[prompt] += 1
            if runs[prompt] <= failures:
                raise RuntimeError(f"injected fault: failure {runs[prompt]} of {failures} for {prompt!r}")
        if prompt.startswith("steps:"):
            total = int(prompt.split(":", 1)[1])
            chunk.ctx.stage(Stage.DENOISING)
            for step in range(total):
                time.sleep(0.05)
                chunk.step(step + 1, total)
        seed = spec.chosen_seed()
        color = (seed * 53 % 256, seed * 97 % 256, seed * 193 % 256)
        return [[Image.new("RGB", spec.output_size(), color) for _ in range(spec.num_outputs)]]

    # 5. encode
    def encode(
        self,
        model: LoadedModel,
        entry: CatalogEntry,
        item: WorkItem[TextToImageInput],
        results: list[list[Image.Image]],
        ctx: RunContext,
    ) -> JobOutput:
        return JobOutput(files={"images": [encode_image(image, item.input.output_format) for image in results[0]]})


def make_adapter() -> FaultsAdapter:
    return FaultsAdapter()
