"""limner/product-photo through the server (API + one worker: four step jobs, each claimed,
run, stored and completed, the workflow advanced between them) against the same four models
called in sequence in one process on the same inputs (each model warm, the files passed in
memory), rounds interleaved; then the same request again, served step by step from the cache;
then a batch of product photos, as images per hour on this machine.

    .venv/bin/python benchmarks/workflows.py [--rounds 5] [--size 96x72] [--batch-rows 200]

The seed's 200 images/hour is on 2x A100 with FLUX.1 [dev] and 1024 px images; this is tiny
SD, GrabCut and Real-ESRGAN on 2 CPU cores at a small size: a ratio on different hardware and
different models, not a comparison.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.jobs import data_uri
from tests.photos import studio_product

from benchmarks.harness import QuietContext, Server, write_result

WORKFLOW = "limner/product-photo"
NO_CACHE = {"X-Limner-Cache": "off"}


class InProcess:
    """The workflow's models loaded once in this process, called in the workflow's order."""

    def __init__(self) -> None:
        from limner.adapters import load_adapter
        from limner.adapters.base import LoadEnv
        from limner.catalog import load_catalog

        self.catalog = load_catalog()
        workflow = self.catalog.workflow(WORKFLOW)
        assert workflow is not None
        self.steps = {s.id: self.catalog.get(s.model) for s in workflow.steps}
        env = LoadEnv(device="cpu", models_dir=Path(tempfile.mkdtemp(prefix="limner-bench-wf-")))
        self.models: dict[str, Any] = {}
        for step, entry in self.steps.items():
            adapter = load_adapter(entry.family)
            self.models[step] = (adapter, adapter.load(entry, env))

    def _run(self, step: str, body: dict[str, Any], files: dict[str, bytes]) -> dict[str, Any]:
        from limner.adapters.base import WorkItem
        from limner.catalog.inputs import finalize_input, parse_input

        entry = self.steps[step]
        parsed = finalize_input(entry, parse_input(entry, {**body, **{k: f"storage://bench/{k}" for k in files}}))
        adapter, model = self.models[step]
        [output] = adapter.run(model, entry, [WorkItem("bench", parsed, files)], QuietContext())
        return {key: [f.data for f in media] for key, media in output.files.items()}

    def __call__(self, image: bytes, scene: str, seed: int, size: tuple[int, int]) -> bytes:
        cutout = self._run("cutout", {}, {"image": image})
        painted = self._run(
            "scene",
            # The API sets an image-to-image output size from the input image; here, by hand.
            {
                "prompt": f"{scene}, product photo",
                "seed": seed,
                "invert_mask": True,
                "width": size[0],
                "height": size[1],
            },
            {"image": image, "mask_image": cutout["masks"][0], "ip_adapter_image": image},
        )
        composite = self._run("composite", {}, {"image": painted["images"][0], "overlay": cutout["images"][0]})
        upscaled: bytes = self._run("upscale", {}, {"image": composite["images"][0]})["images"][0]
        return upscaled


def through_server(
    http: httpx.Client, image: str, scene: str, seed: int, cache: bool = False
) -> tuple[float, dict[str, Any]]:
    started = time.perf_counter()
    headers = {} if cache else NO_CACHE
    answer = http.post(f"/v1/run/{WORKFLOW}", json={"image": image, "scene": scene, "seed": seed}, headers=headers)
    answer.raise_for_status()
    return time.perf_counter() - started, answer.json()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--size", default="96x72")
    parser.add_argument("--batch-rows", type=int, default=40)
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    photo, _ = studio_product(width, height)
    raw = _png(photo)
    uri = data_uri(photo)
    local = InProcess()
    local(raw, "warm-up", 0, (width, height))
    server_s: list[float] = []
    local_s: list[float] = []
    with Server(workers=1, env={"LIMNER_THREADS": "1", "LIMNER_RUN_TIMEOUT_S": "3600"}) as server:
        server.wait_ready()
        with httpx.Client(base_url=server.base, timeout=3600) as http:
            through_server(http, uri, "warm-up", 0)
            for seed in range(1, args.rounds + 1):
                started = time.perf_counter()
                local(raw, "on a marble table", seed, (width, height))
                local_s.append(time.perf_counter() - started)
                server_s.append(through_server(http, uri, "on a marble table", seed)[0])
            cached_s, cached = through_server(http, uri, "on a marble table", 1, cache=True)
            batch = batch_rate(http, uri, args.batch_rows)
    server_median, local_median = statistics.median(server_s), statistics.median(local_s)
    ratio = server_median / local_median
    print(f"{WORKFLOW} at {args.size}: server {server_median:.2f} s, in-process {local_median:.2f} s")
    print(f"ratio server/in-process: {ratio:.3f} (aim <= 1.15)")
    print(f"again from the cache: {cached_s:.3f} s, steps cached {[s['cached'] for s in cached['steps']]}")
    print(f"batch of {args.batch_rows}: {batch['images_per_hour']:.0f} images/hour ({batch['seconds']:.0f} s)")
    write_result(
        "workflows",
        {
            "workflow": WORKFLOW,
            "size": args.size,
            "rounds": args.rounds,
            "server_s": server_s,
            "in_process_s": local_s,
            "ratio_server_to_in_process": ratio,
            "cached_s": cached_s,
            "cached_steps": [s["cached"] for s in cached["steps"]],
            "batch": batch,
            "note": "images/hour on 2 CPU cores with tiny SD, GrabCut and Real-ESRGAN at a small size: not "
            "comparable with the seed's 200/hour on 2x A100 with FLUX.1 [dev] at 1024 px",
        },
    )


def batch_rate(http: httpx.Client, image: str, rows: int) -> dict[str, Any]:
    body = {
        "model": WORKFLOW,
        "rows": [{"custom_id": f"sku-{i}", "input": {"image": image, "seed": 1000 + i}} for i in range(rows)],
        "max_concurrency": 4,
    }
    started = time.perf_counter()
    batch = http.post("/v1/batches", json=body, headers=NO_CACHE).json()
    while (state := http.get(f"/v1/batches/{batch['id']}").json())["status"] != "completed":
        time.sleep(1.0)
    seconds = time.perf_counter() - started
    done = state["request_counts"]["succeeded"]
    return {"rows": rows, "succeeded": done, "seconds": seconds, "images_per_hour": done / seconds * 3600}


def _png(image: Any) -> bytes:
    import io

    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


if __name__ == "__main__":
    main()
