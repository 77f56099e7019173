"""Post-processing with fairlearn's ThresholdOptimizer (fairlatent.train.postprocess): a planted score bias
that the optimiser removes, seeded decisions, and its refusals."""

import numpy as np
import pytest

from fairlatent.errors import FairlatentError
from fairlatent.metrics.fairness import equal_opportunity_difference
from fairlatent.train.postprocess import fit_threshold_optimizer, predict_post_processed


def _biased_scores(n, seed):
    """Scores of a classifier that adds +1.5 to the logit of protected group 1: its TPR gap at 0.5 is large."""
    r = np.random.default_rng(seed)
    g, y = r.integers(0, 2, n), r.integers(0, 2, n)
    s = 1 / (1 + np.exp(-(2.0 * (2 * y - 1) + 1.5 * g - 0.75 + r.normal(size=n))))
    return s, y, g


@pytest.mark.parametrize("constraints", ["true_positive_rate_parity", "equalized_odds"])
def test_threshold_optimizer_closes_the_planted_gap_on_new_data(constraints):
    s_val, y_val, g_val = _biased_scores(6000, 0)
    s, y, g = _biased_scores(6000, 1)
    before = equal_opportunity_difference(y, (s > 0.5).astype(int), sensitive_features=g)
    opt = fit_threshold_optimizer(s_val, y_val, g_val, constraints=constraints)
    pred = predict_post_processed(opt, s, g, seed=0)
    after = equal_opportunity_difference(y, pred, sensitive_features=g)
    assert before > 0.05 and after < 0.02, (before, after)
    if constraints == "equalized_odds":  # and the false-positive rates too
        fpr = [pred[(g == k) & (y == 0)].mean() for k in (0, 1)]
        assert abs(fpr[0] - fpr[1]) < 0.03
    np.testing.assert_array_equal(predict_post_processed(opt, s, g, seed=0), pred)  # seeded
    assert set(np.unique(pred)) == {0, 1}


def test_threshold_optimizer_refusals_name_the_problem():
    s, y, g = _biased_scores(200, 2)
    with pytest.raises(FairlatentError, match="unknown constraints 'demographic'; choose true_positive_rate_parity"):
        fit_threshold_optimizer(s, y, g, constraints="demographic")
    y1 = np.where(g == 1, 1, y)  # group 1 has no negative
    with pytest.raises(FairlatentError, match="no row of protected group 1 with target 0"):
        fit_threshold_optimizer(s, y1, g, constraints="equalized_odds")
    with pytest.raises(FairlatentError, match="200 scores, 199 labels and 200 groups"):
        fit_threshold_optimizer(s, y[:-1], g, constraints="equalized_odds")
