"""Can this server run a model? ``available: {ok, reason}`` in /v1/models, without torch.

A model whose weights are merely absent is not a bad setting (the server starts and lists it);
it is unavailable, with the reason and what to do. What is checked, cheaply and without
importing any runtime:

- the family's Python packages are installed (``importlib.util.find_spec``, no import);
- code shipped in a model repository runs only after the operator opted in
  (``runtime.trust_remote_code``);
- every weight source can be had: ``hf://`` in the local Hugging Face cache, or the hub
  reachable (not with ``HF_HUB_OFFLINE=1``); ``file://`` present; ``pip://`` installed;
  ``tiny://`` and ``builtin://`` always (built or made on first use);
- device levers the hardware must pull: NF4 and float16 need a CUDA (or MPS, for float16)
  worker.

Workers run the same checks in their own environment (their packages, their device) and
report what they cannot serve with their heartbeat; when workers are attached, a model is
available if some worker can run it. The API's own view is the fallback when none is.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx

from limner.catalog.entry import CatalogEntry
from limner.catalog.families import FAMILIES

HUB_PROBE_TTL_S = 300.0


@dataclass(frozen=True)
class Availability:
    ok: bool
    reason: str

    def as_dict(self) -> dict[str, object]:
        return {"ok": self.ok, "reason": self.reason}


@dataclass(frozen=True)
class HubEnv:
    """Where the Hugging Face cache is and whether the hub may be used (its own variables,
    read once when the server starts)."""

    cache_dir: Path
    offline: bool
    endpoint: str

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> HubEnv:
        home = Path(
            environ.get("HF_HOME") or Path(environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "huggingface"
        )
        cache = Path(environ.get("HF_HUB_CACHE") or environ.get("HUGGINGFACE_HUB_CACHE") or home / "hub")
        offline = environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")
        return cls(cache_dir=cache, offline=offline, endpoint=environ.get("HF_ENDPOINT") or "https://huggingface.co")

    def cached(self, repo: str) -> bool:
        """Whether a snapshot of ``repo`` is in the local cache (huggingface_hub's layout)."""
        snapshots = self.cache_dir / f"models--{repo.replace('/', '--')}" / "snapshots"
        return snapshots.is_dir() and any(snapshots.iterdir())


class HubProbe:
    """Whether the hub answers, asked at most every HUB_PROBE_TTL_S seconds (2 s timeout)."""

    def __init__(self, env: HubEnv) -> None:
        self.env = env
        self._lock = threading.Lock()
        self._answer: tuple[float, str | None] | None = None

    def problem(self) -> str | None:
        """None if the hub is reachable, else why not."""
        if self.env.offline:
            return "HF_HUB_OFFLINE=1"
        with self._lock:
            if self._answer is not None and time.monotonic() - self._answer[0] < HUB_PROBE_TTL_S:
                return self._answer[1]
            try:
                httpx.head(self.env.endpoint, timeout=2.0)
                found: str | None = None
            except httpx.HTTPError as exc:
                found = f"{self.env.endpoint} is unreachable from this server ({type(exc).__name__})"
            self._answer = (time.monotonic(), found)
            return found


def missing_packages(entry: CatalogEntry) -> list[str]:
    family = FAMILIES[entry.family]
    return [name for name in family.requires if importlib.util.find_spec(name) is None]


def _sources(entry: CatalogEntry) -> list[tuple[str, str]]:
    found = [("source", entry.source), *((f"components.{k}", v) for k, v in entry.components.items())]
    if entry.runtime.controlnet:
        found.append(("runtime.controlnet", entry.runtime.controlnet))
    if entry.runtime.control_preprocessor and "://" in entry.runtime.control_preprocessor:
        found.append(("runtime.control_preprocessor", entry.runtime.control_preprocessor))
    if entry.runtime.ip_adapter:
        found.append(("runtime.ip_adapter.source", entry.runtime.ip_adapter.source))
    return found


def _source_problem(name: str, source: str, hub: HubEnv, probe: HubProbe) -> str | None:
    if source.startswith("hf://"):
        repo = source.removeprefix("hf://")
        if hub.cached(repo):
            return None
        problem = probe.problem()
        if problem is None:
            return None
        return (
            f"{name} {source} is not in the local Hugging Face cache ({hub.cache_dir}) and {problem}: "
            f"run `hf download {repo}` where the hub is reachable and copy the cache here, "
            "or point the entry at a local folder (file:///path)"
        )
    if source.startswith("file://"):
        path = Path(source.removeprefix("file://"))
        return None if path.exists() else f"{name} {source}: {path} does not exist on this server"
    if source.startswith("pip://"):
        distribution = source.removeprefix("pip://").split("/", 1)[0]
        try:
            importlib.metadata.distribution(distribution)
        except importlib.metadata.PackageNotFoundError:
            return f"{name} {source}: the Python package {distribution} is not installed (pip install {distribution})"
    return None


def needs_device(entry: CatalogEntry) -> str | None:
    """The device kind the entry's levers need, if any ("cuda" for NF4, "gpu" for float16)."""
    if entry.runtime.quantization == "nf4":
        return "cuda"
    if entry.runtime.dtype == "float16":
        return "gpu"
    return None


def device_problem(entry: CatalogEntry, devices: Iterable[str]) -> str | None:
    """Why no device among ``devices`` can pull the entry's levers (None: one can)."""
    need = needs_device(entry)
    seen = sorted(set(devices))
    if need is None or not seen:
        return None
    if need == "cuda" and not any(d.startswith("cuda") for d in seen):
        return f"runtime.quantization nf4 needs a CUDA worker with bitsandbytes; workers here: {', '.join(seen)}"
    if need == "gpu" and not any(d.startswith(("cuda", "mps")) for d in seen):
        return f"runtime.dtype float16 needs a GPU worker; workers here: {', '.join(seen)}"
    return None


def local_problem(entry: CatalogEntry, hub: HubEnv, probe: HubProbe) -> str | None:
    """Why this machine cannot run the entry (packages, remote-code opt-in, weights)."""
    family = FAMILIES[entry.family]
    missing = missing_packages(entry)
    if missing:
        return f"family {entry.family} needs {', '.join(missing)}, not installed here"
    if family.needs_remote_code and not entry.runtime.trust_remote_code:
        return (
            f"{entry.id}'s repository ships Python code: set runtime.trust_remote_code: true in your catalog "
            "after reading that code (and pin revision to the commit you read)"
        )
    for name, source in _sources(entry):
        problem = _source_problem(name, source, hub, probe)
        if problem is not None:
            return problem
    return None


def describe(entry: CatalogEntry) -> str:
    """What 'available' means for an entry whose checks passed."""
    if entry.source.startswith("tiny://"):
        return "a tiny random-weight build, made on first use"
    if entry.source.startswith("hf://"):
        return "weights from the Hugging Face hub (or its local cache)"
    return "ready"


def availability(
    entry: CatalogEntry,
    hub: HubEnv,
    probe: HubProbe,
    worker_devices: list[str],
    worker_refusals: list[str | None],
) -> Availability:
    """The server's answer for one entry. ``worker_refusals`` holds, per attached worker, its
    reason for not serving the entry (None: it can); empty when no worker is attached."""
    if entry.family == "faults":
        return Availability(True, "a test family that fails on request")
    problem = local_problem(entry, hub, probe) if not worker_refusals else None
    if worker_refusals and all(r is not None for r in worker_refusals):
        problem = worker_refusals[0]
    problem = problem or device_problem(entry, worker_devices)
    return Availability(False, problem) if problem else Availability(True, describe(entry))
