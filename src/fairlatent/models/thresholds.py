"""Decision thresholds chosen on validation scores: the calibrated threshold and the F1-best threshold.

Convention everywhere in fairlatent: a score ``s`` is predicted positive when ``s > threshold`` (strictly),
as in the reference code of Ramaswamy et al. Both thresholds are actual score values (or, when every
sample must be positive, the float just below the smallest score), so they are exact and reproducible.

Why in ``models``: a decision threshold is part of a trained classifier (``ClassifierHandle.thresholds``,
saved in its ``config.json``), and two layers choose one the same way: training (``fairlatent.train``) at the
end of a run, and evaluation (``fairlatent.metrics``) on a method's validation scores. Metrics must not depend
on a training module, so the one implementation sits in the layer both import downward.
(``fairlatent.train.thresholds`` re-exports it for older imports.)
"""

from __future__ import annotations

import numpy as np

from fairlatent.errors import FairlatentError


def _check(y_true, scores) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true)
    s = np.asarray(scores, dtype=np.float64)
    if y.ndim != 1 or s.ndim != 1 or len(y) != len(s):
        raise FairlatentError(f"y_true and scores must be 1-D of equal length, got {y.shape} and {s.shape}")
    if len(y) == 0:
        raise FairlatentError("cannot choose a threshold on an empty set of scores")
    if not np.isin(y, [0, 1]).all():
        raise FairlatentError(f"y_true must be 0/1, got value {y[~np.isin(y, [0, 1])][0].item()!r}")
    if not np.isfinite(s).all():
        raise FairlatentError(f"scores must be finite, got {float(s[~np.isfinite(s)][0])}")
    return y.astype(np.int64), s


def _below(smallest: float) -> float:
    """A float strictly below ``smallest`` that stays below it in float32 too: makes every score positive."""
    below = np.nextafter(np.float32(smallest), np.float32(-np.inf))
    if float(below) >= smallest:  # smallest is not a float32 value; step in float64 instead
        below = np.nextafter(smallest, -np.inf)
    return float(below)


def calibrated_threshold(y_true, scores) -> float:
    """The threshold at which as many samples are predicted positive as are actually positive.

    With scores sorted in decreasing order ``s(1) ≥ s(2) ≥ … ≥ s(N)`` and ``P`` actual positives, the
    threshold is ``s(P+1)``, the (P+1)-th largest score, so that exactly the ``P`` top scores satisfy
    ``s > threshold`` when there are no ties. With ties at the boundary (``s(P) = s(P+1)``) the tied
    scores are all negative, so fewer than ``P`` (never more) are predicted positive. ``P = 0`` gives the
    largest score (nothing positive); ``P = N`` gives the float just below the smallest (everything positive).

    The reference code (gan-debiasing) takes ``s(P)`` and predicts ``s > s(P)``, i.e. ``P − 1`` positives:
    an off-by-one this function does not copy.

    Parameters
    ----------
    y_true : array of 0/1, shape (N,)
    scores : array of float, shape (N,)

    Returns
    -------
    float
    """
    y, s = _check(y_true, scores)
    p = int(y.sum())
    ordered = np.sort(s)[::-1]
    if p == len(s):
        return _below(float(ordered[-1]))
    return float(ordered[p])


def f1_best_threshold(y_true, scores) -> float:
    """The threshold that maximises F1 of ``s > threshold`` on these scores.

    Candidates are every distinct score value ``u`` (predict the scores strictly above ``u``) and the float
    just below the smallest score (predict everything). For each, ``F1 = 2·TP / (2·TP + FP + FN) =
    2·TP / (TP + FP + P)``, computed for all candidates at once from cumulative counts over the distinct
    scores in decreasing order. Ties in F1 go to the largest threshold (fewest predicted positives). With
    no positives (``P = 0``) F1 is 0 everywhere and the largest score is returned (nothing predicted positive).

    Parameters
    ----------
    y_true : array of 0/1, shape (N,)
    scores : array of float, shape (N,)

    Returns
    -------
    float
    """
    y, s = _check(y_true, scores)
    p = int(y.sum())
    values, inverse = np.unique(s, return_inverse=True)  # increasing
    if p == 0:
        return float(values[-1])
    pos_at = np.bincount(inverse, weights=y, minlength=len(values))[::-1]  # decreasing score order
    all_at = np.bincount(inverse, minlength=len(values))[::-1].astype(np.float64)
    # Candidate k (k = 0..U): predict the k largest distinct values; threshold values[::-1][k] (or below min).
    tp = np.concatenate([[0.0], np.cumsum(pos_at)])
    predicted = np.concatenate([[0.0], np.cumsum(all_at)])
    f1 = 2 * tp / (predicted + p)
    k = int(np.argmax(f1))  # first maximum = fewest predicted positives = largest threshold
    descending = values[::-1]
    return float(descending[k]) if k < len(descending) else _below(float(values[0]))


__all__ = ["calibrated_threshold", "f1_best_threshold"]
