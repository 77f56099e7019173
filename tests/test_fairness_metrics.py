"""Fairness metrics: hand-worked tables, fairlearn / scikit-learn cross-checks, KL oracles."""

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter1d
from sklearn.metrics import average_precision_score

from fairlatent.errors import FairlatentError
from fairlatent.metrics import fairness as F

fm = pytest.importorskip("fairlearn.metrics")


def _table(cells):
    """Rows from {(group, true, pred): count}."""
    g, t, p = [], [], []
    for (gi, ti, pi), k in cells.items():
        g += [gi] * k
        t += [ti] * k
        p += [pi] * k
    return np.array(t), np.array(p), np.array(g)


# Group 0: 6 positives (5 predicted 1), 4 negatives (1 predicted 1).
# Group 1: 2 positives (1 predicted 1), 8 negatives (0 predicted 1).
HAND = _table({(0, 1, 1): 5, (0, 1, 0): 1, (0, 0, 1): 1, (0, 0, 0): 3,
               (1, 1, 1): 1, (1, 1, 0): 1, (1, 0, 0): 8})


def test_deo_hand_worked():
    y, p, g = HAND
    # TPR_0 = 5/6, TPR_1 = 1/2 -> DEO = 1/3 (FNR gap 1/6 vs 1/2 is the same 1/3).
    assert F.deo(y, p, sensitive_features=g) == pytest.approx(1 / 3, abs=1e-12)
    assert F.equal_opportunity_difference(y, p, sensitive_features=g) == pytest.approx(1 / 3, abs=1e-12)
    # Swapping the group names does not change an unsigned gap.
    assert F.deo(y, p, sensitive_features=1 - g) == pytest.approx(1 / 3, abs=1e-12)


def test_other_rates_hand_worked():
    y, p, g = HAND
    # Selection rates 6/10 and 1/10 -> DP = 0.5.
    assert F.demographic_parity_difference(y, p, sensitive_features=g) == pytest.approx(0.5)
    # FPR_0 = 1/4, FPR_1 = 0; TPR gap 1/3 -> EOdds = max(1/3, 1/4) = 1/3.
    assert F.equalized_odds_difference(y, p, sensitive_features=g) == pytest.approx(1 / 3)
    # Correct: 5 + 3 + 1 + 8 = 17 of 20.
    assert F.accuracy(y, p) == pytest.approx(0.85)
    # Cell accuracies: (t=1,g=0) 5/6, (t=0,g=0) 3/4, (t=1,g=1) 1/2, (t=0,g=1) 8/8 -> worst 1/2.
    assert F.worst_group_accuracy(y, p, sensitive_features=g) == pytest.approx(0.5)


def test_bias_amplification_hand_worked():
    y, p, g = HAND
    # N = 20, P(T=1) = 0.4, P(T=0) = 0.6, P(A=a) = 0.5.
    # P(T=1|A=0) = 0.6 > 0.4 -> y=+1;  P(T=0|A=0) = 0.4 < 0.6 -> y=-1
    # P(T=1|A=1) = 0.2 < 0.4 -> y=-1;  P(T=0|A=1) = 0.8 > 0.6 -> y=+1
    # P(T^=1|A=0) = 0.6, P(T^=0|A=0) = 0.4, P(T^=1|A=1) = 0.1, P(T^=0|A=1) = 0.9
    # cells: +1(0.6-0.6) = 0, -1(0.4-0.4) = 0, -1(0.1-0.2) = 0.1, +1(0.9-0.8) = 0.1 -> mean 0.2/4 = 0.05
    assert F.bias_amplification(y, p, sensitive_features=g) == pytest.approx(0.05, abs=1e-12)


def test_bias_amplification_sign_is_the_codes():
    y, _, g = HAND
    # A predictor that says T=1 for all of group 0 and T=0 for all of group 1 amplifies the
    # correlation: cells +1(1-0.6) = 0.4, -1(0-0.4) = 0.4, -1(0-0.2) = 0.2, +1(1-0.8) = 0.2 -> +0.3
    # (the paper's printed formula would give -0.3).
    p = (g == 0).astype(int)
    assert F.bias_amplification(y, p, sensitive_features=g) == pytest.approx(0.3, abs=1e-12)
    # Predicting the labels exactly amplifies nothing.
    assert F.bias_amplification(y, y, sensitive_features=g) == pytest.approx(0.0, abs=1e-15)


def test_bias_amplification_independent_cells_count_zero():
    # P(T=1|A=a) = 0.4 = P(T=1) in both groups: every y_ta = 0, so BA = 0 whatever the predictions.
    y, p, g = _table({(0, 1, 1): 4, (0, 0, 1): 6, (1, 1, 0): 4, (1, 0, 0): 6})
    assert F.bias_amplification(y, p, sensitive_features=g) == 0.0


def _ba_loop(y, p, g):
    """Independent transcription of the definition with float probabilities."""
    vals = []
    for t in (0, 1):
        for a in np.unique(g):
            pta = np.mean((y == t) & (g == a))
            yta = np.sign(round(pta - np.mean(y == t) * np.mean(g == a), 12))
            vals.append(yta * (np.mean(p[g == a] == t) - np.mean(y[g == a] == t)))
    return np.mean(vals)


