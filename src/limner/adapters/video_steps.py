"""The steps every video family shares: check, prepare the first frame, run with progress and
stop, and encode (an MP4 under ``videos`` plus a PNG poster under ``previews``).

A family supplies what differs (its pipeline classes and the keyword arguments of one call);
the loop over a batch's jobs lives here. Video jobs run one pipeline call each: a video batch
would multiply activation memory by the batch size for little gain on models this large.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps

from limner.adapters.base import JobOutput, RunContext, WorkItem
from limner.catalog.entry import CatalogEntry
from limner.errors import ModelError
from limner.media.images import open_image
from limner.media.video import encode_video, poster, to_uint8_frames

# Builds the pipeline's keyword arguments for one job (the family's own mapping).
CallArgs = Callable[[CatalogEntry, WorkItem], dict[str, Any]]


class Stopped(Exception):
    """Raised from a step callback when no job of the batch still wants its output.

    Raising, rather than setting the pipeline's interrupt flag, also skips decoding (the
    costliest part of a short video), and works for pipelines without the flag (SVD).
    """


def prompted_call_args(entry: CatalogEntry, item: WorkItem) -> dict[str, Any]:
    """The call arguments of a prompted video pipeline (Wan, CogVideoX, AnimateDiff): text,
    size, frames, steps, guidance and seed, plus the first frame for image-to-video."""
    spec = item.input
    kwargs: dict[str, Any] = {
        "prompt": spec.get("prompt") or "",
        "height": spec["height"],
        "width": spec["width"],
        "num_frames": spec["num_frames"],
        "num_inference_steps": spec["num_inference_steps"],
        "guidance_scale": spec["guidance_scale"],
        "generator": generator(spec["seed"]),
    }
    if spec.get("negative_prompt"):
        kwargs["negative_prompt"] = spec["negative_prompt"]
    if entry.task == "image-to-video":
        kwargs["image"] = first_frame(item)
    return kwargs


def generator(seed: int) -> torch.Generator:
    """A CPU generator: the same seed gives the same noise on every device."""
    return torch.Generator(device="cpu").manual_seed(seed)


def first_frame(item: WorkItem) -> Image.Image:
    """The input image, scaled and centre-cropped to the requested frame size."""
    size = (item.input["width"], item.input["height"])
    return ImageOps.fit(open_image(item.files["image"]), size, Image.Resampling.LANCZOS)


def run_videos(
    pipe: Any, entry: CatalogEntry, items: list[WorkItem], ctx: RunContext, call_args: CallArgs
) -> list[JobOutput]:
    """One pipeline call per job, in order; canceled jobs get no files."""
    outputs: list[JobOutput] = []
    for index, item in enumerate(items):
        if ctx.is_canceled(item.job_id):
            outputs.append(JobOutput(files={}))
            continue
        kwargs = {**call_args(entry, item), **entry.call_args}
        frames = generate(pipe, kwargs, ctx, index, len(items))
        if frames is None or ctx.is_canceled(item.job_id):
            outputs.append(JobOutput(files={}))
            continue
        check_frames(entry, item, frames)
        ctx.log(f"decoded {frames.shape[0]} frames of {frames.shape[2]}x{frames.shape[1]}")
        ctx.stage("encoding media")
        video = encode_video(frames, item.input["fps"])
        ctx.log(f"encoded an H.264 MP4 of {len(video.data)} bytes at {item.input['fps']} fps")
        outputs.append(JobOutput(files={"videos": [video], "previews": [poster(frames)]}))
    return outputs


def generate(pipe: Any, kwargs: dict[str, Any], ctx: RunContext, index: int, count: int) -> np.ndarray[Any, Any] | None:
    """Run the pipeline with step progress; the frames as uint8 (count, height, width, 3),
    or None when the batch was stopped."""
    steps = int(kwargs["num_inference_steps"])

    def on_step(p: Any, step: int, _timestep: Any, tensors: dict[str, Any]) -> dict[str, Any]:
        total = int(getattr(p, "num_timesteps", 0) or steps)
        ctx.step(index * total + step + 1, count * total)
        if ctx.should_stop():
            raise Stopped
        if step + 1 >= total:
            ctx.stage("decoding")
        return tensors

    ctx.stage("denoising")
    try:
        with torch.inference_mode():
            result = pipe(**kwargs, output_type="np", callback_on_step_end=on_step)
    except Stopped:
        return None
    return to_uint8_frames(result.frames[0])


def check_frames(entry: CatalogEntry, item: WorkItem, frames: np.ndarray[Any, Any]) -> None:
    """The model made what was asked for; if not, the catalog entry is wrong (not retried)."""
    spec = item.input
    wanted = (spec["num_frames"], spec["height"], spec["width"])
    made = tuple(int(n) for n in frames.shape[:3])
    if made != wanted:
        raise ModelError(
            f"{entry.id} made {made[0]} frames of {made[2]}x{made[1]} for num_frames={wanted[0]} at "
            f"{wanted[2]}x{wanted[1]}: its catalog limits (frames_multiple, size_multiple) do not match the model"
        )
