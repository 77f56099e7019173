"""Post-processing of a trained classifier's scores: fairlearn's ``ThresholdOptimizer`` (Hardt et al., 2016).

Why it is here: it is the standard competitor that needs no retraining — per protected group, a randomised
choice between two thresholds on the existing scores that satisfies a parity constraint (equal true-positive
rates, or equalized odds) while maximising an objective. It reads the protected attribute at prediction
time, which latent de-biasing and reweighting do not, and it outputs decisions, not scores: AP and the score
distributions' KL do not apply to it (the pipeline reports them as absent, not as numbers).

:func:`fit_threshold_optimizer` fits it on validation scores and labels; :func:`predict_post_processed` draws
its decisions on another split with a seeded ``random_state``, so the same seed gives the same decisions.
"""

from __future__ import annotations

import numpy as np

from fairlatent.errors import FairlatentError

#: The parity constraints of fairlearn's ThresholdOptimizer the pipeline's methods use.
CONSTRAINTS = ("true_positive_rate_parity", "equalized_odds")


def _fixed_scores():
    """A prefit scikit-learn "estimator" whose prediction is its single input column: the classifier's scores,
    so the optimiser thresholds exactly the numbers the other methods are evaluated on."""
    from sklearn.base import BaseEstimator

    class FixedScores(BaseEstimator):
        def fit(self, X, y, **kwargs):  # never called (prefit=True)
            return self

        def predict(self, X):
            return np.asarray(X, dtype=np.float64)[:, 0]

    est = FixedScores()
    est.fitted_ = True  # what check_is_fitted looks for
    return est


def _groups(name: str, scores, y, g) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    y = np.asarray(y).reshape(-1)
    g = np.asarray(g).reshape(-1)
    if not (len(s) == len(y) == len(g)):
        raise FairlatentError(f"{name}: {len(s)} scores, {len(y)} labels and {len(g)} groups; they must match")
    if not np.isfinite(s).all():
        raise FairlatentError(f"{name}: scores must be finite")
    return s, y, g


def fit_threshold_optimizer(val_scores, val_y, val_groups, *, constraints: str,
                            objective: str = "balanced_accuracy_score"):
    """fairlearn ``ThresholdOptimizer(constraints, objective, prefit=True, predict_method="predict")`` fitted
    on validation scores, labels and protected groups.

    Raises
    ------
    FairlatentError
        For an unknown constraint, or a protected group or a (group, class) cell empty on validation (the
        group's thresholds cannot be chosen).
    """
    from fairlearn.postprocessing import ThresholdOptimizer

    if constraints not in CONSTRAINTS:
        raise FairlatentError(f"unknown constraints {constraints!r}; choose {', '.join(CONSTRAINTS)}")
    s, y, g = _groups("threshold optimizer (validation)", val_scores, val_y, val_groups)
    for grp in np.unique(g).tolist():  # plain Python values for the messages
        for c in (0, 1):
            if not ((g == grp) & (y == c)).any():
                raise FairlatentError(f"threshold optimizer: validation has no row of protected group {grp!r} with "
                                      f"target {c}; its thresholds cannot be chosen")
    if len(np.unique(g)) < 2:
        raise FairlatentError(f"threshold optimizer: validation holds one protected group only ({g[0].item()!r})")
    opt = ThresholdOptimizer(estimator=_fixed_scores(), constraints=constraints, objective=objective, prefit=True,
                             predict_method="predict")
    opt.fit(s.reshape(-1, 1), y, sensitive_features=g)
    return opt


def predict_post_processed(optimizer, scores, groups, *, seed: int) -> np.ndarray:
    """0/1 decisions of a fitted optimiser on ``scores`` of protected ``groups`` (randomised between the two
    thresholds of each group, from ``random_state=seed``)."""
    s, _, g = _groups("threshold optimizer (prediction)", scores, np.zeros(len(np.asarray(scores).reshape(-1))),
                      groups)
    return np.asarray(optimizer.predict(s.reshape(-1, 1), sensitive_features=g, random_state=int(seed))).astype(np.int64)


__all__ = ["CONSTRAINTS", "fit_threshold_optimizer", "predict_post_processed"]
