"""Family ``lora-trainer``: LoRA (DreamBooth) training of SD 1.5, SDXL and FLUX.1, as a job.

The shape of diffusers' DreamBooth LoRA scripts, inside a worker: the base pipeline is loaded
once and stays resident; a job adds a peft LoRA adapter to its denoiser (the attention
projections, ``lora_alpha = rank``, gaussian init), trains only that adapter with AdamW on
cached latents and once-encoded prompts, and removes it again when the job ends. Steps:

1. load: the pipeline (``DiffusionPipeline.from_pretrained``, safetensors only); levers the
   hardware cannot pull (8-bit AdamW without bitsandbytes and a GPU) are refused first;
2. prepare: decode and crop the training images, make the class images (prior preservation)
   with the base model, hold back images for early stopping;
3. call: the training loop: ``{stage: training, step, total, loss, eta_s}`` at every step, a
   checkpoint every ``checkpoint_every`` steps (LoRA file, resume state, validation images),
   resume from the latest checkpoint when the job was claimed again, early stopping, cancel;
4. encode: the final LoRA file (safetensors) and the run's figures.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from diffusers import DiffusionPipeline
from diffusers.training_utils import cast_training_params
from peft import LoraConfig
from PIL import Image

from limner.adapters.base import (
    Chunk,
    FamilyAdapter,
    JobOutput,
    LoadedModel,
    LoadEnv,
    RunContext,
    TrainingContext,
    WorkItem,
)
from limner.adapters.diffusers_loading import load_pipeline, loaded, unload_pipeline
from limner.adapters.loading import quiet_runtimes, resolve_dtype
from limner.adapters.lora_objectives import ADAPTER, Latents, Objective, SDXLObjective, objective_for
from limner.adapters.lora_state import RunState, dump_state, load_state, state_metadata
from limner.catalog.entry import CatalogEntry, TrainingOptions
from limner.errors import ModelUnavailable
from limner.media.images import MediaFile, encode_image, open_image
from limner.media.types import WEIGHT_TYPES
from limner.progress import Stage
from limner.tasks.training import LoraTrainingInput

EMA = 0.1  # smoothing of the training loss shown in progress and watched for divergence
WARMUP_STEPS = 10  # steps before divergence is judged
HELDOUT_DRAWS = 4  # fixed (noise, timestep) draws per held-back image
MAX_CURVE_POINTS = 200  # the result's loss curve is averaged down to this many points


@dataclass
class Sample:
    latents: Latents
    cond: tuple[torch.Tensor, ...]


@dataclass
class Trained:
    """What a run made: the LoRA file and its figures."""

    lora: bytes
    rank: int
    steps_done: int
    checkpoints: list[dict[str, Any]] = field(default_factory=list)
    curve: list[float] = field(default_factory=list)
    stopped_early: bool = False
    stop_reason: str | None = None
    best_step: int | None = None
    resumed_from: int | None = None


def _pixels(data: bytes, size: int) -> torch.Tensor:
    """Resize the shorter side to ``size`` and center-crop (the scripts' --center_crop), in [-1, 1]."""
    image = open_image(data)
    scale = size / min(image.size)
    image = image.resize(
        (max(size, round(image.width * scale)), max(size, round(image.height * scale))), Image.Resampling.LANCZOS
    )
    left, top = (image.width - size) // 2, (image.height - size) // 2
    image = image.crop((left, top, left + size, top + size))
    tensor = torch.frombuffer(bytearray(image.tobytes()), dtype=torch.uint8).reshape(size, size, 3)
    return (tensor.permute(2, 0, 1).float() / 127.5 - 1.0).unsqueeze(0)


class LoraTrainerAdapter(FamilyAdapter[LoraTrainingInput, WorkItem[LoraTrainingInput], Trained]):
    rows_per_call = 1

    # -- 1. load -----------------------------------------------------------------------------

    def load(self, entry: CatalogEntry, env: LoadEnv) -> LoadedModel:
        options = entry.runtime.training or TrainingOptions()
        resolve_dtype(entry.runtime.dtype, env.device)  # float16 on a CPU is refused here
        if options.optimizer == "adamw8bit":
            require_8bit_adam(env.device)
        pipe, revision = load_pipeline(DiffusionPipeline, entry, env)
        objective_for(pipe, env.device, pipe.dtype, entry.call_args)  # refuses an architecture it cannot train
        return loaded(pipe, revision, env)

    def unload(self, model: LoadedModel) -> None:
        unload_pipeline(model)

    # -- 2. prepare --------------------------------------------------------------------------

    def prepare(
        self,
        model: LoadedModel,
        entry: CatalogEntry,
        items: list[WorkItem[LoraTrainingInput]],
        ctx: RunContext,
    ) -> list[list[WorkItem[LoraTrainingInput]]]:
        return [[item] for item in items]

    # -- 3. call -----------------------------------------------------------------------------

    def call(
        self,
        model: LoadedModel,
        entry: CatalogEntry,
        chunk: Chunk[LoraTrainingInput, WorkItem[LoraTrainingInput]],
    ) -> list[Trained]:
        item = chunk.rows[0]
        return [TrainingRun(model, entry, item, chunk).run()]

    # -- 4. encode ---------------------------------------------------------------------------

    def encode(
        self,
        model: LoadedModel,
        entry: CatalogEntry,
        item: WorkItem[LoraTrainingInput],
        results: list[Trained],
        ctx: RunContext,
    ) -> JobOutput:
        made = results[0]
        lora = MediaFile(made.lora, WEIGHT_TYPES["safetensors"], "safetensors", {"rank": made.rank})
        return JobOutput(
            files={"lora": [lora]},
            extra={
                "checkpoints": made.checkpoints,
                "loss_curve": curve_points(made.curve),
                "stopped_early": made.stopped_early,
                "stop_reason": made.stop_reason,
                "best_checkpoint": made.best_step,
                "steps_done": made.steps_done,
                "resumed_from": made.resumed_from,
            },
        )


class TrainingRun:
    """One job's training, from its input (or its latest checkpoint) to its final LoRA."""

    def __init__(
        self,
        model: LoadedModel,
        entry: CatalogEntry,
        item: WorkItem[LoraTrainingInput],
        chunk: Chunk[LoraTrainingInput, WorkItem[LoraTrainingInput]],
    ) -> None:
        self.entry = entry
        self.item = item
        self.spec = item.input
        self.chunk = chunk
        self.ctx = chunk.ctx
        self.training = entry.runtime.training or TrainingOptions()
        self.device = model.device
        self.pipe: Any = model.handle
        self.dtype: torch.dtype = self.pipe.dtype
        self.objective: Objective = objective_for(self.pipe, self.device, self.dtype, entry.call_args)
        if isinstance(self.objective, SDXLObjective):
            self.objective.size = self.spec.resolution
        self.seed = self.spec.chosen_seed()
        self.generator = torch.Generator(device="cpu").manual_seed(self.seed)
        sink = self.ctx.checkpoints if isinstance(self.ctx, TrainingContext) else None
        self.sink = sink
        self.entries: list[dict[str, Any]] = []

    # -- the run -----------------------------------------------------------------------------

    def run(self) -> Trained:
        self.ctx.stage(Stage.PREPARING)
        train, heldout, classes = self._data()
        with self._adapter() as params:
            optimizer = self._optimizer(list(params.values()))
            state = RunState(step=0, curve=[])
            resumed = self._resume(params, optimizer)
            if resumed is not None:
                state = resumed
            start = state.step
            self.ctx.stage(Stage.TRAINING)
            total = self.spec.steps
            interval = self.spec.checkpoint_interval()
            every = (self.spec.early_stopping.eval_every if self.spec.early_stopping else None) or interval
            for step in range(start + 1, total + 1):
                loss = self._step(train, classes, optimizer, params)
                state.curve.append(loss)
                self._watch(state, loss, step)
                self._figures(state)
                self.chunk.step(step, total)  # raises Stopped once the job was canceled
                if self.spec.early_stopping is not None and step % every == 0:
                    self._evaluate(state, heldout, step)
                state.step = step
                stopping = state.stop.reason is not None
                if step % interval == 0 or step == total or stopping:
                    self._checkpoint(state, params, optimizer)
                    self.ctx.stage(Stage.TRAINING)
                    self.chunk.step(step, total)  # back in training at the same step, not at 0
                    self._figures(state)
                if stopping:
                    break
            lora = self.objective.lora_file()
        return Trained(
            lora=lora,
            rank=self.spec.rank,
            steps_done=state.step,
            checkpoints=self.entries,
            curve=state.curve,
            stopped_early=state.stop.reason is not None,
            stop_reason=state.stop.reason,
            best_step=state.stop.best_step,
            resumed_from=start or None,
        )

    # -- data --------------------------------------------------------------------------------

    def _data(self) -> tuple[list[Sample], list[Sample], list[Sample]]:
        spec, size = self.spec, self.spec.resolution
        images = spec.stored_images()
        encodings: dict[str, tuple[torch.Tensor, ...]] = {}

        def cond(prompt: str) -> tuple[torch.Tensor, ...]:
            if prompt not in encodings:
                encodings[prompt] = self.objective.encode_prompt(prompt)
            return encodings[prompt]

        samples = []
        for index, image in enumerate(images):
            pixels = _pixels(self.item.files[f"images.{index}"], size)
            samples.append(Sample(self.objective.encode_image(pixels), cond(spec.caption_for(image))))
        classes = self._class_samples(cond) if spec.prior_preservation else []
        heldout: list[Sample] = []
        if spec.early_stopping is not None and len(samples) >= 4:
            count = max(1, len(samples) // 5)
            heldout, samples = samples[-count:], samples[:-count]
        return samples, heldout or samples, classes

    def _class_samples(self, cond: Any) -> list[Sample]:
        """Prior preservation: the base model's own images of the class, made before any LoRA."""
        spec, size = self.spec, self.spec.resolution
        self.ctx.stage(Stage.MAKING_CLASS_IMAGES)
        prompt = spec.class_prompt or ""
        out = []
        for index in range(spec.num_class_images):
            with torch.no_grad():
                image = self._draw(prompt, self.seed + 1000 + index)
            pixels = _pixels(_png(image), size)
            out.append(Sample(self.objective.encode_image(pixels), cond(prompt)))
            self.chunk.step(index + 1, spec.num_class_images)
        return out

    # -- the adapter and the optimizer -------------------------------------------------------

    @contextlib.contextmanager
    def _adapter(self) -> Iterator[dict[str, torch.Tensor]]:
        """The peft LoRA on the denoiser for the run, removed afterwards (the base stays resident)."""
        denoiser = self.objective.denoiser
        for part in (denoiser, self.pipe.vae, getattr(self.pipe, "text_encoder", None)):
            if part is not None:
                part.requires_grad_(False)
        if ADAPTER in (getattr(denoiser, "peft_config", None) or {}):
            denoiser.delete_adapters(ADAPTER)  # left by a run that raised
        torch.manual_seed(self.seed)  # the gaussian init of lora_A
        config = LoraConfig(
            r=self.spec.rank,
            lora_alpha=self.spec.rank,
            init_lora_weights="gaussian",
            target_modules=self.objective.targets,
        )
        denoiser.add_adapter(config, adapter_name=ADAPTER)
        if self.dtype != torch.float32:
            cast_training_params(denoiser, dtype=torch.float32)  # the LoRA trains in full precision
        if self.training.gradient_checkpointing:
            denoiser.enable_gradient_checkpointing()
        denoiser.train()
        try:
            yield {name: p for name, p in denoiser.named_parameters() if p.requires_grad}
        finally:
            denoiser.eval()
            if self.training.gradient_checkpointing:
                denoiser.disable_gradient_checkpointing()
            denoiser.delete_adapters(ADAPTER)

    def _optimizer(self, params: list[torch.Tensor]) -> torch.optim.Optimizer:
        if self.training.optimizer == "adamw8bit":
            import bitsandbytes as bnb  # type: ignore[import-not-found]

            optimizer: torch.optim.Optimizer = bnb.optim.AdamW8bit(params, lr=self.spec.learning_rate)
            return optimizer
        return torch.optim.AdamW(params, lr=self.spec.learning_rate, betas=(0.9, 0.999), weight_decay=1e-4, eps=1e-8)

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.dtype == torch.float32:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.split(":")[0], dtype=self.dtype)

    # -- one step ----------------------------------------------------------------------------

    def _step(
        self,
        train: list[Sample],
        classes: list[Sample],
        optimizer: torch.optim.Optimizer,
        params: dict[str, torch.Tensor],
    ) -> float:
        pick = train[int(torch.randint(len(train), (1,), generator=self.generator))]
        batch = [pick]
        if classes:
            batch.append(classes[int(torch.randint(len(classes), (1,), generator=self.generator))])
        latents = torch.cat([s.latents.sample(self.generator) for s in batch]).to(self.device)
        with self._autocast():
            losses = self.objective.loss(latents, [s.cond for s in batch], self.generator)
        loss = losses[0] + (self.spec.prior_loss_weight * losses[1] if classes else 0.0)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(list(params.values()), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return float(loss.detach())

    def _watch(self, state: RunState, loss: float, step: int) -> None:
        """The moving average of the loss, and divergence (it ran away, or is not a number)."""
        stop = state.stop
        stop.ema = loss if stop.ema is None else (1 - EMA) * stop.ema + EMA * loss
        if not math.isfinite(loss):
            stop.reason = f"diverged: the loss is {loss} at step {step}"
            return
        if step >= WARMUP_STEPS:
            stop.lowest_ema = stop.ema if stop.lowest_ema is None else min(stop.lowest_ema, stop.ema)
        limit = self.spec.early_stopping.divergence if self.spec.early_stopping else None
        if limit and stop.lowest_ema and stop.ema > limit * stop.lowest_ema:
            stop.reason = (
                f"diverged: the loss average {stop.ema:.4g} passed {limit:g}x its lowest ({stop.lowest_ema:.4g})"
            )

    def _evaluate(self, state: RunState, heldout: list[Sample], step: int) -> None:
        """The held-back loss at fixed noise and timesteps (comparable across evaluations)."""
        rules = self.spec.early_stopping
        assert rules is not None
        generator = torch.Generator(device="cpu").manual_seed(self.seed + 7)
        total = 0.0
        with torch.no_grad(), self._autocast():
            for sample in heldout:
                for _ in range(HELDOUT_DRAWS):
                    latents = sample.latents.sample(generator).to(self.device)
                    total += float(self.objective.loss(latents, [sample.cond], generator)[0])
        value = total / (len(heldout) * HELDOUT_DRAWS)
        state.heldout.append((step, value))
        stop = state.stop
        if stop.best_heldout is None or value < stop.best_heldout - rules.min_delta:
            stop.best_heldout, stop.best_step, stop.bad_evals = value, step, 0
        else:
            stop.bad_evals += 1
            if stop.bad_evals >= rules.patience:
                stop.reason = (
                    f"the held-back loss did not improve by {rules.min_delta:g} in {rules.patience} evaluations "
                    f"(best {stop.best_heldout:.4g} at step {stop.best_step})"
                )

    def _figures(self, state: RunState, *, now: bool = False) -> None:
        if isinstance(self.ctx, TrainingContext):
            values: dict[str, Any] = {"loss": round(state.curve[-1], 6)}
            if state.stop.ema is not None:
                values["loss_avg"] = round(state.stop.ema, 6)
            self.ctx.figures(values, now=now)

    # -- checkpoints -------------------------------------------------------------------------

    def _checkpoint(self, state: RunState, params: dict[str, torch.Tensor], optimizer: torch.optim.Optimizer) -> None:
        # The checkpoint's progress keeps the step it was made at, and the loss: a client that
        # looks while it is written (validation images take a while) sees where training is.
        self.ctx.stage(Stage.CHECKPOINTING)
        self.chunk.step(state.step, self.spec.steps)
        self._figures(state, now=True)  # written at once: a checkpoint is rare, and clients watch for it
        lora = self.objective.lora_file()
        images = [encode_image(self._draw(p, self.seed + i), "png") for i, p in enumerate(self.spec.validation_prompts)]
        loss = sum(state.curve[-10:]) / len(state.curve[-10:]) if state.curve else None
        heldout = state.heldout[-1][1] if state.heldout and state.heldout[-1][0] == state.step else None
        if self.sink is None:
            self.entries.append({"step": state.step, "loss": loss, "heldout_loss": heldout})
            return
        blob = dump_state(state, params, optimizer, self.generator)
        self.entries.append(self.sink.save(self.item.job_id, state.step, lora, blob, images, loss, heldout))
        self.ctx.log(
            f"checkpoint at step {state.step} of {self.spec.steps} (loss {loss:.4g})" if loss else "checkpoint"
        )

    def _resume(self, params: dict[str, torch.Tensor], optimizer: torch.optim.Optimizer) -> RunState | None:
        if self.sink is None:
            return None
        latest = self.sink.latest_state(self.item.job_id)
        if latest is None:
            return None
        step, blob = latest
        state = load_state(blob, state_metadata(blob), params, optimizer, self.generator)
        self.entries = [e for e in self.sink.entries(self.item.job_id) if e["step"] <= step]
        self.ctx.log(f"resumed from the checkpoint at step {step} of {self.spec.steps} (not from step 0)")
        return state

    # -- drawing -----------------------------------------------------------------------------

    def _draw(self, prompt: str, seed: int) -> Image.Image:
        """One image with the pipeline as it is now (the LoRA active during training)."""
        denoiser = self.objective.denoiser
        was_training = denoiser.training
        denoiser.eval()
        kwargs: dict[str, Any] = {
            "prompt": prompt,
            "num_inference_steps": self.training.validation_steps,
            "guidance_scale": self.training.validation_guidance,
            "width": self.spec.resolution,
            "height": self.spec.resolution,
            "generator": torch.Generator(device="cpu").manual_seed(seed),
            "output_type": "pil",
            **self.entry.call_args,
        }
        try:
            with torch.no_grad():
                image: Image.Image = self.pipe(**kwargs).images[0]
        finally:
            denoiser.train(was_training)
        return image


def _png(image: Image.Image) -> bytes:
    return encode_image(image, "png").data


def curve_points(curve: list[float]) -> list[dict[str, float]]:
    """The loss per step, averaged over windows so that at most MAX_CURVE_POINTS remain."""
    window = max(1, math.ceil(len(curve) / MAX_CURVE_POINTS))
    points = []
    for start in range(0, len(curve), window):
        part = curve[start : start + window]
        points.append({"step": start + len(part), "loss": round(sum(part) / len(part), 6)})
    return points


def require_8bit_adam(device: str) -> None:
    """8-bit AdamW needs bitsandbytes and a CUDA GPU: refused before any weights load."""
    from importlib.util import find_spec

    if not device.startswith("cuda"):
        raise ModelUnavailable(f"runtime.training.optimizer adamw8bit needs a CUDA GPU; this worker runs on {device}")
    if find_spec("bitsandbytes") is None:
        raise ModelUnavailable(
            "runtime.training.optimizer adamw8bit needs bitsandbytes (pip install 'limner[nf4]'), "
            "which is not installed"
        )


def make_adapter() -> LoraTrainerAdapter:
    quiet_runtimes()
    return LoraTrainerAdapter()
