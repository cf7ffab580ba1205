"""The worker's device and its memory budget."""

from __future__ import annotations

import os

from limner.errors import ModelUnavailable


def resolve_device(requested: str) -> str:
    """``auto`` picks CUDA, then Apple's MPS, then the CPU."""
    import torch

    if requested == "auto":
        if torch.cuda.is_available():
            return "cuda"
        if torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise ModelUnavailable(f"device {requested!r} was asked for, but torch sees no CUDA device")
    return requested


def total_memory_bytes(device: str) -> int:
    """GPU memory on a CUDA device, physical RAM otherwise."""
    if device.startswith("cuda"):
        import torch

        index = int(device.split(":", 1)[1]) if ":" in device else 0
        return int(torch.cuda.get_device_properties(index).total_memory)
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def default_budget_bytes(device: str) -> int:
    """90% of a GPU, or half the RAM of a CPU machine (the rest is for activations and the OS)."""
    share = 0.9 if device.startswith("cuda") else 0.5
    return int(total_memory_bytes(device) * share)


def set_threads(count: int) -> None:
    """CPU threads for torch's ops in this process. Several worker processes on one machine
    each using every core slow each other down many times over (measured: a tiny MusicGen
    went from 11.6 s to 1.0 s per output on a loaded 2-core machine with one thread each)."""
    import torch

    torch.set_num_threads(count)
