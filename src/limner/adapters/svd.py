"""Family ``stable-video-diffusion``: image to video with ``StableVideoDiffusionPipeline``.

SVD takes no text: ``prompt`` and ``negative_prompt`` are refused. It is conditioned on the
frame rate (the request's ``fps``, which is also the file's), a motion bucket and the noise
added to the first frame (``motion_bucket_id``, ``noise_aug_strength``; the pipeline's defaults
when absent). Its guidance ramps linearly over the frames from ``min_guidance_scale`` (1.0,
or the entry's ``call_args``) to the request's ``guidance_scale``. ``decode_chunk_size`` in
``call_args`` trades decoding memory for speed.

Steps: 1. load (from_pretrained, place)  2. check (text is refused at submit: the family
       declares it)  3. prepare (one call's arguments; the first frame fitted to the frame
       size)  4. call (denoising with progress and stop, then decoding)  5. encode (MP4 + poster)
"""

from __future__ import annotations

from typing import Any

from diffusers import StableVideoDiffusionPipeline

from limner.adapters.base import LoadedModel, LoadEnv, WorkItem
from limner.adapters.diffusers_loading import load_pipeline, loaded, unload_pipeline
from limner.adapters.loading import quiet_runtimes
from limner.adapters.video_steps import VideoAdapter, first_frame, generator
from limner.catalog.entry import CatalogEntry
from limner.tasks.video import ImageToVideoInput


class StableVideoDiffusionAdapter(VideoAdapter[ImageToVideoInput]):
    # -- 1. load ---------------------------------------------------------------------------

    def load(self, entry: CatalogEntry, env: LoadEnv) -> LoadedModel:
        pipe, revision = load_pipeline(StableVideoDiffusionPipeline, entry, env)
        return loaded(pipe, revision, env)

    def unload(self, model: LoadedModel) -> None:
        unload_pipeline(model)

    # -- 2. check: text is refused at submit (the family declares it) -------------------------
    # -- 3. prepare, 4. call, 5. encode: video_steps.VideoAdapter, with these arguments --------

    def call_args(self, entry: CatalogEntry, item: WorkItem[ImageToVideoInput]) -> dict[str, Any]:
        spec = item.input
        width, height = spec.output_size()
        kwargs: dict[str, Any] = {
            "image": first_frame(item.files["image"], (width, height)),
            "height": height,
            "width": width,
            "num_frames": spec.num_frames,
            "num_inference_steps": spec.num_inference_steps,
            "max_guidance_scale": spec.guidance_scale,
            "fps": spec.fps,
            "generator": generator(spec.chosen_seed()),
        }
        if spec.motion_bucket_id is not None:
            kwargs["motion_bucket_id"] = spec.motion_bucket_id
        if spec.noise_aug_strength is not None:
            kwargs["noise_aug_strength"] = spec.noise_aug_strength
        return kwargs


def make_adapter() -> StableVideoDiffusionAdapter:
    quiet_runtimes()
    return StableVideoDiffusionAdapter()
