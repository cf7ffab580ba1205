"""Family ``grabcut``: background removal and segmentation with OpenCV's GrabCut, no weights.

GrabCut (Rother et al., 2004) models the foreground and background as colour mixtures and cuts
the image along a graph. It needs a start: a ``box`` around the object when the request gives
one, else this family's automatic one for product shots on plain backgrounds: the image's
border is background; pixels whose colour is far from the border's (in CIE Lab) start as
probable foreground, the rest as probable background. If that finds nothing (a busy border),
it falls back to a box inset from the edges. OpenCV's RNG is seeded for every cut, so the same
picture always gives the same mask. Large pictures are cut at ``runtime.call_args
max_side`` pixels (default 512) and the mask scaled back, with its edge softened by a pixel.

Steps: 1. load (nothing: the algorithm is OpenCV's)  2. check (schema)  3. prepare (the
       image's bytes)  4. call (GrabCut on one picture)  5. encode (mask_steps: a binary mask,
       or an RGBA cutout and its soft mask)
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
from PIL import Image

from limner.adapters.base import Chunk, LoadedModel, LoadEnv
from limner.adapters.mask_steps import MaskInput, OneMaskAdapter, Segmented
from limner.catalog.entry import CatalogEntry
from limner.media.images import open_image

BORDER = 0.04  # share of each side that is certainly background
FAR = 16.0  # Lab distance from the border colour beyond which a pixel starts as foreground
INSET = 0.05  # the fallback box, inset from each edge


def grabcut(
    image: Image.Image, box: tuple[float, float, float, float] | None, *, iterations: int, max_side: int
) -> Any:
    """Foreground probability (HxW float32 in [0, 1]) of ``image`` at its own size."""
    rgb = np.asarray(image.convert("RGB"))
    height, width = rgb.shape[:2]
    scale = min(1.0, max_side / max(height, width))
    small = cv2.resize(rgb, (max(1, round(width * scale)), max(1, round(height * scale))), interpolation=cv2.INTER_AREA)
    bgr = cv2.cvtColor(small, cv2.COLOR_RGB2BGR)
    if box is not None:
        rect = tuple(round(v * scale) for v in (box[0], box[1], box[2] - box[0], box[3] - box[1]))
        mask = _cut(bgr, np.zeros(bgr.shape[:2], np.uint8), rect, cv2.GC_INIT_WITH_RECT, iterations)
    else:
        mask = _cut(bgr, _border_start(small), None, cv2.GC_INIT_WITH_MASK, iterations)
        if not (0.005 < mask.mean() < 0.98):  # found nothing, or everything: start from a box instead
            h, w = bgr.shape[:2]
            rect = (int(w * INSET), int(h * INSET), int(w * (1 - 2 * INSET)), int(h * (1 - 2 * INSET)))
            mask = _cut(bgr, np.zeros(bgr.shape[:2], np.uint8), rect, cv2.GC_INIT_WITH_RECT, iterations)
    full = cv2.resize(mask.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR)
    soft = cv2.GaussianBlur(full, (3, 3), 0)  # a one-pixel soft edge for the cutout's alpha
    return np.clip(soft, 0.0, 1.0).astype(np.float32)


def _border_start(rgb: Any) -> Any:
    """GrabCut's starting labels from the border: certain background around the edge, then
    probable foreground where the colour is far from the border's median colour."""
    lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB).astype(np.float32)
    h, w = lab.shape[:2]
    band = max(1, int(min(h, w) * BORDER))
    edge = np.ones((h, w), bool)
    edge[band:-band, band:-band] = False
    background = np.median(lab[edge], axis=0)
    distance = np.linalg.norm(lab - background, axis=2)
    start = np.where(distance > FAR, cv2.GC_PR_FGD, cv2.GC_PR_BGD).astype(np.uint8)
    start[edge] = cv2.GC_BGD
    return start


def _cut(bgr: Any, mask: Any, rect: tuple[int, ...] | None, mode: int, iterations: int) -> Any:
    if mode == cv2.GC_INIT_WITH_MASK and not (mask == cv2.GC_PR_FGD).any():
        return np.zeros(mask.shape, np.float32)
    background, foreground = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    # GrabCut starts its colour models with k-means on OpenCV's global RNG: seeded, the same
    # picture gives the same mask (the cache and reproducibility rely on it).
    cv2.setRNGSeed(0)
    cv2.grabCut(bgr, mask, rect or (0, 0, 0, 0), background, foreground, iterations, mode)
    return np.isin(mask, (cv2.GC_FGD, cv2.GC_PR_FGD)).astype(np.float32)


class GrabCutAdapter(OneMaskAdapter):
    # -- 1. load ---------------------------------------------------------------------------

    def load(self, entry: CatalogEntry, env: LoadEnv) -> LoadedModel:
        return LoadedModel(handle=None, revision=f"opencv-{cv2.__version__}", size_bytes=0, device="cpu")

    def unload(self, model: LoadedModel) -> None:
        model.handle = None

    # -- 4. call: the request's box, when it gave one ----------------------------------------

    def call(self, model: LoadedModel, entry: CatalogEntry, chunk: Chunk[MaskInput, bytes]) -> list[Segmented]:
        image = open_image(chunk.rows[0], "RGB")
        options = {"iterations": 5, "max_side": 512, **entry.call_args}
        probability = grabcut(
            image, chunk.input.box, iterations=int(options["iterations"]), max_side=int(options["max_side"])
        )
        chunk.step(1, 1)
        return [Segmented(image, probability)]

    def foreground(self, model: LoadedModel, image: Image.Image) -> Any:
        return grabcut(image, None, iterations=5, max_side=512)


def make_adapter() -> GrabCutAdapter:
    return GrabCutAdapter()
