"""Accuracy of an unsupervised clustering against labels, after the best one-to-one matching.

Why: an InfoGAN categorical code (Chen et al. 2016) or any clustering numbers its clusters arbitrarily,
so "accuracy" only means something after relabelling each cluster with the class it best stands for.
The matching is one-to-one (no two clusters may claim the same digit, which would hide a merged pair such
as 4 and 9) and maximises the number of agreeing rows: a linear assignment problem on the K×K
contingency table, solved exactly by the Hungarian method (``scipy.optimize.linear_sum_assignment``)
in O(K³) instead of trying all K! permutations.
"""

from __future__ import annotations

import numpy as np

from fairlatent.errors import FairlatentError


def contingency(pred: np.ndarray, labels: np.ndarray, k: int | None = None) -> np.ndarray:
    """k×k counts: entry [i, j] is the number of rows in cluster i with label j (k: the larger max + 1)."""
    pred, labels = np.asarray(pred, dtype=np.int64), np.asarray(labels, dtype=np.int64)
    if pred.shape != labels.shape or pred.ndim != 1:
        raise FairlatentError(f"clusters and labels must be two equal-length vectors, got {pred.shape} and {labels.shape}")
    if pred.size and (pred.min() < 0 or labels.min() < 0):
        raise FairlatentError("clusters and labels must be non-negative integers")
    k = int(k if k is not None else max(pred.max(initial=-1), labels.max(initial=-1)) + 1)
    table = np.zeros((k, k), dtype=np.int64)
    np.add.at(table, (pred, labels), 1)
    return table


def best_matching(pred: np.ndarray, labels: np.ndarray, k: int | None = None) -> dict[int, int]:
    """The one-to-one map cluster → label that maximises agreement (Hungarian method on the counts)."""
    from scipy.optimize import linear_sum_assignment

    table = contingency(pred, labels, k)
    rows, cols = linear_sum_assignment(table, maximize=True)
    return {int(r): int(c) for r, c in zip(rows, cols)}


def cluster_accuracy(pred: np.ndarray, labels: np.ndarray, k: int | None = None) -> float:
    """Share of rows whose cluster, relabelled by :func:`best_matching`, equals their label."""
    pred, labels = np.asarray(pred, dtype=np.int64), np.asarray(labels, dtype=np.int64)
    if pred.size == 0:
        raise FairlatentError("cluster accuracy of no rows")
    mapping = best_matching(pred, labels, k)
    mapped = np.array([mapping[int(p)] for p in range(max(mapping) + 1)])[pred]
    return float((mapped == labels).mean())


__all__ = ["best_matching", "cluster_accuracy", "contingency"]
