"""Loading steps every family shares: where the weights are, which dtype, which placement.

Sources: ``tiny://name`` (built offline on first use, see ``limner.tiny``), ``file:///path``
(a local folder), ``hf://owner/repo`` (the Hugging Face hub or its local cache).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from limner.adapters.base import LoadEnv
from limner.catalog.entry import CatalogEntry
from limner.errors import ModelUnavailable
from limner.progress import Stage

log = logging.getLogger("limner.adapters.loading")

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
# Downloads a hub repo and returns its local folder: (repo, revision, variant) -> path.
Downloader = Callable[[str, str | None, str | None], str]


def hub_snapshot(repo: str, revision: str | None, _variant: str | None) -> str:
    """The default downloader: the whole repo snapshot (for transformers and other runtimes)."""
    from huggingface_hub import snapshot_download

    folder: str = snapshot_download(repo, revision=revision)
    return folder


def resolve_source(
    entry: CatalogEntry, env: LoadEnv, *, download: Downloader = hub_snapshot, marker: str = "model_index.json"
) -> tuple[Path, str]:
    """A local folder for the entry's source, and the revision it holds.

    ``marker`` is a file a usable local folder must contain (``model_index.json`` for a
    diffusers pipeline, ``config.json`` for a transformers model). A tiny:// source not built
    yet is built now, under the ``building`` stage (``env.report``).
    """
    source = entry.source
    if source.startswith("tiny://"):
        from limner.tiny import build_tiny, is_built

        name = source.removeprefix("tiny://")
        dest = env.models_dir / "tiny" / name
        if not is_built(name, dest):
            env.report(Stage.BUILDING, f"building {entry.id} ({source}) for its first use")
            started = time.monotonic()
            build_tiny(name, dest)
            env.report(Stage.LOADING, f"built {source} in {time.monotonic() - started:.2f} s")
        return dest, "tiny-" + folder_digest(dest)
    if source.startswith("file://"):
        path = Path(source.removeprefix("file://"))
        if not (path / marker).is_file():
            raise ModelUnavailable(f"{entry.id}: {path} is not a model folder (no {marker})")
        return path, "local-" + folder_digest(path)
    if not source.startswith("hf://"):
        raise ModelUnavailable(f"{entry.id}: family {entry.family!r} cannot load a source like {source!r}")
    repo = source.removeprefix("hf://")
    try:
        folder = download(repo, entry.revision, entry.variant)
    except Exception as exc:
        raise ModelUnavailable(
            f"cannot get {repo} from the Hugging Face hub ({type(exc).__name__}: {str(exc)[:300]}). "
            f"Download it where the hub is reachable (`hf download {repo}`) and copy the cache, "
            f"or point the catalog entry's source at a local folder (file:///path)."
        ) from exc
    return Path(folder), Path(folder).name


# The files a folder's digest covers: configs and every weight format a family loads.
DIGESTED = ("*.json", "*.safetensors", "*.bin", "*.gguf", "*.onnx", "*.param", "*.tflite", "*.txt", "*.model")
CHUNK = 1 << 20


def folder_digest(path: Path) -> str:
    """The sha256 of a model folder's configs and weight files (names and bytes): the revision
    of a tiny or local build, which changes when any weight does. Computed once per load (a
    multi-GB local folder costs seconds, next to the load itself)."""
    digest = hashlib.sha256()
    files = sorted({f for pattern in DIGESTED for f in path.rglob(pattern) if f.is_file()})
    for file in files:
        digest.update(file.relative_to(path).as_posix().encode())
        with file.open("rb") as handle:
            while chunk := handle.read(CHUNK):
                digest.update(chunk)
    return digest.hexdigest()


def resolve_dtype(name: str, device: str) -> torch.dtype:
    """``auto`` is half precision on a GPU and float32 on the CPU; float16 on a CPU is refused."""
    if name == "auto":
        return torch.float16 if device.startswith(("cuda", "mps")) else torch.float32
    if name == "float16" and device == "cpu":
        raise ModelUnavailable(
            "runtime.dtype float16 needs a GPU; this worker runs on the CPU (use float32 or bfloat16 here)"
        )
    return DTYPES[name]


def require_quantization_support(entry: CatalogEntry, device: str) -> None:
    """Refuse 4-bit loading where bitsandbytes cannot run, before any weights are fetched."""
    if entry.runtime.quantization == "none":
        return
    has_cuda = device.startswith("cuda")
    has_bnb = importlib.util.find_spec("bitsandbytes") is not None
    if has_cuda and has_bnb:
        return
    gpu = f"a CUDA device ({device})" if has_cuda else f"no CUDA GPU (device {device})"
    bnb = "bitsandbytes installed" if has_bnb else "no bitsandbytes"
    raise ModelUnavailable(
        f"{entry.id}: runtime.quantization {entry.runtime.quantization} needs bitsandbytes and a CUDA GPU; "
        f"this worker has {gpu} and {bnb}. Run it on a CUDA worker with `pip install 'limner[nf4]'`, "
        "or set runtime.quantization: none (and a smaller dtype or offload) for this entry"
    )


# The pipeline components NF4 quantizes: the denoiser and the text encoders hold nearly all
# the weights; the VAE is small and sensitive to precision, so it stays in ``dtype``.
NF4_COMPONENTS = ("transformer", "unet", "text_encoder", "text_encoder_2", "text_encoder_3")


def diffusers_quantization(entry: CatalogEntry, folder: Path, dtype: torch.dtype) -> Any | None:
    """The ``quantization_config`` for ``DiffusionPipeline.from_pretrained``, or None.

    Uses diffusers' PipelineQuantizationConfig with the bitsandbytes 4-bit backend, which
    builds the diffusers config for the denoiser and the transformers one for text encoders.
    """
    if entry.runtime.quantization == "none":
        return None
    from diffusers.quantizers.pipe_quant_config import PipelineQuantizationConfig

    index = json.loads((folder / "model_index.json").read_text(encoding="utf-8"))
    present = [n for n in NF4_COMPONENTS if isinstance(index.get(n), list) and index[n] and index[n][0] is not None]
    if not present:
        raise ModelUnavailable(f"{entry.id}: runtime.quantization nf4 found no denoiser or text encoder to quantize")
    # diffusers annotates quant_kwargs without torch.dtype, though its own examples pass one.
    quant_kwargs: dict[str, Any] = {"load_in_4bit": True, "bnb_4bit_quant_type": "nf4", "bnb_4bit_compute_dtype": dtype}
    return PipelineQuantizationConfig(
        quant_backend="bitsandbytes_4bit", quant_kwargs=quant_kwargs, components_to_quantize=present
    )


def place(pipe: Any, entry: CatalogEntry, device: str) -> None:
    """Move a diffusers pipeline to the device, or set up offloading (GPU only), and apply
    the VAE levers."""
    runtime = entry.runtime
    if runtime.offload != "none" and device.startswith("cuda"):
        if runtime.offload == "model":
            pipe.enable_model_cpu_offload(device=device)
        else:
            pipe.enable_sequential_cpu_offload(device=device)
    else:
        if runtime.offload != "none":
            log.info("%s: offload=%s has no effect on %s; running in place", entry.id, runtime.offload, device)
        pipe.to(device)
    vae = getattr(pipe, "vae", None)
    if runtime.vae_tiling and vae is not None:
        vae.enable_tiling()
    if runtime.vae_slicing and vae is not None:
        vae.enable_slicing()


def module_bytes(*modules: Any) -> int:
    """Parameter and buffer bytes of torch modules (what residency budgets count)."""
    total = 0
    for module in modules:
        if isinstance(module, torch.nn.Module):
            total += sum(p.numel() * p.element_size() for p in module.parameters())
            total += sum(b.numel() * b.element_size() for b in module.buffers())
    return total


def pipeline_bytes(pipe: Any) -> int:
    return module_bytes(*pipe.components.values())


def release(device: str) -> None:
    """Give freed device memory back after an unload."""
    if device.startswith("cuda"):
        torch.cuda.empty_cache()


def quiet_runtimes() -> None:
    """Silence the runtimes' progress bars and load chatter: a worker would print them for
    every load and call, and limner reports progress itself."""
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    diffusers_logging.disable_progress_bar()
    diffusers_logging.set_verbosity_error()
    transformers_logging.disable_progress_bar()
    transformers_logging.set_verbosity_error()
