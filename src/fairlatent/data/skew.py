"""Subsampling a labelled split to a chosen skew between a target ``t`` and a protected attribute ``g``.

The paper's robustness check (Ramaswamy et al., CVPR 2021, §5: training skews 0.5/0.7/0.9) trains on
subsets of a real training split whose correlation between ``t`` and ``g`` is set, at one fixed size, so that
only the skew changes. This module is the one definition of that skew for data sets read from disk; the
CelebA benchmark's skew sweep and the pipeline's ``data.skew`` for ``source = "path"`` both use it.

Definition. A subset has skew ``s`` when both target classes hold ``N`` images and::

    P(g = a | t = 1) = P(g = 1 − a | t = 0) = s

where ``a`` (the *direction*) is the protected group in which the target is more common in the data the
subset is drawn from (``P(t = 1 | g = a) > P(t = 1 | g = 1 − a)``; ``a = 1`` on a tie), so the skew follows
the data's own correlation: 0.5 is independence, 1 is ``g`` fully determined by ``t`` in that direction, and
a skew below 0.5 reverses the data's correlation. The cell counts are::

    n(t = 1, g = a) = n(t = 0, g = 1 − a) = round(s · N),   the two other cells N − round(s · N)

so the achieved skew is within ``1 / (2N)`` of the request, and both ``t`` and ``g`` have rate 0.5 in the
subset. With ``a = 1`` this is exactly ToyFaces' skew ``P(g = t) = s`` (:mod:`fairlatent.data.toyfaces`
renders the same four cells, both marginals 0.5); with ``a = 0`` it is ``P(g ≠ t) = s``.

Size. ``N`` is given, or the largest size the available cells allow at every requested skew::

    N = ⌊ min over classes c, skews s of  min( n_major(c) / s,  n_minor(c) / (1 − s) ) ⌋

with ``n_major(1) = n(t = 1, g = a)``, ``n_major(0) = n(t = 0, g = 1 − a)`` and the minor cells the other
two (a term with a zero denominator does not bound ``N``). Within each cell the images are taken in a
seeded random order, the same order for every skew.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from fairlatent.errors import FairlatentError

Cell = tuple[int, int]


def skew_direction(t: np.ndarray, g: np.ndarray) -> int:
    """The group ``a`` in which the target is more common: 0 if ``P(t = 1 | g = 0) > P(t = 1 | g = 1)``, else 1.

    A tie (``t`` and ``g`` independent in the data, e.g. ToyFaces rendered at skew 0.5) gives ``a = 1``, so the
    skew is ToyFaces' ``P(g = t)``. A group with no image counts as rate 0."""
    t, g = np.asarray(t), np.asarray(g)
    rate = [float(t[g == b].mean()) if (g == b).any() else 0.0 for b in (0, 1)]
    return int(not rate[0] > rate[1])


def _major_minor(a: int) -> tuple[dict[int, Cell], dict[int, Cell]]:
    """(t, g) cells: the majority cell of class c is (1, a) for positives and (0, 1 − a) for negatives."""
    return {1: (1, a), 0: (0, 1 - a)}, {1: (1, 1 - a), 0: (0, a)}


def _cells(t: np.ndarray, g: np.ndarray) -> dict[Cell, np.ndarray]:
    return {(c, b): np.flatnonzero((t == c) & (g == b)) for c in (0, 1) for b in (0, 1)}


def max_per_class(counts: dict[Cell, int], skews: Sequence[float], direction: int) -> int:
    """The largest ``N`` (images per target class) that every skew in ``skews`` can fill from ``counts``."""
    major, minor = _major_minor(direction)
    bound = math.inf
    for c in (0, 1):
        for s in skews:
            if s > 0:
                bound = min(bound, counts[major[c]] / s)
            if s < 1:
                bound = min(bound, counts[minor[c]] / (1 - s))
    return int(np.floor(bound))


def skew_cell_counts(per_class: int, skew: float, direction: int) -> dict[Cell, int]:
    """The four (t, g) cell counts of a subset of ``per_class`` images per class at ``skew``."""
    major, minor = _major_minor(direction)
    n_major = int(round(skew * per_class))
    return {**{major[c]: n_major for c in (0, 1)}, **{minor[c]: per_class - n_major for c in (0, 1)}}


