"""Seeded train/val/test splits: random, by identity (no person in two splits), and stratified subsets.

Why by identity: CelebA has ~20 photos per celebrity. A random split puts photos of the same person in train
and test, so a classifier can score well by recognising people instead of attributes. The identity split
assigns whole identities to splits.

All functions are deterministic given ``seed`` (they draw from :func:`fairlatent.utils.seed.rng` with their
own stream name) and return an array of split names aligned with the input rows.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from fairlatent.errors import FairlatentError
from fairlatent.utils.seed import rng

SPLIT_NAMES = ("train", "val", "test")


def parse_fractions(text: str | Sequence[float], names: Sequence[str] = SPLIT_NAMES) -> tuple[float, ...]:
    """Parse ``"0.7,0.15,0.15"`` (or a sequence) into fractions, one per split name, summing to 1."""
    if isinstance(text, str):
        try:
            values = tuple(float(t) for t in text.split(","))
        except ValueError:
            raise FairlatentError(f"fractions {text!r}: expected {len(names)} comma-separated numbers") from None
    else:
        values = tuple(float(v) for v in text)
    if len(values) != len(names):
        raise FairlatentError(
            f"fractions {text!r}: expected {len(names)} values ({'/'.join(names)}), got {len(values)}"
        )
    if any(not np.isfinite(v) or v < 0 for v in values):
        raise FairlatentError(f"fractions {text!r}: values must be finite and non-negative")
    if abs(sum(values) - 1.0) > 1e-6:
        raise FairlatentError(f"fractions {text!r}: must sum to 1 (they sum to {sum(values):g})")
    return values


def _counts(n: int, fractions: Sequence[float]) -> np.ndarray:
    """Largest-remainder rounding of ``n * fractions`` to integers summing to ``n``."""
    raw = np.asarray(fractions, dtype=float) * n
    counts = np.floor(raw).astype(np.int64)
    rest = n - counts.sum()
    order = np.argsort(-(raw - counts), kind="stable")
    counts[order[:rest]] += 1
    return counts


def random_split(
    n: int, fractions: Sequence[float], seed: int, *, names: Sequence[str] = SPLIT_NAMES, stream: str = "random-split"
) -> np.ndarray:
    """Assign ``n`` rows to splits at random with exactly ``round(n * fraction)`` rows each.

    Counts use largest-remainder rounding so they sum to ``n``.
    """
    counts = _counts(n, fractions)
    labels = np.repeat(np.asarray(names, dtype=object), counts)
    perm = rng(seed, stream).permutation(n)
    out = np.empty(n, dtype=object)
    out[perm] = labels
    return out


def identity_split(
    groups: Sequence | np.ndarray,
    fractions: Sequence[float],
    seed: int,
    *,
    names: Sequence[str] = SPLIT_NAMES,
    stream: str = "identity-split",
) -> np.ndarray:
    """Assign whole groups (identities) to splits so that no group is in two splits.

    Identities are shuffled (seeded), laid end to end by image count, and each identity goes to the split
    whose share of the ``N`` images contains the identity's midpoint: split ``k`` covers
    ``[N·(f_0+…+f_{k-1}), N·(f_0+…+f_k))``. Image fractions therefore match the targets to within about
    one identity's size. The result depends only on ``seed`` and the set of (group, count) pairs, not on
    row order.
    """
    groups = np.asarray(groups)
    if groups.ndim != 1:
        raise FairlatentError("identity_split: groups must be one value per row")
    uniq, inverse, counts = np.unique(groups, return_inverse=True, return_counts=True)
    perm = rng(seed, stream).permutation(len(uniq))
    cum = np.cumsum(counts[perm])
    mid = cum - counts[perm] / 2.0
    edges = np.cumsum(fractions)[:-1] * len(groups)
    split_of_perm = np.searchsorted(edges, mid, side="right")
    split_of_group = np.empty(len(uniq), dtype=np.int64)
    split_of_group[perm] = split_of_perm
    return np.asarray(names, dtype=object)[split_of_group[inverse]]


def check_nonempty(splits: np.ndarray, fractions: Sequence[float], names: Sequence[str], what: str) -> None:
    """Raise if a split that was asked for (fraction > 0) came out empty, saying why."""
    for name, f in zip(names, fractions):
        if f > 0 and not np.any(splits == name):
            raise FairlatentError(
                f"{what}: split {name!r} is empty (fraction {f:g} of {len(splits)} rows); "
                "use more data or change the fractions"
            )


def stratified_subset(strata: Sequence | np.ndarray, n: int, seed: int, *, stream: str = "subset") -> np.ndarray:
    """Sorted indices of a seeded subset of ``n`` rows with each stratum in proportion to its size.

    Stratum quotas are ``n · size / N`` rounded by largest remainder (so they sum to ``n``); rows within a
    stratum are drawn uniformly without replacement.
    """
    strata = np.asarray(strata)
    total = len(strata)
    if n >= total:
        return np.arange(total)
    if n <= 0:
        raise FairlatentError(f"limit must be positive, got {n}")
    uniq, inverse, counts = np.unique(strata, return_inverse=True, return_counts=True)
    quotas = _counts(n, counts / total)
    g = rng(seed, stream)
    chosen = []
    for k in range(len(uniq)):
        members = np.flatnonzero(inverse == k)
        chosen.append(g.choice(members, size=quotas[k], replace=False))
    return np.sort(np.concatenate(chosen))
