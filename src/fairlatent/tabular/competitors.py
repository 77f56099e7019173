"""Fairness interventions the synthetic-data methods are compared with, on the same split and seed.

All use logistic regression on the features of :func:`fairlatent.tabular.evaluate.feature_encoder` and the
first protected attribute (privileged vs rest) as the sensitive feature (given to the fairlearn methods apart
from the features; ``drop_protected`` leaves the protected columns out of the features):

- ``reweighing``: Kamiran & Calders (2012): each training row weighted ``P(y) P(s) / P(y, s)`` (expected over
  observed cell frequency), which makes y and s independent in the weighted training set;
- ``expgrad_dp`` / ``expgrad_eo``: fairlearn's ``ExponentiatedGradient`` (Agarwal et al. 2018) under
  ``DemographicParity`` / ``EqualizedOdds``; predictions are the randomised classifier's, seeded;
- ``threshold_optimizer``: fairlearn's ``ThresholdOptimizer`` (Hardt et al. 2016) for demographic parity,
  post-processing the logistic regression's probabilities; needs the sensitive feature at test time.

Each is scored like the classifiers of :mod:`fairlatent.tabular.evaluate` (accuracy, F1, AUC where a score
exists, demographic parity and equalized odds differences with bootstrap intervals).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from fairlatent.errors import FairlatentError
from fairlatent.tabular.table import TabularData

__all__ = ["reweighing_weights", "run_competitors", "COMPETITORS"]

COMPETITORS = ("reweighing", "expgrad_dp", "expgrad_eo", "threshold_optimizer")


def reweighing_weights(y: np.ndarray, s: np.ndarray) -> np.ndarray:
    """Kamiran–Calders weights ``P(y) P(s) / P(y, s)`` of each row."""
    y, s = np.asarray(y), np.asarray(s)
    w = np.empty(len(y), dtype=np.float64)
    for yv in np.unique(y):
        for sv in np.unique(s):
            cell = (y == yv) & (s == sv)
            if cell.any():
                w[cell] = (y == yv).mean() * (s == sv).mean() / cell.mean()
    return w


def run_competitors(data: TabularData, *, seed: int = 0, n_boot: int = 200, protected: str | None = None,
                    which=COMPETITORS, drop_protected: bool = False) -> dict[str, Any]:
    from sklearn.linear_model import LogisticRegression

    from fairlatent.tabular.evaluate import feature_encoder, fit_classifier, group_fairness, score_predictions

    try:
        from fairlearn.postprocessing import ThresholdOptimizer
        from fairlearn.reductions import DemographicParity, EqualizedOdds, ExponentiatedGradient
    except ImportError:  # pragma: no cover
        raise FairlatentError("the fairlearn competitors need fairlearn (pip install fairlearn)") from None
    p = data.protected_attribute(protected)
    train, test = data.train, data.test
    y_tr, y_te = data.y(train), data.y(test)
    s_tr, s_te = data.s(train, p.column), data.s(test, p.column)
    enc = feature_encoder(data, drop_protected=drop_protected).fit(train)
    x_tr, x_te = enc.transform(train), enc.transform(test)
    out: dict[str, Any] = {"sensitive_feature": p.column}
    for name in which:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if name == "reweighing":
                pipe = fit_classifier(data, train, "logistic_regression", seed, reweighing_weights(y_tr, s_tr),
                                      drop_protected)
                score = pipe.predict_proba(test)[:, 1]
                pred = (score >= 0.5).astype(np.int8)
            elif name in ("expgrad_dp", "expgrad_eo"):
                cons = DemographicParity() if name == "expgrad_dp" else EqualizedOdds()
                eg = ExponentiatedGradient(LogisticRegression(max_iter=1000), constraints=cons)
                eg.fit(x_tr, y_tr, sensitive_features=s_tr)
                pred = np.asarray(eg.predict(x_te, random_state=seed)).astype(np.int8)
                score = np.asarray(eg._pmf_predict(x_te))[:, 1]
            elif name == "threshold_optimizer":
                to = ThresholdOptimizer(estimator=LogisticRegression(max_iter=1000), constraints="demographic_parity",
                                        predict_method="predict_proba")
                to.fit(x_tr, y_tr, sensitive_features=s_tr)
                pred = np.asarray(to.predict(x_te, sensitive_features=s_te, random_state=seed)).astype(np.int8)
                score = None
            else:
                raise FairlatentError(f"unknown competitor {name!r}; one of {COMPETITORS}")
        res = score_predictions(y_te, pred, score)
        res["fairness"] = {q.column: group_fairness(y_te, pred, data.s(test, q.column), n_boot=n_boot, seed=seed)
                           for q in data.protected}
        out[name] = res
    return out
