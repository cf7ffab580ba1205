"""The Fréchet distance between two Gaussians fitted to feature sets (FID's formula).

    d² = ‖μ₁ - μ₂‖² + Tr(Σ₁ + Σ₂ - 2 (Σ₁ Σ₂)^½)

pytorch-fid computes (Σ₁ Σ₂)^½ with scipy.linalg.sqrtm on a non-symmetric product, which
goes complex or unstable when the covariances are singular (fewer samples than feature
dimensions: the usual case for a monitoring window). Here the trace term is taken from the
symmetric matrix Σ₁^½ Σ₂ Σ₁^½, which has the same eigenvalues as Σ₁ Σ₂ and is positive
semi-definite, so ``eigvalsh`` gives it stably and clipping round-off negatives is exact.
tests/test_frechet.py checks this against the sqrtm form and closed forms on known Gaussians.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import linalg

Array = np.ndarray[Any, np.dtype[np.float64]]


def gaussian(features: np.ndarray[Any, Any]) -> tuple[Array, Array]:
    """Mean and (unbiased) covariance of ``features`` (one sample per row)."""
    data = np.asarray(features, dtype=np.float64)
    if data.ndim != 2 or data.shape[0] < 2:
        raise ValueError("need at least two feature vectors (rows) to fit a Gaussian")
    return data.mean(axis=0), np.cov(data, rowvar=False)


def _sqrt_psd(matrix: Array) -> Array:
    values, vectors = linalg.eigh(matrix)
    return np.asarray((vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T, dtype=np.float64)


def frechet_distance(mu1: Array, sigma1: Array, mu2: Array, sigma2: Array) -> float:
    mu1, mu2 = np.atleast_1d(mu1), np.atleast_1d(mu2)
    sigma1, sigma2 = np.atleast_2d(sigma1), np.atleast_2d(sigma2)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise ValueError("the two Gaussians have different dimensions")
    root1 = _sqrt_psd((sigma1 + sigma1.T) / 2)
    middle = root1 @ sigma2 @ root1
    eigenvalues = linalg.eigvalsh((middle + middle.T) / 2)
    trace_sqrt = float(np.sqrt(np.clip(eigenvalues, 0.0, None)).sum())
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_sqrt)


def fid(features_a: np.ndarray[Any, Any], features_b: np.ndarray[Any, Any]) -> float:
    return frechet_distance(*gaussian(features_a), *gaussian(features_b))