@pytest.mark.parametrize("seed", range(4))
def test_bias_amplification_matches_definition_random(seed):
    r = np.random.default_rng(seed)
    n = 400
    g = r.integers(0, 2, n)
    y = (r.random(n) < 0.3 + 0.3 * g).astype(int)
    p = np.where(r.random(n) < 0.8, y, 1 - y)
    assert F.bias_amplification(y, p, sensitive_features=g) == pytest.approx(_ba_loop(y, p, g), abs=1e-12)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("n_groups", [2, 3])
def test_agrees_with_fairlearn(seed, n_groups):
    r = np.random.default_rng(seed)
    n = 500
    g = np.array(["a", "b", "c"])[r.integers(0, n_groups, n)]
    y = r.integers(0, 2, n)
    p = np.where(r.random(n) < 0.7 + 0.1 * (g == "a"), y, 1 - y)
    kw = dict(sensitive_features=g)
    assert F.equal_opportunity_difference(y, p, **kw) == pytest.approx(fm.equal_opportunity_difference(y, p, **kw), abs=1e-12)
    assert F.deo(y, p, **kw) == pytest.approx(abs(fm.equal_opportunity_difference(y, p, **kw)), abs=1e-12)
    assert F.demographic_parity_difference(y, p, **kw) == pytest.approx(fm.demographic_parity_difference(y, p, **kw), abs=1e-12)
    assert F.equalized_odds_difference(y, p, **kw) == pytest.approx(fm.equalized_odds_difference(y, p, **kw), abs=1e-12)


@pytest.mark.parametrize("seed", range(3))
def test_rates_by_group_agree_with_fairlearns_metric_frame(seed):
    from fairlearn.metrics import MetricFrame, false_positive_rate, selection_rate, true_positive_rate

    r = np.random.default_rng(seed)
    n = 600
    g = np.array(["a", "b", "c"])[r.integers(0, 3, n)]
    y = r.integers(0, 2, n)
    p = np.where(r.random(n) < 0.6 + 0.2 * (g == "b"), y, 1 - y)
    frame = MetricFrame(metrics={"TPR": true_positive_rate, "FPR": false_positive_rate,
                                 "selection_rate": selection_rate}, y_true=y, y_pred=p, sensitive_features=g)
    got = F.rates_by_group(y, p, sensitive_features=g)
    assert list(got) == ["a", "b", "c"]
    for a in got:
        assert got[a]["n"] == int((g == a).sum()) and got[a]["positives"] == int(y[g == a].sum())
        for k in ("TPR", "FPR", "selection_rate"):
            assert got[a][k] == pytest.approx(frame.by_group.loc[a, k], abs=1e-12), (a, k)
    # the gaps are spreads of these rates
    assert F.deo(y, p, sensitive_features=g) == pytest.approx(
        max(v["TPR"] for v in got.values()) - min(v["TPR"] for v in got.values()), abs=1e-12)


def test_rates_by_group_leave_an_undefined_rate_undefined():
    got = F.rates_by_group([0, 0, 1, 1], [0, 1, 1, 0], sensitive_features=[0, 0, 1, 1])
    assert np.isnan(got[0]["TPR"]) and got[0]["FPR"] == 0.5 and got[0]["positives"] == 0
    assert np.isnan(got[1]["FPR"]) and got[1]["TPR"] == 0.5


@pytest.mark.parametrize("seed", range(5))
def test_average_precision_matches_sklearn_with_ties(seed):
    r = np.random.default_rng(seed)
    n = 700
    y = r.integers(0, 2, n)
    s = np.round(np.clip(0.3 * y + r.random(n) * 0.7, 0, 1), 1)  # only 11 distinct values: many ties
    assert F.average_precision(y, s) == pytest.approx(average_precision_score(y, s), abs=1e-12)
    w = r.integers(0, 4, n).astype(float)
    assert F.average_precision(y, s, sample_weight=w) == pytest.approx(
        average_precision_score(y, s, sample_weight=w), abs=1e-12)


def test_average_precision_no_positive_is_nan():
    assert np.isnan(F.average_precision([0, 0, 0], [0.1, 0.5, 0.9]))


def _kl_direct(y, s, g, bins=50):
    """Smoothed-histogram KL computed straight from np.histogram on the shared [0, 1] edges."""
    out = []
    for t in (1, 0):
        h = [np.histogram(s[(y == t) & (g == a)], bins=bins, range=(0, 1))[0].astype(float) for a in (0, 1)]
        p = [gaussian_filter1d(x, 1.0) for x in h]
        p = [x / x.sum() + 1e-6 for x in p]
        out += [np.sum(p[0] * np.log(p[0] / p[1])), np.sum(p[1] * np.log(p[1] / p[0]))]
    return np.array(out)


