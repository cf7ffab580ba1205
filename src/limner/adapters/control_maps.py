"""Control maps for ControlNet: canny edges, depth and OpenPose skeletons from a picture.

- canny: OpenCV's Canny edge detector (white edges on black), as the canny ControlNets were
  trained on. Needs no model.
- pose: MediaPipe's pose landmarker, whose tflite model ships in the mediapipe wheel
  (``pip://mediapipe/pose_landmark_full``), drawn in the OpenPose 18-keypoint format that the
  openpose ControlNets read. The drawing is written here because controlnet_aux's drawer comes
  with its own OpenPose network (weights from the hub); only the format is wanted.
- depth: a transformers depth-estimation model (``hf://depth-anything/…``, DPT) from the hub,
  through ``transformers.pipeline("depth-estimation")``. No registry package ships depth
  weights: offline, a depth ControlNet takes a precomputed depth map
  (``control_preprocess: false``), and the tests run the estimator path on a tiny random build.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from limner.adapters.base import LoadEnv
from limner.adapters.loading import resolve_source
from limner.adapters.packaged import resolve_packaged
from limner.catalog.entry import CatalogEntry
from limner.errors import InvalidInput, ModelUnavailable

CANNY_THRESHOLDS = (100, 200)  # the lllyasviel/ControlNet defaults
# OpenPose (COCO 18) keypoints from MediaPipe's 33 landmarks; the neck (1) is the shoulders' midpoint.
OPENPOSE_FROM_MEDIAPIPE = {0: 0, 2: 12, 3: 14, 4: 16, 5: 11, 6: 13, 7: 15, 8: 24, 9: 26, 10: 28, 11: 23}
OPENPOSE_FROM_MEDIAPIPE |= {12: 25, 13: 27, 14: 5, 15: 2, 16: 8, 17: 7}
OPENPOSE_LIMBS = [(1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10), (1, 11), (11, 12)]
OPENPOSE_LIMBS += [(12, 13), (1, 0), (0, 14), (14, 16), (0, 15), (15, 17)]
OPENPOSE_COLORS = [
    (255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0), (85, 255, 0), (0, 255, 0),
    (0, 255, 85), (0, 255, 170), (0, 255, 255), (0, 170, 255), (0, 85, 255), (0, 0, 255), (85, 0, 255),
    (170, 0, 255), (255, 0, 255), (255, 0, 170), (255, 0, 85),
]  # fmt: skip
MIN_VISIBILITY = 0.5
# The pose solution's switch between its models: model name -> model_complexity.
POSE_COMPLEXITY = {"pose_landmark_lite": 0, "pose_landmark_full": 1, "pose_landmark_heavy": 2}


@dataclass
class ControlMaps:
    """Turns pictures into the control maps of one ControlNet; loads its model on first use."""

    entry: CatalogEntry
    models_dir: Path
    _model: Any = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def make(self, picture: Image.Image) -> Image.Image:
        kind = self.entry.runtime.control_type
        makers: dict[str | None, Callable[[Image.Image], Image.Image]] = {
            "canny": canny,
            "pose": self._pose,
            "depth": self._depth,
        }
        if kind not in makers:
            raise InvalidInput(
                f"{self.entry.id} declares no control_type to make a map from a picture; "
                "send the control map itself with control_preprocess: false",
                loc=("body", "control_preprocess"),
            )
        return makers[kind](picture)

    def close(self) -> None:
        if self._model is not None and hasattr(self._model, "close"):
            self._model.close()
        self._model = None

    def _source(self) -> str:
        source = self.entry.runtime.control_preprocessor
        if not source:
            raise InvalidInput(
                f"{self.entry.id} has no {self.entry.runtime.control_type} estimator configured "
                "(runtime.control_preprocessor); send a precomputed map with control_preprocess: false",
                loc=("body", "control_preprocess"),
            )
        return source

    def _pose(self, picture: Image.Image) -> Image.Image:
        with self._lock:
            if self._model is None:
                import mediapipe as mp

                packaged = resolve_packaged(self.entry.model_copy(update={"source": self._source()}))
                tflite = packaged.folder / "modules" / "pose_landmark" / f"{packaged.name}.tflite"
                if packaged.name not in POSE_COMPLEXITY or not tflite.is_file():
                    raise ModelUnavailable(f"no MediaPipe pose model at {tflite}")
                self._model = mp.solutions.pose.Pose(
                    static_image_mode=True, model_complexity=POSE_COMPLEXITY[packaged.name]
                )
            result = self._model.process(np.asarray(picture.convert("RGB")))
        if result.pose_landmarks is None:
            raise InvalidInput("no person found in control_image to take a pose from", loc=("body", "control_image"))
        return draw_openpose(result.pose_landmarks.landmark, picture.size)

    def _depth(self, picture: Image.Image) -> Image.Image:
        with self._lock:
            if self._model is None:
                from transformers import pipeline

                shadow = self.entry.model_copy(update={"source": self._source(), "variant": None, "revision": None})
                # A load of its own, during a batch: reported in the worker's log only.
                folder, _ = resolve_source(shadow, LoadEnv("cpu", self.models_dir), marker="config.json")
                try:
                    self._model = pipeline(
                        "depth-estimation", model=str(folder), device="cpu", model_kwargs={"use_safetensors": True}
                    )
                except (OSError, ValueError) as exc:
                    raise ModelUnavailable(f"cannot load the depth estimator {shadow.source}: {exc}") from exc
            depth: Image.Image = self._model(picture.convert("RGB"))["depth"]
        return depth.convert("RGB").resize(picture.size, Image.Resampling.BILINEAR)


def canny(picture: Image.Image) -> Image.Image:
    import cv2

    gray = np.asarray(picture.convert("L"))
    edges = cv2.Canny(gray, *CANNY_THRESHOLDS)
    return Image.fromarray(np.stack([edges] * 3, axis=-1), "RGB")


def draw_openpose(landmarks: Any, size: tuple[int, int]) -> Image.Image:
    """An OpenPose-style skeleton (coloured limbs and joints on black) from MediaPipe landmarks."""
    import cv2

    width, height = size
    points: dict[int, tuple[int, int]] = {}
    for openpose, mediapipe in OPENPOSE_FROM_MEDIAPIPE.items():
        mark = landmarks[mediapipe]
        if mark.visibility >= MIN_VISIBILITY:
            points[openpose] = (int(mark.x * width), int(mark.y * height))
    if 2 in points and 5 in points:
        points[1] = ((points[2][0] + points[5][0]) // 2, (points[2][1] + points[5][1]) // 2)
    canvas = np.zeros((height, width, 3), dtype=np.uint8)
    stick = max(2, round(min(width, height) / 128))
    for index, (a, b) in enumerate(OPENPOSE_LIMBS):
        if a in points and b in points:
            color = tuple(int(c * 0.6) for c in OPENPOSE_COLORS[index])
            cv2.line(canvas, points[a], points[b], color, thickness=stick * 2, lineType=cv2.LINE_AA)
    for index, point in points.items():
        cv2.circle(canvas, point, stick * 2, OPENPOSE_COLORS[index], thickness=-1, lineType=cv2.LINE_AA)
    return Image.fromarray(canvas, "RGB")
