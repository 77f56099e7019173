"""FID, KID and Inception Score: closed-form oracles and cross-checks against scipy and torch-fidelity."""

from __future__ import annotations

import importlib.util
import sys
import types
import warnings
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
import torch

from fairlatent.errors import FairlatentError
from fairlatent.metrics.generative import (
    feature_statistics,
    fid_from_features,
    frechet_distance,
    inception_score,
    kernel_inception_distance,
)


def load_torch_fidelity_module(name: str):
    """Load one torch_fidelity module from its file without the package __init__ (which imports torchvision).

    ``torch_fidelity.utils`` (imported by the metric modules) pulls torchvision, so it is replaced by an
    empty stub; the functions under test do not use it.
    """
    try:
        import importlib.metadata as md

        pkgdir = Path(md.distribution("torch-fidelity").locate_file("torch_fidelity"))
    except Exception:  # noqa: BLE001
        pytest.skip("torch-fidelity not installed (pip install --no-deps torch-fidelity)")
    saved = {k: sys.modules.get(k) for k in ("torch_fidelity", "torch_fidelity.utils")}
    pkg = types.ModuleType("torch_fidelity")
    pkg.__path__ = [str(pkgdir)]
    sys.modules["torch_fidelity"] = pkg
    stub = types.ModuleType("torch_fidelity.utils")
    for attr in ("create_feature_extractor", "extract_featuresdict_from_input_id_cached", "resolve_feature_extractor",
                 "resolve_feature_layer_for_metric", "get_cacheable_input_name", "cache_lookup_one_recompute_on_miss",
                 "cache_lookup_group_recompute_all_on_any_miss", "extract_featuresdict_from_input_id"):
        setattr(stub, attr, None)
    sys.modules["torch_fidelity.utils"] = stub
    try:
        spec = importlib.util.spec_from_file_location(f"torch_fidelity.{name}", pkgdir / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v


def sqrtm_fid(mu1, s1, mu2, s2):
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    d = mu1 - mu2
    return float(d @ d + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def correlated(rs, n, d, shift=0.0, scale=1.0):
    a = rs.standard_normal((d, d)) / np.sqrt(d)
    return rs.standard_normal((n, d)) @ a * scale + shift


# ---------------------------------------------------------------------------------------------- FID
def test_fid_identical_sets_is_zero():
    x = correlated(np.random.default_rng(0), 400, 32)
    assert abs(fid_from_features(x, x)) < 1e-9


def test_fid_equal_covariances_gives_mean_shift():
    rs = np.random.default_rng(1)
    mu1, mu2 = rs.standard_normal(16), rs.standard_normal(16)
    a = rs.standard_normal((16, 16))
    sigma = a @ a.T + np.eye(16)
    assert frechet_distance(mu1, sigma, mu2, sigma) == pytest.approx(float((mu1 - mu2) @ (mu1 - mu2)), rel=1e-10)


def test_fid_one_dimensional_gaussians():
    for m1, s1, m2, s2 in [(0.0, 1.0, 1.0, 2.0), (3.0, 0.5, -1.0, 0.1), (0.0, 2.0, 0.0, 2.0)]:
        got = frechet_distance(np.array([m1]), np.array([[s1**2]]), np.array([m2]), np.array([[s2**2]]))
        assert got == pytest.approx((m1 - m2) ** 2 + (s1 - s2) ** 2, abs=1e-12)


def test_fid_agrees_with_scipy_sqrtm_and_torch_fidelity():
    rs = np.random.default_rng(2)
    x = correlated(rs, 600, 64)
    y = correlated(rs, 500, 64, shift=0.3, scale=1.2)
    mu1, s1 = feature_statistics(x)
    mu2, s2 = feature_statistics(y)
    ours = frechet_distance(mu1, s1, mu2, s2)
    assert ours == pytest.approx(sqrtm_fid(mu1, s1, mu2, s2), rel=1e-6)
    assert np.allclose(s1, np.cov(x, rowvar=False))  # ddof=1 as pytorch-fid / torch-fidelity
    tf = load_torch_fidelity_module("metric_fid")
    ref = tf.fid_statistics_to_metric({"mu": mu1, "sigma": s1}, {"mu": mu2, "sigma": s2}, verbose=False)
    assert ours == pytest.approx(ref["frechet_inception_distance"], rel=1e-6)


def test_fid_warns_when_fewer_samples_than_dimensions():
    rs = np.random.default_rng(3)
    with pytest.warns(UserWarning, match="singular"):
        fid_from_features(rs.standard_normal((10, 20)), rs.standard_normal((30, 20)))


def test_fid_rejects_bad_shapes():
    with pytest.raises(FairlatentError, match="dimensions differ"):
        fid_from_features(np.zeros((5, 3)), np.zeros((5, 4)))
    with pytest.raises(FairlatentError, match="at least 2"):
        feature_statistics(np.zeros((1, 3)))


# ---------------------------------------------------------------------------------------------- KID
def test_kid_matches_torch_fidelity_mmd_when_subset_is_whole_set():
    """With subset size = n every subset is a permutation, and MMD² is permutation invariant: both agree exactly."""
    rs = np.random.default_rng(4)
    x = rs.standard_normal((150, 24)).astype(np.float32)
    y = (rs.standard_normal((150, 24)) * 1.1 + 0.2).astype(np.float32)
    mean, std = kernel_inception_distance(x, y, subsets=3, subset_size=150, seed=0)
    tf = load_torch_fidelity_module("metric_kid")
    ref = tf.kid_features_to_metric(torch.from_numpy(x), torch.from_numpy(y), kid_subsets=3, kid_subset_size=150,
                                    verbose=False, rng_seed=0, kid_kernel="poly", kid_kernel_poly_degree=3,
                                    kid_kernel_poly_gamma=None, kid_kernel_poly_coef0=1)
    assert mean == pytest.approx(ref["kernel_inception_distance_mean"], rel=1e-5)
    assert std < 1e-6 * abs(mean)


def test_kid_explicit_formula_and_subset_behaviour():
    rs = np.random.default_rng(5)
    x = rs.standard_normal((40, 5))
    y = rs.standard_normal((40, 5)) + 0.5
    k = lambda a, b: (a @ b.T / 5 + 1) ** 3  # noqa: E731
    kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
    m = 40
    expect = ((kxx.sum() - np.trace(kxx)) + (kyy.sum() - np.trace(kyy))) / (m * (m - 1)) - 2 * kxy.mean()
    mean, _ = kernel_inception_distance(x, y, subsets=2, subset_size=1000, seed=0)  # size clipped to n
    assert mean == pytest.approx(expect, rel=1e-5)
    # unbiased: same distribution → mean near 0 (can be negative), different → clearly positive
    same = kernel_inception_distance(rs.standard_normal((300, 5)), rs.standard_normal((300, 5)), subsets=20,
                                     subset_size=100, seed=1)
    assert abs(same[0]) < 3 * same[1] + 1e-3 and same[1] > 0
    assert kernel_inception_distance(x, y, subsets=5, subset_size=20, seed=3) == \
        kernel_inception_distance(x, y, subsets=5, subset_size=20, seed=3)


# ---------------------------------------------------------------------------------------------- IS
def test_inception_score_oracles():
    c = 10
    identical = np.tile(np.array([[5.0, 1.0, 0.0, 2.0]]), (100, 1))
    assert inception_score(identical, splits=10)[0] == pytest.approx(1.0, abs=1e-12)
    confident = np.full((200, c), -1e4)
    confident[np.arange(200), np.arange(200) % c] = 1e4
    mean, std = inception_score(confident, splits=10, shuffle=False)
    assert mean == pytest.approx(c, rel=1e-9) and std == pytest.approx(0.0, abs=1e-9)


def test_inception_score_matches_torch_fidelity():
    logits = np.random.default_rng(6).standard_normal((500, 30)) * 3
    tf = load_torch_fidelity_module("metric_isc")
    ref = tf.isc_features_to_metric(torch.from_numpy(logits), splits=10, shuffle=False)
    mean, std = inception_score(logits, splits=10, shuffle=False)
    assert mean == pytest.approx(ref["inception_score_mean"], rel=1e-10)
    assert std == pytest.approx(ref["inception_score_std"], rel=1e-8)  # ddof=0 like torch-fidelity


def test_inception_score_bad_input():
    with pytest.raises(FairlatentError, match="NaN"):
        inception_score(np.array([[0.0, np.nan], [1.0, 2.0]]), splits=1)
    with pytest.raises(FairlatentError, match="splits"):
        inception_score(np.zeros((5, 3)), splits=10)


# ---- FID is a distance: never negative, FID(X, X) = 0 for rank-deficient covariances (issue 12, item 17)
def _rank_deficient(n: int, d: int, rank: int, seed: int) -> np.ndarray:
    """n×d features of rank ``rank`` plus constant columns (a plain background), as pixel features are."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, rank)) @ rng.normal(size=(rank, d)) * 7.0 + 3.0
    x[:, : d // 4] = 128.0  # constant features: zero variance
    return x


@pytest.mark.parametrize("n,d,rank", [(300, 400, 250), (600, 200, 60), (50, 512, 49)])
def test_fid_of_a_rank_deficient_set_with_itself_is_zero(n, d, rank):
    x = _rank_deficient(n, d, rank, seed=n)
    _, sigma = feature_statistics(x)
    value = fid_from_features(x, x.copy()) if n > d else _fid_quiet(x, x.copy())
    assert value >= 0.0
    assert value <= 1e-9 * 2 * np.trace(sigma), (value, np.trace(sigma))


def _fid_quiet(a, b):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fid_from_features(a, b)


def test_fid_of_diagonal_gaussians_matches_the_closed_form():
    rng = np.random.default_rng(3)
    d = 40
    a, b = rng.uniform(0.0, 4.0, d), rng.uniform(0.0, 4.0, d)
    a[:5] = 0.0  # rank-deficient on purpose
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    expect = float(((mu1 - mu2) ** 2).sum() + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum())
    q, _ = np.linalg.qr(rng.normal(size=(d, d)))  # a common rotation keeps the closed form
    got = frechet_distance(q @ mu1, q @ np.diag(a) @ q.T, q @ mu2, q @ np.diag(b) @ q.T)
    # 1e-8: the zero variances of Σ₁ meet full-rank Σ₂, where √(round-off) of the null eigenvalues is inherent
    assert got == pytest.approx(expect, rel=1e-8)


def test_fid_is_never_negative_on_near_identical_sets():
    x = _rank_deficient(200, 300, 150, seed=1)
    y = x + np.random.default_rng(2).normal(scale=1e-9, size=x.shape)
    assert _fid_quiet(x, y) >= 0.0
