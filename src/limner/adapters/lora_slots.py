"""LoRAs on a resident diffusers pipeline, per batch: loaded, switched, shed; never the base reloaded.

Jobs share a batch only when they apply the same LoRAs (the ``loras`` field is part of the
batch key), so a batch sets one adapter set before its model call: the LoRAs it names are
loaded if they are not resident (``load_lora_weights`` from the stored safetensors), the
pipeline's active adapters and their weights are set (``set_adapters``), and a batch without
LoRAs turns them off (``disable_lora``). Loaded LoRAs stay for later batches, least recently
used first out past ``runtime.max_loaded_loras``, and their bytes count in the model's size,
so the residency sheds them under its memory budget before it evicts a model.

With ``runtime.lora_hotswap_rank`` the pipeline keeps fixed adapter slots and swaps new
weights into them in place (diffusers' hotswap, after ``enable_lora_hotswap(target_rank=…)``):
what a compiled pipeline needs to avoid recompiling, at the price of one LoRA per slot.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib.util import find_spec
from typing import Any

from limner.errors import InvalidInput, ModelUnavailable
from limner.tasks.image import LoraWeight


@dataclass
class Resident:
    name: str
    size: int


@dataclass
class LoraSlots:
    pipe: Any
    base_bytes: int
    max_loaded: int
    hotswap_rank: int | None = None
    loaded: OrderedDict[str, Resident] = field(default_factory=OrderedDict)  # by sha256
    active: tuple[str, ...] = ()
    swaps: int = 0
    _slots: list[str | None] = field(default_factory=list)  # hotswap: sha256 in each slot

    def apply(self, weights: list[LoraWeight], files: Mapping[str, bytes], owner: Any) -> list[dict[str, Any]]:
        """Make ``weights`` the pipeline's active LoRAs; the records of what was applied."""
        if not weights:
            if self.active:
                self.pipe.disable_lora()
                self.active = ()
            return []
        if find_spec("peft") is None:
            raise ModelUnavailable("LoRAs need the peft package on the worker (pip install 'limner[runtime]')")
        names = (
            self._hotswap(weights, files)
            if self.hotswap_rank
            else [self._load(i, w, files) for i, w in enumerate(weights)]
        )
        self._trim(keep={w.sha256 for w in weights if w.sha256})
        self.pipe.enable_lora()
        self.pipe.set_adapters(names, adapter_weights=[w.scale for w in weights])
        self.active = tuple(names)
        owner.size_bytes = self.base_bytes + sum(r.size for r in self.loaded.values())
        return [applied(w) for w in weights]

    def shed(self, owner: Any) -> bool:
        """Unload the least recently used LoRA not active now; False when there is none."""
        for sha, resident in self.loaded.items():
            if resident.name not in self.active:
                self._delete(sha)
                owner.size_bytes = self.base_bytes + sum(r.size for r in self.loaded.values())
                return True
        return False

    # -- by name -----------------------------------------------------------------------------

    def _load(self, index: int, weight: LoraWeight, files: Mapping[str, bytes]) -> str:
        sha = _sha(weight, index)
        if sha in self.loaded:
            self.loaded.move_to_end(sha)
            return self.loaded[sha].name
        name = f"lora_{sha[:16]}"
        data = files[f"lora:{sha}"]
        self._put(index, name, data, hotswap=False)
        self.loaded[sha] = Resident(name, len(data))
        return name

    def _trim(self, keep: set[str]) -> None:
        if self.hotswap_rank:
            return
        while len(self.loaded) > self.max_loaded:
            victim = next((sha for sha in self.loaded if sha not in keep), None)
            if victim is None:
                return
            self._delete(victim)

    def _delete(self, sha: str) -> None:
        resident = self.loaded.pop(sha)
        self.pipe.delete_adapters([resident.name])
        if resident.name in self._slots_names():
            self._slots[self._slots_names().index(resident.name)] = None

    # -- hot swap ----------------------------------------------------------------------------

    def _hotswap(self, weights: list[LoraWeight], files: Mapping[str, bytes]) -> list[str]:
        if not self._slots:
            self.pipe.enable_lora_hotswap(target_rank=self.hotswap_rank)
        names = []
        for index, weight in enumerate(weights):
            sha = _sha(weight, index)
            name = f"slot{index}"
            while len(self._slots) <= index:
                self._slots.append(None)
            if self._slots[index] != sha:
                data = files[f"lora:{sha}"]
                swap = name in self._adapter_names()
                self._put(index, name, data, hotswap=swap)
                self.swaps += int(swap)
                old = self._slots[index]
                if old is not None:
                    self.loaded.pop(old, None)
                self._slots[index] = sha
                self.loaded[sha] = Resident(name, len(data))
            names.append(name)
        return names

    def _slots_names(self) -> list[str]:
        return [f"slot{i}" for i in range(len(self._slots))]

    # -- loading -----------------------------------------------------------------------------

    def _put(self, index: int, name: str, data: bytes, *, hotswap: bool) -> None:
        from safetensors.torch import load

        where = ("body", "loras", index, "path")
        try:
            state = load(data)
            self.pipe.load_lora_weights(state, adapter_name=name, hotswap=hotswap)
        except (ValueError, KeyError, RuntimeError, TypeError) as exc:
            if name in self._adapter_names() and not hotswap:
                self.pipe.delete_adapters([name])
            raise InvalidInput(f"loras.{index}: this LoRA does not fit this model ({exc})", loc=where) from None
        if name not in self._adapter_names():
            raise InvalidInput(
                f"loras.{index}: this LoRA has no weights for this model's layers (was it trained for another base?)",
                loc=where,
            )

    def _adapter_names(self) -> set[str]:
        listed: dict[str, list[str]] = self.pipe.get_list_adapters()
        return {name for names in listed.values() for name in names}


def _sha(weight: LoraWeight, index: int) -> str:
    if not weight.sha256:
        raise InvalidInput(f"loras.{index} was not resolved by the API", loc=("body", "loras", index))
    return weight.sha256


def applied(weight: LoraWeight) -> dict[str, Any]:
    """What the result records of a LoRA it applied: enough to apply exactly it again."""
    record: dict[str, Any] = {"path": weight.path, "sha256": weight.sha256, "scale": weight.scale}
    if weight.revision is not None:
        record["id"], record["revision"] = weight.path, weight.revision
    return record
