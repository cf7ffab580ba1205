"""Family ``wan``: Wan2.1 text to video (``WanPipeline``) and image to video
(``WanImageToVideoPipeline``) with diffusers.

Wan's VAE compresses time 4x, so ``num_frames - 1`` must be a multiple of 4 (catalog
``limits.frames_multiple: 4``), and sizes multiples of 16. The VAE and the CLIP image encoder
stay in float32 whatever the transformer's dtype, as Wan's own examples load them.

Steps: 1. load (the task's pipeline class, from_pretrained, place)  2. check (SVD's knobs
       are refused at submit: the family declares them)  3. prepare (one call's arguments; the
       first frame fitted to the frame size)  4. call (denoising with progress and stop, then
       decoding)  5. encode (MP4 + poster)
"""

from __future__ import annotations

from typing import Any

from diffusers import WanImageToVideoPipeline, WanPipeline

from limner.adapters.base import LoadedModel, LoadEnv, WorkItem
from limner.adapters.diffusers_loading import load_pipeline, loaded, unload_pipeline
from limner.adapters.loading import quiet_runtimes
from limner.adapters.video_steps import VideoAdapter, prompted_call_args
from limner.catalog.entry import CatalogEntry
from limner.tasks.video import ImageToVideoInput, TextToVideoInput

TASK_PIPELINES: dict[str, Any] = {"text-to-video": WanPipeline, "image-to-video": WanImageToVideoPipeline}


class WanAdapter(VideoAdapter[TextToVideoInput | ImageToVideoInput]):
    # -- 1. load ---------------------------------------------------------------------------

    def load(self, entry: CatalogEntry, env: LoadEnv) -> LoadedModel:
        pipe, revision = load_pipeline(TASK_PIPELINES[entry.task], entry, env, keep_float32=("vae", "image_encoder"))
        return loaded(pipe, revision, env)

    def unload(self, model: LoadedModel) -> None:
        unload_pipeline(model)

    # -- 2. check: SVD's knobs are refused at submit (the family declares them) ---------------
    # -- 3. prepare, 4. call, 5. encode: video_steps.VideoAdapter, with these arguments --------

    def call_args(self, entry: CatalogEntry, item: WorkItem[TextToVideoInput | ImageToVideoInput]) -> dict[str, Any]:
        return prompted_call_args(entry, item)


def make_adapter() -> WanAdapter:
    quiet_runtimes()
    return WanAdapter()
