"""Family ``animatediff``: text to video with ``AnimateDiffPipeline``, a Stable Diffusion 1.5
checkpoint plus a motion adapter.

The two are published apart, so an entry names both: ``source`` is the SD 1.5 base (any
fine-tune works) and ``components.motion_adapter`` the ``MotionAdapter`` (e.g.
``hf://guoyww/animatediff-motion-adapter-v1-5-2``). A source that already holds a whole
AnimateDiff pipeline needs no component. The scheduler becomes DDIM with linear betas and
linspace spacing, the setting AnimateDiff's motion modules were trained with (diffusers'
AnimateDiff guide); the v1-5-2 adapter knows at most 32 frames (``limits.max_frames``).

Steps: 1. load (motion adapter, then the base with it, DDIM, place)
       2. check (SVD's knobs are refused at submit: the family declares them)
       3. prepare (one call's arguments)  4. call (denoising with progress and stop, then
       decoding)  5. encode (MP4 + poster)
"""

from __future__ import annotations

from typing import Any

from diffusers import AnimateDiffPipeline, DDIMScheduler, MotionAdapter

from limner.adapters.base import LoadedModel, LoadEnv, WorkItem
from limner.adapters.diffusers_loading import component_path, load_pipeline, loaded, unload_pipeline
from limner.adapters.loading import quiet_runtimes, resolve_dtype
from limner.adapters.video_steps import VideoAdapter, prompted_call_args
from limner.catalog.entry import CatalogEntry
from limner.errors import ModelUnavailable
from limner.tasks.video import TextToVideoInput


class AnimateDiffAdapter(VideoAdapter[TextToVideoInput]):
    # -- 1. load ---------------------------------------------------------------------------

    def load(self, entry: CatalogEntry, env: LoadEnv) -> LoadedModel:
        components: dict[str, Any] = {}
        revision_parts: list[str] = []
        found = component_path(entry, "motion_adapter", env)
        if found is not None:
            path, adapter_revision = found
            dtype = resolve_dtype(entry.runtime.dtype, env.device)
            try:
                components["motion_adapter"] = MotionAdapter.from_pretrained(
                    str(path), dtype=dtype, use_safetensors=True
                )
            except (OSError, ValueError) as exc:
                raise ModelUnavailable(f"cannot load {entry.id}'s motion adapter from {path}: {exc}") from exc
            revision_parts.append(f"motion_adapter:{adapter_revision}")
        pipe, revision = load_pipeline(AnimateDiffPipeline, entry, env, **components)
        if getattr(pipe, "motion_adapter", None) is None:
            raise ModelUnavailable(
                f"{entry.id}: {entry.source} holds no motion adapter; name one in the entry's "
                "components.motion_adapter (e.g. hf://guoyww/animatediff-motion-adapter-v1-5-2)"
            )
        pipe.scheduler = DDIMScheduler.from_config(
            pipe.scheduler.config,
            beta_schedule="linear",
            clip_sample=False,
            timestep_spacing="linspace",
            steps_offset=1,
        )
        return loaded(pipe, "+".join([revision, *revision_parts]), env)

    def unload(self, model: LoadedModel) -> None:
        unload_pipeline(model)

    # -- 2. check: SVD's knobs are refused at submit (the family declares them) ---------------
    # -- 3. prepare, 4. call, 5. encode: video_steps.VideoAdapter, with these arguments --------

    def call_args(self, entry: CatalogEntry, item: WorkItem[TextToVideoInput]) -> dict[str, Any]:
        return prompted_call_args(entry, item)


def make_adapter() -> AnimateDiffAdapter:
    quiet_runtimes()
    return AnimateDiffAdapter()
