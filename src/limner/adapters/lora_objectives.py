"""What a LoRA training step computes, per base architecture, as diffusers' DreamBooth LoRA
scripts do it (``train_dreambooth_lora.py``, ``…_sdxl.py``, ``…_flux.py``):

- SD 1.5: the UNet predicts the noise (or velocity) added at a random DDPM timestep;
- SDXL: the same, with its pooled text embeddings and size/crop time ids as added conditions;
- FLUX.1: flow matching: the transformer predicts ``noise - latents`` at a random sigma, on
  2x2-packed latents, with its guidance embedding.

Each objective encodes prompts once (the text encoders are frozen), encodes images to latent
distributions (cached, or each step), draws every random number from the one generator it is
given (so a checkpoint's generator state makes a resumed run draw what it would have drawn),
and saves the trained layers in the format its pipeline's ``load_lora_weights`` reads.
"""

from __future__ import annotations

import tempfile
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler, FlowMatchEulerDiscreteScheduler, FluxPipeline
from diffusers.utils.state_dict_utils import convert_state_dict_to_diffusers
from peft.utils import get_peft_model_state_dict

from limner.errors import ModelUnavailable

ADAPTER = "limner_train"
# The layers the scripts adapt by default: attention projections.
UNET_TARGETS = ["to_k", "to_q", "to_v", "to_out.0", "add_k_proj", "add_v_proj"]
FLUX_TARGETS = ["attn.to_k", "attn.to_q", "attn.to_v", "attn.to_out.0", "attn.add_k_proj", "attn.add_q_proj",
                "attn.add_v_proj", "attn.to_add_out"]  # fmt: skip
FLUX_TRAIN_GUIDANCE = 1.0  # the FLUX script's default --guidance_scale for guidance-distilled bases


@dataclass
class Latents:
    """A latent distribution (mean and std), sampled anew at every step."""

    mean: torch.Tensor
    std: torch.Tensor

    def sample(self, generator: torch.Generator) -> torch.Tensor:
        noise = torch.randn(self.mean.shape, generator=generator, dtype=torch.float32).to(self.mean)
        sample: torch.Tensor = self.mean + self.std * noise
        return sample


class Objective(ABC):
    """The base: a pipeline, its denoiser (``unet`` or ``transformer``) and its noise schedule."""

    denoiser_name = "unet"
    targets: list[str] = UNET_TARGETS

    def __init__(self, pipe: Any, device: str, dtype: torch.dtype, call_args: dict[str, Any]) -> None:
        self.pipe = pipe
        self.device = device
        self.dtype = dtype
        self.call_args = call_args
        self.denoiser: Any = getattr(pipe, self.denoiser_name)
        self.vae: Any = pipe.vae

    # -- encoding (no gradients) -----------------------------------------------------------------

    @abstractmethod
    def encode_prompt(self, prompt: str) -> tuple[torch.Tensor, ...]: ...

    @torch.no_grad()
    def encode_image(self, pixels: torch.Tensor) -> Latents:
        dist = self.vae.encode(pixels.to(self.device, self.vae.dtype)).latent_dist
        return Latents(dist.mean.float(), dist.std.float())

    def scaled(self, latents: torch.Tensor) -> torch.Tensor:
        scaled: torch.Tensor = latents * self.vae.config.scaling_factor
        return scaled

    # -- one step ----------------------------------------------------------------------------

    @abstractmethod
    def loss(self, latents: torch.Tensor, cond: list[tuple[torch.Tensor, ...]], generator: torch.Generator) -> Any:
        """Per-sample losses (a vector) for a batch of latents with their prompts' encodings."""

    # -- saving ------------------------------------------------------------------------------

    def lora_layers(self) -> dict[str, torch.Tensor]:
        return dict(convert_state_dict_to_diffusers(get_peft_model_state_dict(self.denoiser, adapter_name=ADAPTER)))

    def lora_file(self) -> bytes:
        """The trained layers as the pipeline's ``save_lora_weights`` writes them (safetensors)."""
        layers = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in self.lora_layers().items()}
        metadata = self.denoiser.peft_config[ADAPTER].to_dict()
        with tempfile.TemporaryDirectory(prefix="limner-lora-") as folder:
            type(self.pipe).save_lora_weights(
                folder,
                **{
                    f"{self.denoiser_name}_lora_layers": layers,
                    f"{self.denoiser_name}_lora_adapter_metadata": metadata,
                },
                weight_name="lora.safetensors",
                safe_serialization=True,
            )
            return (Path(folder) / "lora.safetensors").read_bytes()


class SDObjective(Objective):
    """Stable Diffusion 1.x: epsilon (or v) prediction at a DDPM timestep."""

    def __init__(self, pipe: Any, device: str, dtype: torch.dtype, call_args: dict[str, Any]) -> None:
        super().__init__(pipe, device, dtype, call_args)
        self.noise_scheduler = DDPMScheduler.from_config(pipe.scheduler.config)

    @torch.no_grad()
    def encode_prompt(self, prompt: str) -> tuple[torch.Tensor, ...]:
        embeds, _ = self.pipe.encode_prompt(prompt, self.device, 1, False)
        return (embeds.to(self.dtype),)

    def _noised(self, latents: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, ...]:
        latents = self.scaled(latents)
        noise = torch.randn(latents.shape, generator=generator).to(latents)
        steps = int(self.noise_scheduler.config.num_train_timesteps)
        timesteps = torch.randint(0, steps, (latents.shape[0],), generator=generator).to(self.device)
        noisy = self.noise_scheduler.add_noise(latents, noise, timesteps)
        if self.noise_scheduler.config.prediction_type == "v_prediction":
            target = self.noise_scheduler.get_velocity(latents, noise, timesteps)
        else:
            target = noise
        return noisy, timesteps, target

    def added_conditions(self, cond: list[tuple[torch.Tensor, ...]]) -> dict[str, Any]:
        return {}

    def loss(self, latents: torch.Tensor, cond: list[tuple[torch.Tensor, ...]], generator: torch.Generator) -> Any:
        noisy, timesteps, target = self._noised(latents, generator)
        hidden = torch.cat([c[0] for c in cond])
        pred = self.denoiser(noisy.to(self.dtype), timesteps, hidden, **self.added_conditions(cond), return_dict=False)[
            0
        ]
        return F.mse_loss(pred.float(), target.float(), reduction="none").flatten(1).mean(1)


