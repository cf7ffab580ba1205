"""Prompt enhancement inside an image job (``enhance_prompt`` on an image request).

Before an image batch runs, each job that asked for it has its prompt rewritten by an enhance
model (a prompt-enhancement catalog entry; ``true`` is DEFAULT_ENHANCER) with that model's
template for the image entry's family. The enhance model is made resident like any other (the
same residency, so it stays loaded for the next job) and runs through its own family's adapter
with the batch's context: its tokens show as the ``generating`` stage, and a cancel stops it.
The image model then runs on the enhanced prompt, and the job's result records it
(``prompt_used``) with what made it: the enhance model, its revision and template version, and
the prompt as sent. The image job stays one job: a crash re-runs both, deterministically, as
the enhancement is seeded with the image's seed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from limner.adapters.base import Adapter, JobOutput, LoadedModel, RunContext, WorkItem
from limner.catalog.enhancers import enhancer_of
from limner.catalog.entry import CatalogEntry
from limner.catalog.loader import Catalog
from limner.tasks.text import PromptEnhancementInput

# (entry) -> the adapter and the resident model of an entry (the worker's residency).
Resident = Callable[[CatalogEntry], tuple[Adapter, LoadedModel]]


def enhance(
    catalog: Catalog, entry: CatalogEntry, items: list[WorkItem[Any]], ctx: RunContext, resident: Resident
) -> tuple[list[WorkItem[Any]], dict[str, dict[str, Any]]]:
    """The batch's items with enhanced prompts, and each enhanced job's result fields."""
    out: list[WorkItem[Any]] = []
    recorded: dict[str, dict[str, Any]] = {}
    for item in items:
        spec = item.input
        enhancer = enhancer_of(catalog, getattr(spec, "enhance_prompt", None))
        if enhancer is None or ctx.is_canceled(item.job_id):
            out.append(item)
            continue
        adapter, loaded = resident(enhancer)
        ask = PromptEnhancementInput(prompt=spec.prompt, target_family=entry.family, seed=spec.seed)
        made: JobOutput = adapter.run(loaded, enhancer, [WorkItem(item.job_id, ask)], ctx)[0]
        prompt = str(made.extra.get("output") or "").strip()
        if not prompt:  # canceled meanwhile, or nothing written: the prompt as sent
            out.append(item)
            continue
        out.append(WorkItem(item.job_id, spec.model_copy(update={"prompt": prompt}), item.files))
        recorded[item.job_id] = {
            "prompt_used": prompt,
            "prompt_enhancement": {
                "model": {"id": enhancer.id, "revision": loaded.revision},
                "template": made.extra.get("template"),
                "prompt": spec.prompt,
                "usage": made.extra.get("usage"),
            },
        }
    return out, recorded
