"""Inception Score (Salimans et al. 2016): IS = exp(E_x KL(p(y|x) ‖ p(y))).

Computed from classifier logits in float64 over ``splits`` equal consecutive chunks (after an optional
seeded shuffle), reporting the mean and the std with ddof=0 — the torch-fidelity convention. p(y) is
the mean of p(y|x) within each chunk. Oracles: identical predictions give IS = 1; confident predictions
spread evenly over C classes give IS = C. (torch-fidelity feeds Inception's ``logits_unbiased``, i.e.
the final layer without its bias, as the TF reference did.)
"""

from __future__ import annotations

import numpy as np
import torch

from fairlatent.errors import FairlatentError
from fairlatent.utils.seed import rng


def inception_score(
    logits: np.ndarray, *, splits: int = 10, shuffle: bool = True, seed: int = 0
) -> tuple[float, float]:
    """(mean, std ddof=0) of exp(mean KL(p(y|x) ‖ p̄(y))) over ``splits`` chunks of N×C logits."""
    x = torch.as_tensor(np.asarray(logits), dtype=torch.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise FairlatentError(f"Inception Score needs N×C logits with N ≥ 2, got shape {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise FairlatentError("Inception Score: logits contain NaN or inf")
    n = x.shape[0]
    if splits < 1 or splits > n:
        raise FairlatentError(f"Inception Score: splits={splits} must be between 1 and the sample count {n}")
    if shuffle:
        x = x[torch.from_numpy(rng(seed, "inception-score").permutation(n))]
    log_p = torch.log_softmax(x, dim=1)
    p = log_p.exp()
    scores = []
    for s in range(splits):
        lo, hi = s * n // splits, (s + 1) * n // splits
        log_q = torch.log(p[lo:hi].mean(dim=0, keepdim=True))
        kl = (p[lo:hi] * (log_p[lo:hi] - log_q)).sum(dim=1).mean()
        scores.append(float(torch.exp(kl)))
    return float(np.mean(scores)), float(np.std(scores))
