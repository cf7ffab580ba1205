"""The Fréchet distance against closed forms and against pytorch-fid's scipy.linalg.sqrtm
formula, on known Gaussians (including singular covariances, as in a small window)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from scipy import linalg

from limner.catalog.options import QualityOptions
from limner.quality.drift import Window, judge
from limner.quality.frechet import fid, frechet_distance, gaussian


def sqrtm_reference(mu1: Any, sigma1: Any, mu2: Any, sigma2: Any, eps: float = 1e-6) -> float:
    """pytorch-fid's calculate_frechet_distance, written out."""
    diff = mu1 - mu2
    covmean = linalg.sqrtm(sigma1.dot(sigma2))
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
    covmean = covmean.real
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def random_spd(rng: np.random.Generator, dim: int) -> Any:
    a = rng.normal(size=(dim, dim))
    return a @ a.T + dim * 0.1 * np.eye(dim)


def test_identical_gaussians_are_zero_apart() -> None:
    rng = np.random.default_rng(1)
    sigma = random_spd(rng, 16)
    mu = rng.normal(size=16)
    assert frechet_distance(mu, sigma, mu, sigma) == pytest.approx(0.0, abs=1e-8)


def test_closed_form_for_commuting_covariances() -> None:
    # Diagonal covariances commute: d² = |mu1 - mu2|² + sum (sqrt(a) - sqrt(b))².
    a, b = np.array([1.0, 4.0, 9.0, 0.25]), np.array([4.0, 1.0, 9.0, 1.0])
    mu1, mu2 = np.array([0.0, 1.0, 2.0, 3.0]), np.array([1.0, 1.0, 0.0, 3.0])
    expected = float(((mu1 - mu2) ** 2).sum() + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum())
    assert frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected, rel=1e-10)


def test_one_dimension_is_the_wasserstein_2_distance() -> None:
    # 1-D: d² = (m1 - m2)² + (s1 - s2)².
    assert frechet_distance(np.array([2.0]), np.array([[9.0]]), np.array([-1.0]), np.array([[1.0]])) == pytest.approx(
        9.0 + 4.0
    )


@pytest.mark.parametrize("dim", [8, 64])
def test_matches_the_sqrtm_reference_on_random_gaussians(dim: int) -> None:
    rng = np.random.default_rng(dim)
    for _ in range(5):
        mu1, mu2 = rng.normal(size=dim), rng.normal(size=dim)
        s1, s2 = random_spd(rng, dim), random_spd(rng, dim)
        ours = frechet_distance(mu1, s1, mu2, s2)
        assert ours == pytest.approx(sqrtm_reference(mu1, s1, mu2, s2), rel=1e-7)


def test_singular_window_covariance_is_stable() -> None:
    # 10 samples of 64-dim features: rank-deficient covariance, the usual monitoring case.
    rng = np.random.default_rng(3)
    window, reference = rng.normal(size=(10, 64)), rng.normal(size=(500, 64))
    ours = fid(window, reference)
    reference_value = sqrtm_reference(*gaussian(window), *gaussian(reference))
    assert np.isfinite(ours) and ours > 0
    assert ours == pytest.approx(reference_value, rel=1e-4)


def test_shifted_features_raise_fid_and_the_alert() -> None:
    rng = np.random.default_rng(4)
    reference = rng.normal(size=(400, 16))
    same = fid(rng.normal(size=(400, 16)), reference)
    shifted = fid(rng.normal(loc=1.0, size=(400, 16)), reference)
    assert shifted > same + 10  # mean shift of 1 in 16 dims adds about 16
    options = QualityOptions(clip_score=True, clip_drop_alert=0.1)
    baseline = Window(64, 30.0, same)
    assert judge(options, Window(64, 29.0, same), baseline) is None
    alert = judge(options, Window(64, 25.0, shifted), baseline)
    assert alert is not None and "CLIP" in alert and "FID" in alert
