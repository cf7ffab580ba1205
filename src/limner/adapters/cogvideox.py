"""Family ``cogvideox``: CogVideoX text to video (``CogVideoXPipeline``) and image to video
(``CogVideoXImageToVideoPipeline``) with diffusers.

CogVideoX's VAE decodes latent frames in pairs, so only ``num_frames = 8k + 1`` comes out
exactly as asked (catalog ``limits.frames_multiple: 8``; 49 for the 5B models). The
image-to-video model's learned position embeddings pin it to its training size (720x480):
its catalog limits make min and max sizes equal. Recommended call options such as
``use_dynamic_cfg`` go in the entry's ``call_args``.

Steps: 1. load (the task's pipeline class, from_pretrained, place; VAE tiling/slicing from the
       entry)  2. check (SVD's knobs are refused at submit: the family declares them)
       3. prepare (one call's arguments; the first frame fitted to the frame size)
       4. call (denoising with progress and stop, then decoding)  5. encode (MP4 + poster)
"""

from __future__ import annotations

from typing import Any

from diffusers import CogVideoXImageToVideoPipeline, CogVideoXPipeline

from limner.adapters.base import LoadedModel, LoadEnv, WorkItem
from limner.adapters.diffusers_loading import load_pipeline, loaded, unload_pipeline
from limner.adapters.loading import quiet_runtimes
from limner.adapters.video_steps import VideoAdapter, prompted_call_args
from limner.catalog.entry import CatalogEntry
from limner.tasks.video import ImageToVideoInput, TextToVideoInput

TASK_PIPELINES: dict[str, Any] = {"text-to-video": CogVideoXPipeline, "image-to-video": CogVideoXImageToVideoPipeline}


class CogVideoXAdapter(VideoAdapter[TextToVideoInput | ImageToVideoInput]):
    # -- 1. load ---------------------------------------------------------------------------

    def load(self, entry: CatalogEntry, env: LoadEnv) -> LoadedModel:
        pipe, revision = load_pipeline(TASK_PIPELINES[entry.task], entry, env)
        return loaded(pipe, revision, env)

    def unload(self, model: LoadedModel) -> None:
        unload_pipeline(model)

    # -- 2. check: SVD's knobs are refused at submit (the family declares them) ---------------
    # -- 3. prepare, 4. call, 5. encode: video_steps.VideoAdapter, with these arguments --------

    def call_args(self, entry: CatalogEntry, item: WorkItem[TextToVideoInput | ImageToVideoInput]) -> dict[str, Any]:
        return prompted_call_args(entry, item)


def make_adapter() -> CogVideoXAdapter:
    quiet_runtimes()
    return CogVideoXAdapter()