def skewed_indices(t: np.ndarray, g: np.ndarray, skews: Sequence[float], seed: int | np.random.Generator, *,
                   per_class: int | None = None, direction: int | None = None, min_per_class: int = 10,
                   what: str = "skew", names: tuple[str, str] = ("t", "g")) -> dict[float, np.ndarray]:
    """Positions (sorted, into ``t``/``g``) of one subset per skew, each with ``per_class`` images per class.

    ``per_class`` defaults to the largest size every skew allows (module docstring); ``direction`` (``a``)
    defaults to :func:`skew_direction` of ``t``, ``g``. ``seed`` is an int (``np.random.default_rng(seed)``)
    or a generator. Raises :class:`FairlatentError` naming the numbers when a cell is too small: ``what``
    names the request in the message (e.g. ``"data.skew = 0.9 (train split)"``), ``names`` the attributes.
    """
    t, g = np.asarray(t), np.asarray(g)
    a = skew_direction(t, g) if direction is None else int(direction)
    cells = _cells(t, g)
    counts = {k: len(v) for k, v in cells.items()}
    largest = max_per_class(counts, skews, a)
    tn, gn = names
    if per_class is None:
        n = largest
        if n < min_per_class:
            raise FairlatentError(
                f"too few images in the rarest (target, protected) cell for skews {list(skews)} (each class "
                f"could hold only {n} images; cells {_describe_counts(counts, tn, gn)})")
    else:
        n = int(per_class)
        if n < 1:
            raise FairlatentError(f"{what}: {n} images per target class is not a subset")
        for s in skews:
            need = skew_cell_counts(n, s, a)
            short = [(k, need[k], counts[k]) for k in need if need[k] > counts[k]]
            if short:
                (c, b), k_need, k_have = short[0]
                raise FairlatentError(
                    f"{what}: skew {s:g} at {2 * n} images ({n} per {tn} class) needs {k_need} images with "
                    f"{tn} = {c}, {gn} = {b} but there are only {k_have}; the largest size this skew allows "
                    f"is {2 * largest} ({largest} per class; cells {_describe_counts(counts, tn, gn)})")
    rng = np.random.default_rng(seed)
    order = {k: rng.permutation(v) for k, v in cells.items()}
    major, minor = _major_minor(a)
    out = {}
    for s in skews:
        n_major = int(round(s * n))
        idx = [order[major[c]][:n_major] for c in (0, 1)] + [order[minor[c]][: n - n_major] for c in (0, 1)]
        out[s] = np.sort(np.concatenate(idx))
    return out


def skewed_train_indices(t: np.ndarray, g: np.ndarray, skews: list[float], seed: int) -> dict[float, np.ndarray]:
    """Subsets of a train split with ``P(g = a | t = 1) = P(g = 1 − a | t = 0) = skew`` at one size.

    ``a`` is the group in which the target is more common, so the skew follows the data's own correlation.
    Both classes get ``N`` images, ``N`` the largest size every requested skew can fill from the available
    (t, g) cells; so only the skew changes along the sweep, not the amount of data. (The CelebA benchmark's
    sweep; :func:`skewed_indices` with its defaults.)
    """
    return skewed_indices(t, g, skews, seed)


def skew_summary(t: np.ndarray, g: np.ndarray, direction: int) -> dict[str, Any]:
    """What a subset achieved: size, the four cells, ``P(g = a | t = 1)``, ``P(g = 1 − a | t = 0)`` and their
    mean over both classes (the skew, ``None`` where a class is empty), and ``P(g = t)``."""
    t, g = np.asarray(t), np.asarray(g)
    a = int(direction)
    pos, neg = t == 1, t == 0
    p1 = float((g[pos] == a).mean()) if pos.any() else None
    p0 = float((g[neg] == 1 - a).mean()) if neg.any() else None
    both = float(((g == a) == pos).mean()) if pos.any() and neg.any() else None
    return {"n": int(len(t)), "direction": a, "P(g=a|t=1)": p1, "P(g=1-a|t=0)": p0, "skew": both,
            "P(g=t)": float((g == t).mean()) if len(t) else None,
            "cells": {f"t{c}_g{b}": int(((t == c) & (g == b)).sum()) for c in (0, 1) for b in (0, 1)}}


def _describe_counts(counts: dict[Cell, int], tn: str, gn: str) -> str:
    return ", ".join(f"{tn}={c}/{gn}={b}: {counts[c, b]}" for c in (0, 1) for b in (0, 1))


__all__ = ["max_per_class", "skew_cell_counts", "skew_direction", "skew_summary", "skewed_indices",
           "skewed_train_indices"]
