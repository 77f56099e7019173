"""Fréchet distance between Gaussians fitted to two feature sets (FID when the features are Inception pool3).

FID = ‖μ₁−μ₂‖² + tr Σ₁ + tr Σ₂ − 2 tr (Σ₁^{1/2} Σ₂ Σ₁^{1/2})^{1/2}

Why the symmetric route: tr (Σ₁Σ₂)^{1/2} equals the sum of square roots of the eigenvalues of the
*symmetric* positive semi-definite matrix Σ₁^{1/2} Σ₂ Σ₁^{1/2}. One symmetric eigendecomposition of Σ₁
(giving Σ₁^{1/2}) and one eigenvalue-only symmetric solve are several times cheaper than
``scipy.linalg.sqrtm`` (a Schur decomposition of a non-symmetric matrix), and — unlike ``sqrtm`` — never
return complex parts from round-off: the eigenvalues are real by construction and are clipped at 0.
Everything is computed in float64.
"""

from __future__ import annotations

import warnings

import numpy as np

from fairlatent.errors import FairlatentError


def feature_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance (ddof=1, as pytorch-fid / torch-fidelity) of N×D features, in float64."""
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise FairlatentError(f"FID needs at least 2 feature vectors (N×D), got shape {x.shape}")
    mu = x.mean(axis=0)
    xc = x - mu
    sigma = xc.T @ xc / (x.shape[0] - 1)
    return mu, sigma


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """Fréchet distance between N(μ₁, Σ₁) and N(μ₂, Σ₂) by the symmetric eigendecomposition route.

    Σ₁^{1/2} = V diag(√max(λ, 0)) Vᵀ from ``eigh(Σ₁)``; then
    tr (Σ₁^{1/2} Σ₂ Σ₁^{1/2})^{1/2} = Σᵢ √max(νᵢ, 0) with ν = ``eigvalsh(Σ₁^{1/2} Σ₂ Σ₁^{1/2})``.
    """
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != (mu1.size, mu1.size):
        raise FairlatentError(
            f"feature dimensions differ: mean {mu1.shape} vs {mu2.shape}, covariance {sigma1.shape} vs {sigma2.shape}"
        )
    diff = mu1 - mu2
    lam, vec = np.linalg.eigh(sigma1)
    root1 = (vec * np.sqrt(np.clip(lam, 0.0, None))) @ vec.T
    middle = root1 @ sigma2 @ root1
    middle = (middle + middle.T) * 0.5  # exact symmetry for the symmetric solver
    nu = np.linalg.eigvalsh(middle)
    tr_covmean = float(np.sqrt(np.clip(nu, 0.0, None)).sum())
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * tr_covmean)


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
            warnings.warn(
                f"FID: {name} set has {x.shape[0]} samples for {x.shape[1]}-d features; the covariance is "
                "singular and FID is biased upward — use more samples than feature dimensions",
                stacklevel=2,
            )
    mu1, s1 = feature_statistics(real)
    mu2, s2 = feature_statistics(fake)
    return frechet_distance(mu1, s1, mu2, s2)
