"""Fréchet distance between Gaussians fitted to two feature sets (FID when the features are Inception pool3).

FID = ‖μ₁−μ₂‖² + tr Σ₁ + tr Σ₂ − 2 tr (Σ₁^{1/2} Σ₂ Σ₁^{1/2})^{1/2}

Why the factor route: with Σᵢ = BᵢBᵢᵀ (Bᵢ = Vᵢ diag(√λᵢ) from the symmetric ``eigh(Σᵢ)``),
tr (Σ₁^{1/2} Σ₂ Σ₁^{1/2})^{1/2} is the nuclear norm ‖B₁ᵀB₂‖_* (the sum of its singular values). The usual
routes take square roots of the eigenvalues of Σ₁^{1/2} Σ₂ Σ₁^{1/2} (or ``scipy.linalg.sqrtm`` of Σ₁Σ₂);
when the covariances are rank-deficient — fewer samples than dimensions, or constant features such as a
plain image background — hundreds of those eigenvalues are round-off of size ε·λ_max², and their square
roots, each ≈ √ε·λ_max, add up to more than tr Σ: FID(X, X) came out as −2.4e-5 on 3,000 ToyFaces pixel
vectors. Singular values of B₁ᵀB₂ carry only ε·λ_max absolute error each, so FID(X, X) is 0 to about 1e-12
relative to the traces. The traces are taken as Σ max(λ, 0) of the same decompositions, so the identical
round-off cancels. A distance is never negative: what round-off is left below 0 is returned as 0.
Everything is computed in float64; unlike ``sqrtm`` no complex parts can appear.
"""

from __future__ import annotations

import warnings

import numpy as np

from fairlatent.errors import FairlatentError


class MetricNote(UserWarning):
    """A caveat about a metric's value that still stands (small samples, resized images, an undefined
    entry): the CLI prints these as one "note:" line each, a library caller gets an ordinary warning."""


def feature_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance (ddof=1, as pytorch-fid / torch-fidelity) of N×D features, in float64."""
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise FairlatentError(f"FID needs at least 2 feature vectors (N×D), got shape {x.shape}")
    mu = x.mean(axis=0)
    xc = x - mu
    sigma = xc.T @ xc / (x.shape[0] - 1)
    return mu, sigma


def _factor(sigma: np.ndarray) -> tuple[np.ndarray, float]:
    """``(B, tr)`` with ``B Bᵀ = Σ`` (negative round-off eigenvalues clipped to 0) and tr = Σ max(λ, 0)."""
    lam, vec = np.linalg.eigh((sigma + sigma.T) * 0.5)
    lam = np.clip(lam, 0.0, None)
    return vec * np.sqrt(lam), float(lam.sum())


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """Fréchet distance between N(μ₁, Σ₁) and N(μ₂, Σ₂), ≥ 0, by the factor route of the module docstring:
    ‖μ₁−μ₂‖² + tr Σ₁ + tr Σ₂ − 2 ‖B₁ᵀB₂‖_*  with Σᵢ = BᵢBᵢᵀ."""
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != (mu1.size, mu1.size):
        raise FairlatentError(
            f"feature dimensions differ: mean {mu1.shape} vs {mu2.shape}, covariance {sigma1.shape} vs {sigma2.shape}"
        )
    diff = mu1 - mu2
    b1, tr1 = _factor(sigma1)
    b2, tr2 = _factor(sigma2)
    tr_covmean = float(np.linalg.svd(b1.T @ b2, compute_uv=False).sum())
    return max(0.0, float(diff @ diff) + tr1 + tr2 - 2.0 * tr_covmean)


def fid_from_features(real: np.ndarray, fake: np.ndarray) -> float:
    """FID between two N×D feature sets; warns when a set has fewer samples than dimensions.

    With N ≤ D the sample covariance has rank < D, so the Gaussian fit is degenerate and FID is biased
    (upward) and noisy; it is still computed, because small-sample FID is useful for relative comparison.
    """
    real = np.asarray(real)
    fake = np.asarray(fake)
    if real.ndim != 2 or fake.ndim != 2 or real.shape[1] != fake.shape[1]:
        raise FairlatentError(f"FID: feature dimensions differ: real {real.shape} vs fake {fake.shape}")
    for name, x in (("real", real), ("fake", fake)):
        if x.shape[0] <= x.shape[1]:
            warnings.warn(MetricNote(
                f"FID: {name} set has {x.shape[0]} samples for {x.shape[1]}-d features; the covariance is "
                "singular and FID is biased upward — use more samples than feature dimensions"),
                stacklevel=2,
            )
    mu1, s1 = feature_statistics(real)
    mu2, s2 = feature_statistics(fake)
    return frechet_distance(mu1, s1, mu2, s2)
