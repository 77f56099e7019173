"""Hyperplane fitting in latent space: recovery of a known plane, normalisation, determinism, errors."""

import json

import numpy as np
import pytest

from fairlatent.errors import FairlatentError
from fairlatent.latent import Hyperplane, fit_domain_hyperplanes, fit_hyperplane

D = 16


def _separable(n, seed, w_true=None, b_true=0.4, margin=0.05):
    r = np.random.default_rng(seed)
    if w_true is None:
        w_true = np.random.default_rng(100).normal(size=D)
        w_true /= np.linalg.norm(w_true)
    z = r.normal(size=(3 * n, D))
    d = z @ w_true + b_true
    z = z[np.abs(d) > margin][:n]
    return z, (z @ w_true + b_true > 0).astype(int), w_true, b_true


@pytest.mark.parametrize("method", ["svm", "logistic"])
def test_recovers_known_plane(method):
    z, y, w_true, b_true = _separable(3000, 0)
    z_ho, y_ho, _, _ = _separable(1000, 1)
    h = fit_hyperplane(z, y, method=method, holdout=(z_ho, y_ho), name="Smiling")
    assert np.linalg.norm(h.w) == pytest.approx(1.0, abs=1e-12)
    assert h.w.dtype == np.float64
    assert float(h.w @ w_true) > 0.99
    assert h.b == pytest.approx(b_true, abs=0.1)
    assert h.fit_accuracy > 0.98
    assert h.heldout_accuracy is not None and h.heldout_accuracy > 0.97
    assert h.method == method and h.name == "Smiling"
    # The decision value is a signed distance: the same as the true plane's, up to the fit error.
    assert np.corrcoef(h.decision(z_ho), z_ho @ w_true + b_true)[0, 1] > 0.99
    np.testing.assert_array_equal(h.predict(z_ho), (h.decision(z_ho) > 0).astype(int))


def test_normalisation_matches_raw_svm():
    from sklearn.svm import LinearSVC

    z, y, _, _ = _separable(1500, 2, margin=0.0)
    h = fit_hyperplane(z, y, seed=0)
    raw = LinearSVC(C=1.0, max_iter=500_000, random_state=0, dual="auto").fit(z, y)
    norm = np.linalg.norm(raw.coef_)
    np.testing.assert_allclose(h.w, raw.coef_.ravel() / norm, atol=1e-12)
    assert h.b == pytest.approx(raw.intercept_[0] / norm, abs=1e-12)
    np.testing.assert_array_equal(h.predict(z), raw.predict(z))


def test_deterministic_and_serialisable():
    z, y, _, _ = _separable(1000, 3)
    a = fit_hyperplane(z, y, seed=5)
    b = fit_hyperplane(z, y, seed=5)
    np.testing.assert_array_equal(a.w, b.w)
    assert a.b == b.b
    c = Hyperplane.from_dict(json.loads(json.dumps(a.to_dict())))
    np.testing.assert_array_equal(c.w, a.w)
    assert (c.b, c.fit_accuracy, c.method) == (a.b, a.fit_accuracy, a.method)


def test_errors():
    z, y, _, _ = _separable(200, 4)
    with pytest.raises(FairlatentError, match=r"attribute 'Eyeglasses'.*all 200 latents have label 1"):
        fit_hyperplane(z, np.ones(200), name="Eyeglasses")
    with pytest.raises(FairlatentError, match="row 3 has label 2"):
        fit_hyperplane(z, np.r_[y[:3], 2, y[4:]])
    with pytest.raises(FairlatentError, match="199 labels for 200 latents"):
        fit_hyperplane(z, y[:-1])
    with pytest.raises(FairlatentError, match="unknown hyperplane method"):
        fit_hyperplane(z, y, method="pca")
    bad = z.copy()
    bad[5, 2] = np.nan
    with pytest.raises(FairlatentError, match="row 5, column 2"):
        fit_hyperplane(bad, y)
    with pytest.raises(FairlatentError, match="unit norm"):
        Hyperplane(w=np.ones(D), b=0.0)


def test_domain_hyperplanes():
    r = np.random.default_rng(9)
    w0, w1 = r.normal(size=D), r.normal(size=D)
    w0, w1 = w0 / np.linalg.norm(w0), w1 / np.linalg.norm(w1)
    z = r.normal(size=(4000, D))
    g = (z[:, 0] > 0).astype(int)
    y = np.where(g == 0, z @ w0 > 0, z @ w1 > 0).astype(int)
    planes = fit_domain_hyperplanes(z, y, g, name="Attractive", holdout=(z[:500], y[:500], g[:500]))
    assert sorted(planes) == [0, 1]
    assert float(planes[0].w @ w0) > 0.95 and float(planes[1].w @ w1) > 0.95
    assert planes[0].heldout_accuracy > 0.95
    assert "group 1" in planes[1].name


def test_cell_balanced_weights_make_the_labels_independent_and_keep_mean_one():
    from fairlatent.latent import cell_balanced_weights

    t = np.array([1] * 45 + [0] * 5 + [1] * 5 + [0] * 45)
    g = np.array([1] * 50 + [0] * 50)
    w = cell_balanced_weights(t, g)
    assert w.mean() == pytest.approx(1.0)
    for a in (0, 1):  # within each target class the two groups weigh the same
        assert w[(t == a) & (g == 0)].sum() == pytest.approx(w[(t == a) & (g == 1)].sum())
    with pytest.raises(FairlatentError, match="no latent is labelled target=1, protected=0 among 4"):
        cell_balanced_weights([1, 1, 0, 0], [1, 1, 0, 1])


def test_cell_balanced_fit_removes_the_lean_of_h_t_toward_a_correlated_protected_direction():
    """Planted: t follows e1 (with label noise), g follows e2, and the sample keeps t = g on 90 % of rows
    (the GAN reproducing a 0.9 skew). Unweighted, h_t leans toward e2; cell-balanced, it nearly does not."""
    from fairlatent.latent import cell_balanced_weights

    r = np.random.default_rng(3)
    z = r.normal(size=(40000, 8))
    t = (z[:, 0] + r.normal(scale=0.8, size=len(z)) > 0).astype(int)
    g = (z[:, 1] > 0).astype(int)
    agree = np.flatnonzero(t == g)
    disagree = np.flatnonzero(t != g)[: len(agree) // 9]  # 90 % agreement
    keep = np.concatenate([agree, disagree])
    z, t, g = z[keep], t[keep], g[keep]
    plain = fit_hyperplane(z, t, seed=0)
    balanced = fit_hyperplane(z, t, seed=0, sample_weight=cell_balanced_weights(t, g))
    assert abs(plain.w[1]) > 0.3  # leans on the protected direction
    assert abs(balanced.w[1]) < 0.1 and balanced.w[0] > 0.95
    with pytest.raises(FairlatentError, match="sample_weight must be 3 finite weights"):
        fit_hyperplane(z[:3], [0, 1, 0], sample_weight=[1.0, -1.0, 1.0])
