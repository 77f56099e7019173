"""Calibrated and F1-best thresholds against brute-force oracles (and scikit-learn's F1)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import f1_score

from fairlatent.errors import FairlatentError
from fairlatent.models.thresholds import calibrated_threshold, f1_best_threshold


def _cases(n_cases=60, seed=0):
    """Random (y, scores) pairs: continuous scores, heavily tied scores, all/no positives, tiny sets."""
    r = np.random.default_rng(seed)
    for k in range(n_cases):
        n = int(r.integers(1, 40))
        kind = k % 4
        if kind == 0:
            s = r.random(n)
        elif kind == 1:
            s = r.integers(0, 4, n) / 4.0  # many ties
        elif kind == 2:
            s = r.random(n).astype(np.float32)
        else:
            s = np.full(n, 0.3)  # every score tied
        p_rate = [0.0, 1.0, r.random()][k % 3]
        y = (r.random(n) < p_rate).astype(int)
        yield y, s


def _candidates(s):
    """Every distinct outcome of ``s > t``: each distinct score, and one value below them all."""
    return list(np.unique(s)) + [np.min(s) - 1.0]


def test_calibrated_threshold_matches_brute_force():
    for y, s in _cases():
        p = int(y.sum())
        t = calibrated_threshold(y, s)
        # Oracle: the smallest score value t with #(s > t) <= P, or "below everything" when P = N.
        ok = [c for c in np.unique(s) if (s > c).sum() <= p]
        if p == len(s):
            assert (s > t).sum() == len(s) and t < s.min()
        else:
            assert t == min(ok)
        assert (s > t).sum() <= p  # never more positives than actual positives


def test_calibrated_threshold_predicts_exactly_p_without_ties():
    r = np.random.default_rng(1)
    for n in (1, 2, 5, 50, 500):
        s = r.random(n)
        for p in {0, 1, n // 2, n - 1, n}:
            y = np.zeros(n, int)
            y[r.choice(n, p, replace=False)] = 1
            t = calibrated_threshold(y, s)
            assert (s > t).sum() == p
            assert (np.sort(s)[::-1][:p] > t).all()


def test_calibrated_threshold_below_min_holds_in_float32():
    s = np.array([0.25, 0.5, 0.75], dtype=np.float32)
    t = calibrated_threshold(np.ones(3, int), s)
    assert (s > np.float32(t)).all() and (s.astype(np.float64) > t).all()


def test_f1_best_threshold_matches_brute_force_with_sklearn():
    for y, s in _cases(seed=2):
        t = f1_best_threshold(y, s)
        if y.sum() == 0:
            assert t == s.max()
            continue
        f1 = {c: f1_score(y, (s > c).astype(int), zero_division=0.0) for c in _candidates(s)}
        best = max(f1.values())
        mine = f1_score(y, (s > t).astype(int), zero_division=0.0)
        assert mine == pytest.approx(best, abs=1e-12)
        # ties in F1 go to the largest threshold (fewest predicted positives)
        maximisers = [c for c, v in f1.items() if v >= best - 1e-12]
        assert (s > t).sum() == min((s > c).sum() for c in maximisers)


def test_f1_best_separable_scores_give_perfect_f1():
    s = np.array([0.1, 0.2, 0.3, 0.6, 0.7, 0.9])
    y = np.array([0, 0, 0, 1, 1, 1])
    t = f1_best_threshold(y, s)
    assert t == 0.3  # the largest negative: strictly greater = exactly the positives
    assert ((s > t) == (y == 1)).all()


@pytest.mark.parametrize("fn", [calibrated_threshold, f1_best_threshold])
def test_threshold_errors(fn):
    with pytest.raises(FairlatentError, match="equal length"):
        fn([0, 1], [0.5])
    with pytest.raises(FairlatentError, match="0/1"):
        fn([0, 2], [0.1, 0.2])
    with pytest.raises(FairlatentError, match="finite"):
        fn([0, 1], [0.1, np.nan])
    with pytest.raises(FairlatentError, match="empty"):
        fn([], [])
