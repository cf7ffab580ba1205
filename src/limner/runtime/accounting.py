"""What a job cost: device seconds (the batch's inference time, shared by output) and price."""

from __future__ import annotations

from typing import Any

from limner.adapters.base import JobOutput
from limner.catalog.entry import CatalogEntry
from limner.settings import Settings


def count_outputs(output: JobOutput) -> int:
    return sum(len(files) for files in output.files.values())


def price_per_hour(entry: CatalogEntry, settings: Settings, device: str) -> float:
    """The catalog entry's price wins over the worker's per-device setting."""
    if entry.runtime.usd_per_gpu_hour is not None:
        return entry.runtime.usd_per_gpu_hour
    return settings.price_for(device)


def job_usage(
    entry: CatalogEntry,
    settings: Settings,
    device: str,
    output: JobOutput,
    *,
    inference_s: float,
    batch_outputs: int,
    batch_jobs: int,
) -> dict[str, Any]:
    """A job's share of its batch's device time: by outputs (an image of a batch of 8 costs
    an eighth of the forward pass), or by jobs when nothing was produced."""
    outputs = count_outputs(output)
    if entry.remote or entry.runtime.usd_per_output is not None:
        # A hosted provider: no device time here; priced per output (a text counts as one)
        # and/or per second of the provider's run (the call's wall time, as fal bills GPU time).
        outputs = outputs or (1 if isinstance(output.extra.get("output"), str) else 0)
        per_output, per_second = entry.runtime.usd_per_output, entry.runtime.usd_per_second
        cost = outputs * (per_output or 0.0) + max(inference_s, 0.0) * (per_second or 0.0)
        return {
            "device": "remote",
            "outputs": outputs,
            "compute_s": 0.0,
            "compute_s_per_output": None,
            "remote_s": round(max(inference_s, 0.0), 4),
            "usd_per_output": per_output,
            "usd_per_second": per_second,
            "cost_usd": round(cost, 6),
        }
    share = outputs / batch_outputs if batch_outputs else 1 / max(batch_jobs, 1)
    compute = max(inference_s, 0.0) * share
    price = price_per_hour(entry, settings, device)
    return {
        "device": device,
        "outputs": outputs,
        "compute_s": round(compute, 4),
        "compute_s_per_output": round(compute / outputs, 4) if outputs else None,
        "usd_per_gpu_hour": price,
        "cost_usd": round(compute * price / 3600, 6),
    }


def per_token(usage: dict[str, Any]) -> dict[str, Any]:
    """A text job's usage with its cost per generated token (device time shared by token)."""
    tokens = usage.get("output_tokens")
    if isinstance(tokens, int) and tokens > 0:
        usage["compute_s_per_output_token"] = round(usage["compute_s"] / tokens, 6)
        usage["cost_usd_per_output_token"] = round(usage["cost_usd"] / tokens, 9)
    return usage
