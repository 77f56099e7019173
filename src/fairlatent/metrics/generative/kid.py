"""Kernel Inception Distance (Bińkowski et al. 2018): unbiased MMD² with a cubic polynomial kernel.

k(x, y) = (x·y / d + 1)³. For one subset pair X, Y of size m,

MMD²_u = Σ_{i≠j} k(xᵢ,xⱼ) / (m(m−1)) + Σ_{i≠j} k(yᵢ,yⱼ) / (m(m−1)) − 2 Σ_{i,j} k(xᵢ,yⱼ) / m²

(the "unbiased" estimator of torch-fidelity / MMD-GAN: the cross term keeps its diagonal). KID is the mean
over ``subsets`` random subset pairs of size min(n, ``subset_size``), each drawn without replacement
independently from each set as torch-fidelity does; the std (ddof=0) is reported beside it. It is
unbiased, so it can be slightly negative when the two sets come from the same distribution: that is a
legitimate estimate of 0 and is reported as is (unlike FID, KID is not clamped).

Gram matrices are computed in float32 (as torch-fidelity, whose features are float32) with torch; the
cubic kernel and the sums are done in float64.
"""

from __future__ import annotations

import numpy as np
import torch

from fairlatent.errors import FairlatentError
from fairlatent.utils.seed import rng


def mmd2_unbiased(x: torch.Tensor, y: torch.Tensor) -> float:
    """Unbiased MMD² between two equally sized float tensors with the (x·y/d + 1)³ kernel."""
    m, d = x.shape
    kxx = (x @ x.T).double().div_(d).add_(1).pow_(3)
    kyy = (y @ y.T).double().div_(d).add_(1).pow_(3)
    kxy = (x @ y.T).double().div_(d).add_(1).pow_(3)
    off_xx = kxx.sum() - kxx.diagonal().sum()
    off_yy = kyy.sum() - kyy.diagonal().sum()
    return float((off_xx + off_yy) / (m * (m - 1)) - 2.0 * kxy.sum() / (m * m))


def kernel_inception_distance(
    real: np.ndarray,
    fake: np.ndarray,
    *,
    subsets: int = 100,
    subset_size: int = 1000,
    seed: int = 0,
    device: torch.device | str = "cpu",
) -> tuple[float, float]:
    """(mean, std) of unbiased MMD² over ``subsets`` subset pairs of size min(n_real, n_fake, subset_size)."""
    real = np.asarray(real)
    fake = np.asarray(fake)
    if real.ndim != 2 or fake.ndim != 2 or real.shape[1] != fake.shape[1]:
        raise FairlatentError(f"KID: feature dimensions differ: real {real.shape} vs fake {fake.shape}")
    m = min(len(real), len(fake), int(subset_size))
    if m < 2:
        raise FairlatentError(f"KID needs at least 2 samples per set, got {len(real)} real and {len(fake)} fake")
    gen = rng(seed, "kid")
    # writable copies when needed: features read from a .npy are a read-only memory map, and torch.from_numpy
    # of a read-only array prints a UserWarning with a source line to the user's terminal
    xr = torch.from_numpy(np.require(real, np.float32, ["C", "W"])).to(device)
    xf = torch.from_numpy(np.require(fake, np.float32, ["C", "W"])).to(device)
    values = np.empty(int(subsets))
    for s in range(int(subsets)):
        i = torch.from_numpy(gen.choice(len(real), m, replace=False)).to(device)
        j = torch.from_numpy(gen.choice(len(fake), m, replace=False)).to(device)
        values[s] = mmd2_unbiased(xr[i], xf[j])
    return float(values.mean()), float(values.std())