class SDXLObjective(SDObjective):
    """SDXL: two text encoders, pooled embeddings and size/crop time ids as added conditions."""

    @torch.no_grad()
    def encode_prompt(self, prompt: str) -> tuple[torch.Tensor, ...]:
        embeds, _, pooled, _ = self.pipe.encode_prompt(prompt, device=self.device, do_classifier_free_guidance=False)
        return embeds.to(self.dtype), pooled.to(self.dtype)

    def added_conditions(self, cond: list[tuple[torch.Tensor, ...]]) -> dict[str, Any]:
        size = self.size
        time_ids = torch.tensor([[size, size, 0, 0, size, size]] * len(cond), device=self.device, dtype=self.dtype)
        pooled = torch.cat([c[1] for c in cond])
        return {"added_cond_kwargs": {"text_embeds": pooled, "time_ids": time_ids}}

    size = 1024  # the training resolution; set by the trainer


class FluxObjective(Objective):
    """FLUX.1: flow matching on packed latents (``noise - latents`` at a uniform sigma)."""

    denoiser_name = "transformer"
    targets = FLUX_TARGETS

    def __init__(self, pipe: Any, device: str, dtype: torch.dtype, call_args: dict[str, Any]) -> None:
        super().__init__(pipe, device, dtype, call_args)
        self.schedule = FlowMatchEulerDiscreteScheduler.from_config(pipe.scheduler.config)

    @torch.no_grad()
    def encode_prompt(self, prompt: str) -> tuple[torch.Tensor, ...]:
        length = int(self.call_args.get("max_sequence_length", 512))
        embeds, pooled, text_ids = self.pipe.encode_prompt(
            prompt, prompt_2=None, device=self.device, max_sequence_length=length
        )
        return embeds.to(self.dtype), pooled.to(self.dtype), text_ids

    def scaled(self, latents: torch.Tensor) -> torch.Tensor:
        config = self.vae.config
        shifted: torch.Tensor = (latents - config.shift_factor) * config.scaling_factor
        return shifted

    def lora_layers(self) -> dict[str, torch.Tensor]:
        return dict(get_peft_model_state_dict(self.denoiser, adapter_name=ADAPTER))

    def loss(self, latents: torch.Tensor, cond: list[tuple[torch.Tensor, ...]], generator: torch.Generator) -> Any:
        x = self.scaled(latents)
        batch, channels, height, width = x.shape
        noise = torch.randn(x.shape, generator=generator).to(x)
        steps = int(self.schedule.config.num_train_timesteps)
        indices = (torch.rand((batch,), generator=generator) * steps).long().clamp(max=steps - 1)
        timesteps = self.schedule.timesteps[indices].to(self.device)
        sigmas = self.schedule.sigmas[indices].to(self.device, x.dtype).view(-1, 1, 1, 1)
        noisy = (1.0 - sigmas) * x + sigmas * noise
        packed = FluxPipeline._pack_latents(noisy, batch, channels, height, width)
        image_ids = FluxPipeline._prepare_latent_image_ids(batch, height // 2, width // 2, self.device, self.dtype)
        guidance = None
        if self.denoiser.config.guidance_embeds:
            guidance = torch.full((batch,), FLUX_TRAIN_GUIDANCE, device=self.device)
        pred = self.denoiser(
            hidden_states=packed.to(self.dtype),
            timestep=timesteps / 1000,
            guidance=guidance,
            pooled_projections=torch.cat([c[1] for c in cond]),
            encoder_hidden_states=torch.cat([c[0] for c in cond]),
            txt_ids=cond[0][2],
            img_ids=image_ids,
            return_dict=False,
        )[0]
        scale = 2 ** (len(self.vae.config.block_out_channels) - 1)
        pred = FluxPipeline._unpack_latents(pred, height * scale, width * scale, scale)
        target = noise - x
        return F.mse_loss(pred.float(), target.float(), reduction="none").flatten(1).mean(1)


OBJECTIVES: dict[str, type[Objective]] = {
    "StableDiffusionPipeline": SDObjective,
    "StableDiffusionXLPipeline": SDXLObjective,
    "FluxPipeline": FluxObjective,
}


def objective_for(pipe: Any, device: str, dtype: torch.dtype, call_args: dict[str, Any]) -> Objective:
    kind = OBJECTIVES.get(type(pipe).__name__)
    if kind is None:
        raise ModelUnavailable(
            f"the LoRA trainer trains Stable Diffusion 1.x, SDXL and FLUX.1 bases, not a {type(pipe).__name__}"
        )
    return kind(pipe, device, dtype, call_args)