def test_kl_matches_direct_histograms():
    r = np.random.default_rng(0)
    n = 2000
    y, g = r.integers(0, 2, n), r.integers(0, 2, n)
    s = np.clip(r.beta(2 + 2 * y + g, 3, n), 0, 1)
    s[:5] = [0.0, 1.0, 0.5, 0.02, 0.98]  # edges and exact bin boundaries
    np.testing.assert_allclose(F.kl_divergence_scores(y, s, sensitive_features=g), _kl_direct(y, s, g), rtol=1e-12)


def test_kl_oracles():
    r = np.random.default_rng(1)
    s = r.random(600)
    y = r.integers(0, 2, 600)
    # Identical multisets of scores in both groups -> KL exactly 0 in every direction.
    same = F.kl_divergence_scores(np.r_[y, y], np.r_[s, s], sensitive_features=np.r_[np.zeros(600), np.ones(600)])
    np.testing.assert_allclose(same, 0.0, atol=1e-12)
    # i.i.d. draws from one distribution -> small.
    g = r.integers(0, 2, 600)
    assert np.all(F.kl_divergence_scores(y, s, sensitive_features=g) < 0.2)
    # Disjoint supports -> large.
    disjoint = np.where(g == 0, 0.3 * s, 0.7 + 0.3 * s)
    kl = F.kl_divergence_scores(y, disjoint, sensitive_features=g)
    assert np.all(kl > 5.0)
    # Swapping the groups swaps the two directions of each pair.
    swapped = F.kl_divergence_scores(y, disjoint, sensitive_features=1 - g)
    np.testing.assert_allclose(swapped, kl[[1, 0, 3, 2]], rtol=1e-12)


def test_kl_uses_shared_edges():
    # Group 0 uniform on [0, .5], group 1 uniform on [.5, 1]: per-group min-max histograms (the
    # reference code's flaw) would both look uniform and give KL ~ 0; shared edges see the shift.
    r = np.random.default_rng(2)
    n = 4000
    g = r.integers(0, 2, n)
    y = r.integers(0, 2, n)
    s = 0.5 * r.random(n) + 0.5 * g
    assert np.min(F.kl_divergence_scores(y, s, sensitive_features=g)) > 3.0


def test_kl_rejects_bad_input():
    with pytest.raises(FairlatentError, match="exactly 2 protected groups"):
        F.kl_divergence_scores([0, 1, 1], [0.1, 0.2, 0.3], sensitive_features=[0, 1, 2])
    with pytest.raises(FairlatentError, match="row 1 .* outside"):
        F.kl_divergence_scores([0, 1], [0.1, 2.5], sensitive_features=[0, 1])


def test_calibrated_threshold_counts():
    r = np.random.default_rng(3)
    y = r.integers(0, 2, 1000)
    s = r.random(1000)
    t = F.calibrated_threshold(y, s)
    assert int(np.sum(s > t)) == int(y.sum())
    # Ties at the boundary are predicted negative: never more predicted positives than positives.
    s_tied = np.round(s, 1)
    assert int(np.sum(s_tied > F.calibrated_threshold(y, s_tied))) <= int(y.sum())
    # Extremes.
    assert int(np.sum(s > F.calibrated_threshold(np.zeros(1000), s))) == 0
    assert int(np.sum(s > F.calibrated_threshold(np.ones(1000), s))) == 1000


def test_errors_name_the_row():
    with pytest.raises(FairlatentError, match="y_true .* row 2 has value 2"):
        F.deo([0, 1, 2], [0, 1, 1], sensitive_features=[0, 0, 1])
    with pytest.raises(FairlatentError, match="differ in length"):
        F.deo([0, 1], [0, 1, 1], sensitive_features=[0, 0, 1])
    with pytest.raises(FairlatentError, match="sensitive_features has 2 rows"):
        F.deo([0, 1, 1], [0, 1, 1], sensitive_features=[0, 1])


def test_undefined_rate_is_nan_not_zero():
    # Group 1 has no positives: its TPR is undefined, so is the gap.
    assert np.isnan(F.deo([1, 0, 0, 0], [1, 0, 1, 0], sensitive_features=[0, 0, 1, 1]))


def test_empty_group_cells_are_skipped_in_ba_and_worst_group():
    # Tables as a bootstrap resample can produce them: group 1 absent entirely.
    counts = np.zeros((2, 2, 2))
    counts[0] = [[3, 1], [1, 5]]  # group 0: [true 0: pred 0, pred 1], [true 1: ...]
    # Only group 0 exists, so P(T=t|A=0) = P(T=t): both y = 0, the 2 defined cells give 0, the
    # 2 cells of the empty group are undefined and skipped -> 0, not nan.
    assert F.bias_amplification_from_counts(counts) == 0.0
    # Cells (t=0, g=0): 3/4, (t=1, g=0): 5/6 -> worst 3/4; empty cells ignored.
    assert F.worst_group_accuracy_from_counts(counts) == pytest.approx(0.75)
    # Rates of the absent group are undefined, so are the gaps.
    assert np.isnan(F.deo_from_counts(counts))
