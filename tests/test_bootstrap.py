"""Bootstrap of the fairness metrics: determinism, agreement with per-resample reference metrics, coverage."""

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from fairlatent.errors import FairlatentError
from fairlatent.metrics import fairness as F
from fairlatent.metrics.bootstrap import _BLOCK, ALL_METRICS, resample_counts
from fairlatent.metrics.bootstrap import bootstrap_metrics
from fairlatent.utils.seed import rng

fm = pytest.importorskip("fairlearn.metrics")


def _data(n, seed=0):
    r = np.random.default_rng(seed)
    g = r.integers(0, 2, n)
    y = (r.random(n) < 0.3 + 0.3 * g).astype(int)
    s = 1 / (1 + np.exp(-(2.5 * (2 * y - 1) + 0.6 * g + r.normal(size=n))))
    s = np.round(s, 3)  # ties, as sigmoid outputs of a real model have
    return y, s, g


def test_deterministic_by_seed():
    y, s, g = _data(800)
    t = F.calibrated_threshold(y, s)
    a = bootstrap_metrics(y, s, sensitive_features=g, threshold=t, n_boot=120, seed=7)
    b = bootstrap_metrics(y, s, sensitive_features=g, threshold=t, n_boot=120, seed=7)
    c = bootstrap_metrics(y, s, sensitive_features=g, threshold=t, n_boot=120, seed=8)
    assert a == b
    assert set(a) == set(ALL_METRICS)
    assert a["AP"]["median"] != c["AP"]["median"]


def test_matches_per_resample_reference_metrics():
    """Median over the same resamples computed row-by-row with sklearn / fairlearn / the raw functions."""
    y, s, g = _data(600, seed=1)
    t = 0.5
    n_boot = 60
    res = bootstrap_metrics(y, s, sensitive_features=g, threshold=t, n_boot=n_boot, seed=3)
    # The bootstrap draws its resamples in fixed-size blocks from rng(seed, "bootstrap"): re-draw them.
    gen = rng(3, "bootstrap")
    counts = np.concatenate([resample_counts(gen, min(_BLOCK, n_boot - i), len(y)) for i in range(0, n_boot, _BLOCK)])
    assert np.all(counts.sum(1) == len(y))
    per = {k: [] for k in ("AP", "DEO", "BA", "DP", "EOdds", "acc", "worst_group_acc", "KL")}
    for c in counts:
        idx = np.repeat(np.arange(len(y)), c.astype(int))
        yi, si, gi = y[idx], s[idx], g[idx]
        pi = (si > t).astype(int)
        per["AP"].append(average_precision_score(yi, si))
        per["DEO"].append(abs(fm.equal_opportunity_difference(yi, pi, sensitive_features=gi)))
        per["DP"].append(fm.demographic_parity_difference(yi, pi, sensitive_features=gi))
        per["EOdds"].append(fm.equalized_odds_difference(yi, pi, sensitive_features=gi))
        per["BA"].append(F.bias_amplification(yi, pi, sensitive_features=gi))
        per["acc"].append(np.mean(yi == pi))
        per["worst_group_acc"].append(F.worst_group_accuracy(yi, pi, sensitive_features=gi))
        per["KL"].extend(F.kl_divergence_scores(yi, si, sensitive_features=gi))
    for k, v in per.items():
        scale = 1.0 if k == "KL" else 100.0  # KL is reported in nats like the reference; the rest ×100
        assert res[k]["median"] == pytest.approx(scale * np.median(v), abs=1e-9), k
        assert res[k]["lo"] == pytest.approx(scale * np.percentile(v, 2.5), abs=1e-9), k
        assert res[k]["hi"] == pytest.approx(scale * np.percentile(v, 97.5), abs=1e-9), k
        assert res[k]["std"] == pytest.approx(scale * np.std(v), abs=1e-9), k
    assert res["EOpp"] == res["DEO"]


def test_large_sample_median_near_full_value_and_covered():
    y, s, g = _data(6000, seed=2)
    t = F.calibrated_threshold(y, s)
    res = bootstrap_metrics(y, s, sensitive_features=g, threshold=t, n_boot=200, seed=0)
    p = (s > t).astype(int)
    full = {
        "AP": average_precision_score(y, s),
        "DEO": F.deo(y, p, sensitive_features=g),
        "DP": F.demographic_parity_difference(y, p, sensitive_features=g),
        "acc": np.mean(y == p),
    }
    for k, v in full.items():
        r = res[k]
        assert r["full"] == pytest.approx(100 * v, abs=1e-9), k
        assert r["lo"] <= 100 * v <= r["hi"], k
        assert abs(r["median"] - 100 * v) < 0.5 * (r["hi"] - r["lo"]), k
        assert r["lo"] < r["median"] < r["hi"], k
    # Percent, not fractions.
    assert 50 < res["AP"]["median"] <= 100


def test_subset_and_errors():
    y, s, g = _data(300)
    res = bootstrap_metrics(y, s, sensitive_features=g, threshold=0.5, n_boot=20, metrics=("AP", "DEO"))
    assert set(res) == {"AP", "DEO"}
    with pytest.raises(FairlatentError, match="unknown metric"):
        bootstrap_metrics(y, s, sensitive_features=g, threshold=0.5, metrics=("AUC",))
    with pytest.raises(FairlatentError, match="exactly 2 protected groups"):
        bootstrap_metrics(y, s, sensitive_features=np.arange(300) % 3, threshold=0.5, n_boot=5)
    # Three groups are fine without KL.
    res3 = bootstrap_metrics(y, s, sensitive_features=np.arange(300) % 3, threshold=0.5, n_boot=5,
                             metrics=("DEO", "BA", "EOdds"))
    assert all(np.isfinite(v["median"]) for v in res3.values())


def test_paired_difference_uses_identical_resamples_and_detects_what_overlap_misses():
    from fairlatent.metrics.bootstrap import paired_difference

    rng_ = np.random.default_rng(5)
    n = 4000
    y = rng_.integers(0, 2, n)
    g = rng_.integers(0, 2, n)
    base = rng_.random(n)
    # model A: noisy scores that favour group 1 among positives; model B: A's scores with that favour halved
    s_a = np.clip(0.5 * y + 0.35 * base + 0.12 * y * g, 0, 1)
    s_b = np.clip(0.5 * y + 0.35 * base + 0.06 * y * g, 0, 1)
    th = 0.6
    ra, sa = bootstrap_metrics(y, s_a, sensitive_features=g, threshold=th, n_boot=200, seed=1, return_samples=True)
    rb, sb = bootstrap_metrics(y, s_b, sensitive_features=g, threshold=th, n_boot=200, seed=1, return_samples=True)
    assert ra == bootstrap_metrics(y, s_a, sensitive_features=g, threshold=th, n_boot=200, seed=1)
    d = paired_difference(sb, sa)
    # the per-resample differences are exactly B - A on the same resamples
    diff = sb["DEO"] - sa["DEO"]
    assert d["DEO"]["median"] == pytest.approx(np.median(diff))
    assert d["DEO"]["p_better"] == pytest.approx(np.mean(diff < 0))
    assert d["DEO"]["hi"] < 0  # B is fairer, and the paired interval says so
    # a model compared with itself: zero difference, never better
    same = paired_difference(sa, sa)
    assert same["DEO"]["median"] == 0 and same["DEO"]["p_better"] == 0
    assert same["AP"]["lo"] == same["AP"]["hi"] == 0
    with pytest.raises(FairlatentError, match="same resamples"):
        paired_difference({"DEO": sa["DEO"][:10]}, {"DEO": sb["DEO"]})
