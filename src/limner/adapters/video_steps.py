"""The steps every video family shares: prepare one call's arguments (the first frame fitted to
the frame size), call the pipeline with progress and stop, and encode (an MP4 under ``videos``
plus a PNG poster under ``previews``).

A family supplies what differs: its load (pipeline classes) and the keyword arguments of one
call (``call_args``). Video jobs run one pipeline call each: a video batch would multiply
activation memory by the batch size for little gain on models this large.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Any, TypeVar

import numpy as np
import torch
from PIL import Image, ImageOps

from limner.adapters.base import Chunk, FamilyAdapter, JobOutput, LoadedModel, RunContext, WorkItem
from limner.catalog.entry import CatalogEntry
from limner.errors import ModelError
from limner.media.images import open_image
from limner.media.video import encode_video, poster, to_uint8_frames
from limner.progress import Stage
from limner.tasks.video import ImageToVideoInput, TextToVideoInput

VideoInputT = TypeVar("VideoInputT", bound=TextToVideoInput | ImageToVideoInput)
Frames = np.ndarray[Any, Any]  # uint8 (count, height, width, 3)


class VideoAdapter(FamilyAdapter[VideoInputT, dict[str, Any], Frames]):
    """A video family: one pipeline call per job, whose arguments ``call_args`` makes."""

    rows_per_call = 1

    @abstractmethod
    def call_args(self, entry: CatalogEntry, item: WorkItem[VideoInputT]) -> dict[str, Any]:
        """The pipeline's keyword arguments for one job (the family's own mapping)."""

    # -- 3. prepare --------------------------------------------------------------------------

    def prepare(
        self, model: LoadedModel, entry: CatalogEntry, items: list[WorkItem[VideoInputT]], ctx: RunContext
    ) -> list[list[dict[str, Any]]]:
        return [[{**self.call_args(entry, item), **entry.call_args}] for item in items]

    # -- 4. call: denoising with progress and stop, then decoding ------------------------------

    def call(self, model: LoadedModel, entry: CatalogEntry, chunk: Chunk[VideoInputT, dict[str, Any]]) -> list[Frames]:
        [kwargs] = chunk.rows
        steps = int(kwargs["num_inference_steps"])

        def on_step(p: Any, step: int, _timestep: Any, tensors: dict[str, Any]) -> dict[str, Any]:
            total = int(getattr(p, "num_timesteps", 0) or steps)
            chunk.step(step + 1, total)
            if step + 1 >= total:
                chunk.ctx.stage(Stage.DECODING)
            return tensors

        chunk.ctx.stage(Stage.DENOISING)
        with torch.inference_mode():
            result = model.handle(**kwargs, output_type="np", callback_on_step_end=on_step)
        frames = to_uint8_frames(result.frames[0])
        check_frames(entry, chunk.input, frames)
        chunk.ctx.log(f"decoded {frames.shape[0]} frames of {frames.shape[2]}x{frames.shape[1]}")
        return [frames]

    # -- 5. encode ---------------------------------------------------------------------------

    def encode(
        self,
        model: LoadedModel,
        entry: CatalogEntry,
        item: WorkItem[VideoInputT],
        results: list[Frames],
        ctx: RunContext,
    ) -> JobOutput:
        [frames] = results
        video = encode_video(frames, item.input.fps)
        ctx.log(f"encoded an H.264 MP4 of {len(video.data)} bytes at {item.input.fps} fps")
        return JobOutput(files={"videos": [video], "previews": [poster(frames)]})


def prompted_call_args(entry: CatalogEntry, item: WorkItem[TextToVideoInput | ImageToVideoInput]) -> dict[str, Any]:
    """The call arguments of a prompted video pipeline (Wan, CogVideoX, AnimateDiff): text,
    size, frames, steps, guidance and seed, plus the first frame for image-to-video."""
    spec = item.input
    width, height = spec.output_size()
    kwargs: dict[str, Any] = {
        "prompt": spec.prompt or "",
        "height": height,
        "width": width,
        "num_frames": spec.num_frames,
        "num_inference_steps": spec.num_inference_steps,
        "guidance_scale": spec.guidance_scale,
        "generator": generator(spec.chosen_seed()),
    }
    if spec.negative_prompt:
        kwargs["negative_prompt"] = spec.negative_prompt
    if isinstance(spec, ImageToVideoInput):
        kwargs["image"] = first_frame(item.files["image"], (width, height))
    return kwargs


def generator(seed: int) -> torch.Generator:
    """A CPU generator: the same seed gives the same noise on every device."""
    return torch.Generator(device="cpu").manual_seed(seed)


def first_frame(image: bytes, size: tuple[int, int]) -> Image.Image:
    """The input image, scaled and centre-cropped to the frame size."""
    return ImageOps.fit(open_image(image), size, Image.Resampling.LANCZOS)


def check_frames(entry: CatalogEntry, spec: TextToVideoInput | ImageToVideoInput, frames: Frames) -> None:
    """The model made what was asked for; if not, the catalog entry is wrong (not retried)."""
    width, height = spec.output_size()
    wanted = (spec.num_frames, height, width)
    made = tuple(int(n) for n in frames.shape[:3])
    if made != wanted:
        raise ModelError(
            f"{entry.id} made {made[0]} frames of {made[2]}x{made[1]} for num_frames={wanted[0]} at "
            f"{wanted[2]}x{wanted[1]}: its catalog limits (frames_multiple, size_multiple) do not match the model"
        )
