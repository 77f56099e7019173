"""Per-unit activation thresholds: network dissection's top quantile, exact and in bounded memory.

Network dissection (Bau et al. 2017) and compexp threshold unit ``u`` at ``T_u``, the value exceeded by the
top ``quantile`` (default 0.005) of its activations over **all images and all positions** of the layer's own
(not upsampled) activation maps. Here ``T_u = np.percentile(a_u, 100 - 100·quantile)`` exactly, numpy's
default linear interpolation included, where ``a_u`` is the flattened ``N × h × w`` activations of unit ``u``.
The reference estimates it with a streaming sketch (``vecquantile.QuantileVector``, readout at 1000 bins),
which is approximate; this module is not.

Why it can stream: numpy's percentile at ``q`` reads only the sorted values at positions
``floor(v)`` and ``floor(v) + 1`` with ``v = q/100 · (n − 1)``, both inside the top ``k = n − floor(v)`` values.
So :class:`TopQuantile` keeps, per unit, only the ``k + 2`` largest activations seen so far (at the default
0.5 % of the data), and :meth:`TopQuantile.thresholds` hands numpy an array whose top ``k + 2`` values are
the true ones (the rest filled with the smallest kept value), which numpy orders identically: the result is
bit-for-bit ``np.percentile`` of the full data, and memory is ``O(units · quantile · n)``.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from fairlatent.errors import FairlatentError


def percentile_of(quantile: float) -> float:
    """The numpy percentile ``100 − 100·quantile`` (0.005 → 99.5 exactly)."""
    return 100.0 - 100.0 * float(quantile)


def check_quantile(quantile: float) -> float:
    q = float(quantile)
    if not (0.0 < q < 1.0) or not math.isfinite(q):
        raise FairlatentError(f"quantile must be in (0, 1) (the top share of activations), got {quantile!r}")
    return q


class TopQuantile:
    """Streams activations of ``units`` units, ``n`` values per unit in total, keeping only the top ones."""

    def __init__(self, units: int, n: int, quantile: float) -> None:
        self.units, self.n, self.quantile = int(units), int(n), check_quantile(quantile)
        v = percentile_of(self.quantile) / 100.0 * (self.n - 1)
        self.k = min(self.n, self.n - int(math.floor(v)) + 2)  # two spare for any rounding in numpy's index
        self.kept = torch.empty(self.units, 0)
        self.seen = 0

    def add(self, values: torch.Tensor) -> None:
        """``values``: ``(units, m)`` float32, the next ``m`` activations of every unit."""
        if values.shape[0] != self.units:
            raise ValueError(f"expected {self.units} units, got {values.shape[0]}")
        if torch.isnan(values).any():
            raise FairlatentError("the layer's activations contain NaN; cannot threshold them")
        self.seen += values.shape[1]
        both = torch.cat([self.kept, values.float()], dim=1)
        self.kept = both if both.shape[1] <= self.k else torch.topk(both, self.k, dim=1, sorted=False).values

    def thresholds(self) -> np.ndarray:
        """``(units,)`` float64 thresholds, equal to ``np.percentile`` of each unit's full data (float32)."""
        if self.seen != self.n:
            raise ValueError(f"saw {self.seen} activations per unit, expected {self.n}")
        kept = self.kept.numpy()
        out = np.empty(self.units, dtype=np.float64)
        full = np.empty(self.n, dtype=np.float32)
        for u in range(self.units):
            row = kept[u]
            full[: self.n - len(row)] = row.min() if len(row) else 0.0
            full[self.n - len(row):] = row
            out[u] = float(np.percentile(full, percentile_of(self.quantile)))
        return out
