"""A training run's resume state as one safetensors file (never a pickle).

It holds what a re-claimed job needs to go on exactly where the checkpoint was: the LoRA
weights (``lora.<parameter>``), the AdamW state (``opt.<index>.<name>``: moments and step
counts, with the parameter groups as JSON metadata), the generator that draws every random
number of the run (``rng``), the per-step loss curve (``curve``), and the early-stopping
bookkeeping and step as JSON metadata. ``torch.save`` would pickle all of this; safetensors
plus JSON keeps the house rule that limner never loads a pickle.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from safetensors.torch import load, save


@dataclass
class StopState:
    """Early stopping's running figures."""

    best_heldout: float | None = None
    best_step: int | None = None
    bad_evals: int = 0
    ema: float | None = None
    lowest_ema: float | None = None
    reason: str | None = None


@dataclass
class RunState:
    step: int
    curve: list[float]
    stop: StopState = field(default_factory=StopState)
    heldout: list[tuple[int, float]] = field(default_factory=list)


def dump_state(
    run: RunState, params: dict[str, torch.Tensor], optimizer: torch.optim.Optimizer, generator: torch.Generator
) -> bytes:
    tensors: dict[str, torch.Tensor] = {f"lora.{name}": p.detach().cpu().contiguous() for name, p in params.items()}
    state = optimizer.state_dict()
    for index, values in state["state"].items():
        for name, value in values.items():
            tensor = value if isinstance(value, torch.Tensor) else torch.tensor(value)
            tensors[f"opt.{index}.{name}"] = tensor.detach().cpu().contiguous()
    tensors["rng"] = generator.get_state()
    tensors["curve"] = torch.tensor(run.curve or [0.0], dtype=torch.float64)
    metadata = {
        "step": str(run.step),
        "curve_length": str(len(run.curve)),
        "param_groups": json.dumps(state["param_groups"]),
        "stop": json.dumps(asdict(run.stop)),
        "heldout": json.dumps(run.heldout),
    }
    return bytes(save(tensors, metadata=metadata))


def load_state(
    data: bytes,
    metadata: dict[str, str],
    params: dict[str, torch.Tensor],
    optimizer: torch.optim.Optimizer,
    generator: torch.Generator,
) -> RunState:
    """Restore the weights, the optimizer and the generator in place; return the run's figures."""
    tensors = load(data)
    with torch.no_grad():
        for name, param in params.items():
            param.copy_(tensors[f"lora.{name}"].to(param))
    groups: list[dict[str, Any]] = json.loads(metadata["param_groups"])
    state: dict[int, dict[str, Any]] = {}
    for key, tensor in tensors.items():
        if key.startswith("opt."):
            _, index, name = key.split(".", 2)
            state.setdefault(int(index), {})[name] = tensor
    optimizer.load_state_dict({"state": state, "param_groups": groups})
    generator.set_state(tensors["rng"])
    length = int(metadata["curve_length"])
    curve = [float(v) for v in tensors["curve"].tolist()][:length]
    stop = StopState(**json.loads(metadata["stop"]))
    heldout = [(int(s), float(v)) for s, v in json.loads(metadata["heldout"])]
    return RunState(step=int(metadata["step"]), curve=curve, stop=stop, heldout=heldout)


def state_metadata(data: bytes) -> dict[str, str]:
    """The JSON metadata of a state file (read from its header)."""
    length = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + length])
    return {str(k): str(v) for k, v in (header.get("__metadata__") or {}).items()}
