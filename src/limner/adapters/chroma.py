"""Melody conditioning for MusicGen Melody: the chromagram of an input clip.

transformers' ``MusicgenMelodyFeatureExtractor`` computes this with torchaudio's Spectrogram,
and cannot even be constructed without torchaudio, whose PyPI wheels are CUDA builds tied to one
torch release. The computation is small, so it is written here with ``torch.stft`` and
transformers' own ``chroma_filter_bank``, step for step as the extractor does it:
mono, resample to the model's rate, at most ``chunk_length`` seconds, a power spectrogram
normalised by the window's energy (torchaudio's ``normalized=True``), the chroma projection,
max-normalised, and one-hot on the strongest pitch class per frame. The numbers (n_fft, hop, ...)
come from the checkpoint's ``preprocessor_config.json``.

One difference on purpose: each clip is tiled to the model's ``chroma_length`` here (as the model
itself does for a single clip) instead of being zero-padded to the longest clip of the batch, so a
melody gives the same conditioning whichever jobs share its batch.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers.audio_utils import chroma_filter_bank

from limner.errors import ModelUnavailable
from limner.media.audio import resample


@dataclass(frozen=True)
class ChromaSettings:
    sampling_rate: int
    n_fft: int
    hop_length: int
    num_chroma: int
    chunk_length: int  # seconds of melody the model listens to
    chroma_length: int  # frames the model attends to
    filters: torch.Tensor  # (num_chroma, n_fft // 2 + 1)

    @classmethod
    def from_folder(cls, path: Path, model_config: Any) -> ChromaSettings:
        try:
            pre = json.loads((path / "preprocessor_config.json").read_text())
        except (OSError, ValueError) as exc:
            raise ModelUnavailable(
                f"{path} has no readable preprocessor_config.json for MusicGen Melody: {exc}"
            ) from exc
        rate, n_fft, num_chroma = int(pre["sampling_rate"]), int(pre["n_fft"]), int(pre["num_chroma"])
        filters = chroma_filter_bank(num_frequency_bins=n_fft, num_chroma=num_chroma, sampling_rate=rate, tuning=0)
        return cls(
            sampling_rate=rate,
            n_fft=n_fft,
            hop_length=int(pre["hop_length"]),
            num_chroma=num_chroma,
            chunk_length=int(pre["chunk_length"]),
            chroma_length=int(model_config.chroma_length),
            filters=torch.from_numpy(filters).float(),
        )


def melody_chroma(samples: np.ndarray[Any, Any], rate: int, settings: ChromaSettings) -> torch.Tensor:
    """``(channels, frames)`` audio -> ``(chroma_length, num_chroma)`` one-hot chroma."""
    mono = resample(samples.mean(axis=0, keepdims=True), rate, settings.sampling_rate)[0]
    wave = torch.from_numpy(np.ascontiguousarray(mono[: settings.chunk_length * settings.sampling_rate]))
    if wave.shape[-1] < settings.n_fft:
        missing = settings.n_fft - wave.shape[-1]
        wave = torch.nn.functional.pad(wave, (missing // 2, missing - missing // 2))
    window = torch.hann_window(settings.n_fft)
    spec = torch.stft(
        wave,
        n_fft=settings.n_fft,
        hop_length=settings.hop_length,
        window=window,
        center=True,
        pad_mode="reflect",
        return_complex=True,
    )
    power = (spec / window.pow(2).sum().sqrt()).abs().pow(2)  # (freq, frames)
    raw = settings.filters @ power  # (chroma, frames)
    norm = torch.nn.functional.normalize(raw, p=math.inf, dim=0, eps=1e-6)
    one_hot = torch.zeros_like(norm.T)
    one_hot.scatter_(-1, norm.T.argmax(-1, keepdim=True), 1.0)
    return _tile(one_hot, settings.chroma_length)


def null_chroma(settings: ChromaSettings) -> torch.Tensor:
    """What the model uses for "no melody": every frame on the first pitch class."""
    empty = torch.zeros(settings.chroma_length, settings.num_chroma)
    empty[:, 0] = 1.0
    return empty


def _tile(chroma: torch.Tensor, length: int) -> torch.Tensor:
    repeats = math.ceil(length / chroma.shape[0])
    return chroma.repeat(repeats, 1)[:length]
