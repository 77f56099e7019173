"""Latent edits: invariants of the complementary latent, ablations, minimum-norm generalisation."""

import numpy as np
import pytest

from fairlatent.errors import FairlatentError
from fairlatent.latent import (
    Hyperplane,
    agreement_mask,
    verified_mask,
    complementary_latents,
    complementary_latents_domain,
    edit_latents,
    minimum_norm_edit,
    multi_protected_edits,
)

D = 32
TOL = 1e-10


def _plane(r, name=None, w=None):
    w = r.normal(size=D) if w is None else np.asarray(w, float)
    return Hyperplane(w=w / np.linalg.norm(w), b=float(r.normal()), name=name)


def _score(h, z):
    return z @ h.w + h.b


@pytest.mark.parametrize("seed", range(5))
def test_complementary_invariants(seed):
    r = np.random.default_rng(seed)
    h_t, h_g = _plane(r, "Smiling"), _plane(r, "Male")
    z = r.normal(size=(200, D))
    zp = complementary_latents(z, h_t, h_g)
    np.testing.assert_allclose(zp @ h_t.w, z @ h_t.w, atol=TOL)
    np.testing.assert_allclose(_score(h_g, zp), -_score(h_g, z), atol=TOL)
    # The paper's formula, row by row.
    cos = h_g.w @ h_t.w
    for i in range(3):
        d = _score(h_g, z[i])
        expect = z[i] - 2 * d / (1 - cos**2) * (h_g.w - cos * h_t.w)
        np.testing.assert_allclose(zp[i], expect, atol=TOL)
    # Applying it twice returns the original latent (it is an involution).
    np.testing.assert_allclose(complementary_latents(zp, h_t, h_g), z, atol=1e-9)


def test_guard_near_parallel_planes():
    r = np.random.default_rng(0)
    h_t = _plane(r, "Smiling")
    u = r.normal(size=D)
    u -= (u @ h_t.w) * h_t.w
    u /= np.linalg.norm(u)
    # cos θ = 0.999 -> sin θ = 0.0447 < 0.1
    h_g = Hyperplane(w=0.999 * h_t.w + np.sqrt(1 - 0.999**2) * u, b=0.3, name="Male")
    z = r.normal(size=(4, D))
    with pytest.raises(FairlatentError, match=r"'Smiling'.*'Male'.*not separable.*cos θ = w_g·w_t = 0\.999"):
        complementary_latents(z, h_t, h_g)
    with pytest.raises(FairlatentError, match="not separable"):
        edit_latents(z, h_t, h_g, kind="onto_plane")
    with pytest.raises(FairlatentError, match="not separable"):
        minimum_norm_edit(z, [h_t], [h_g])
    # A looser guard lets it through, and the invariants still hold.
    zp = complementary_latents(z, h_t, h_g, min_sin=0.01)
    np.testing.assert_allclose(zp @ h_t.w, z @ h_t.w, atol=1e-8)
    # Plain reflection does not look at the target plane: no guard.
    edit_latents(z, h_t, h_g, kind="reflect")


@pytest.mark.parametrize("seed", range(3))
def test_ablation_invariants(seed):
    r = np.random.default_rng(seed)
    h_t, h_g = _plane(r), _plane(r)
    z = r.normal(size=(100, D))
    d = _score(h_g, z)
    on = edit_latents(z, h_t, h_g, kind="onto_plane")
    np.testing.assert_allclose(_score(h_g, on), 0.0, atol=TOL)
    np.testing.assert_allclose(on @ h_t.w, z @ h_t.w, atol=TOL)
    # onto_plane is z - (d / sin θ) ĝ⊥ with ĝ⊥ the unit part of w_g orthogonal to w_t.
    cos = h_g.w @ h_t.w
    sin = np.sqrt(1 - cos**2)
    g_perp = (h_g.w - cos * h_t.w) / sin
    np.testing.assert_allclose(np.linalg.norm(g_perp), 1.0, atol=1e-12)
    np.testing.assert_allclose(on, z - (d / sin)[:, None] * g_perp, atol=TOL)
    refl = edit_latents(z, h_t, h_g, kind="reflect")
    np.testing.assert_allclose(_score(h_g, refl), -d, atol=TOL)
    np.testing.assert_allclose(refl, z - 2 * d[:, None] * h_g.w, atol=TOL)
    proj = edit_latents(z, h_t, h_g, kind="project")
    np.testing.assert_allclose(_score(h_g, proj), 0.0, atol=TOL)
    # The ablations move the target score by -2d·cos θ / -d·cos θ: that is why they are ablations.
    np.testing.assert_allclose(refl @ h_t.w - z @ h_t.w, -2 * d * cos, atol=TOL)
    with pytest.raises(FairlatentError, match="unknown latent edit kind"):
        edit_latents(z, h_t, h_g, kind="swap")


@pytest.mark.parametrize("seed", range(3))
def test_minimum_norm_edit_equals_complementary(seed):
    r = np.random.default_rng(seed)
    h_t, h_g = _plane(r), _plane(r)
    z = r.normal(size=(50, D))
    np.testing.assert_allclose(minimum_norm_edit(z, [h_t], [h_g]), complementary_latents(z, h_t, h_g), atol=TOL)


def test_minimum_norm_edit_is_minimal():
    r = np.random.default_rng(4)
    fixed = [_plane(r) for _ in range(2)]
    flipped = [_plane(r) for _ in range(2)]
    z = r.normal(size=(20, D))
    zp = minimum_norm_edit(z, fixed, flipped)
    for h in fixed:
        np.testing.assert_allclose(_score(h, zp), _score(h, z), atol=TOL)
    for h in flipped:
        np.testing.assert_allclose(_score(h, zp), -_score(h, z), atol=TOL)
    # Any other solution is z' + v with v in the null space of A: never closer to z.
    A = np.stack([h.w for h in fixed + flipped])
    _, _, vt = np.linalg.svd(A)
    null = vt[len(A):]  # orthonormal basis of the null space
    base = np.linalg.norm(zp - z, axis=1)
    for _ in range(20):
        v = r.normal(size=(len(z), len(null))) @ null
        other = zp + v
        for h in fixed + flipped:  # still satisfies every constraint
            np.testing.assert_allclose(other @ h.w, zp @ h.w, atol=1e-9)
        assert np.all(np.linalg.norm(other - z, axis=1) >= base - 1e-12)
    # And the edit itself is orthogonal to the null space (lies in the row space of A).
    np.testing.assert_allclose((zp - z) @ null.T, 0.0, atol=1e-9)


def test_minimum_norm_edit_guards_dependent_planes():
    r = np.random.default_rng(5)
    h1, h2 = _plane(r, "a"), _plane(r, "b")
    w3 = h1.w + h2.w + 1e-4 * r.normal(size=D)  # almost in span(h1, h2)
    h3 = Hyperplane(w=w3 / np.linalg.norm(w3), b=0.0, name="c")
    with pytest.raises(FairlatentError, match="nearly in the span"):
        minimum_norm_edit(r.normal(size=(3, D)), [h1, h2], [h3])
    with pytest.raises(FairlatentError, match="at least one"):
        minimum_norm_edit(r.normal(size=(3, D)), [h1], [])


def test_multi_protected_edits():
    r = np.random.default_rng(6)
    h_t = _plane(r, "Smiling")
    h_gs = {"Male": _plane(r, "Male"), "Young": _plane(r, "Young")}
    z = r.normal(size=(40, D))
    each = multi_protected_edits(z, h_t, h_gs, mode="each")
    assert set(each) == {"Male", "Young"}
    for flip, keep in (("Male", "Young"), ("Young", "Male")):
        zp = each[flip]
        np.testing.assert_allclose(zp @ h_t.w, z @ h_t.w, atol=TOL)
        np.testing.assert_allclose(_score(h_gs[flip], zp), -_score(h_gs[flip], z), atol=TOL)
        np.testing.assert_allclose(_score(h_gs[keep], zp), _score(h_gs[keep], z), atol=TOL)
    both = multi_protected_edits(z, h_t, h_gs, mode="all")["all"]
    np.testing.assert_allclose(both @ h_t.w, z @ h_t.w, atol=TOL)
    for h in h_gs.values():
        np.testing.assert_allclose(_score(h, both), -_score(h, z), atol=TOL)
    one = multi_protected_edits(z, h_t, h_gs, mode="Young")
    np.testing.assert_allclose(one["Young"], each["Young"], atol=TOL)
    with pytest.raises(FairlatentError, match="unknown protected attribute"):
        multi_protected_edits(z, h_t, h_gs, mode="Bald")


def test_complementary_latents_domain():
    r = np.random.default_rng(7)
    h_t_by = {0: _plane(r, "t|0"), 1: _plane(r, "t|1")}
    h_g = _plane(r, "Male")
    z = r.normal(size=(60, D))
    g = h_g.predict(z)
    zp = complementary_latents_domain(z, g, h_t_by, h_g)
    np.testing.assert_allclose(_score(h_g, zp), -_score(h_g, z), atol=TOL)
    for a in (0, 1):
        m = g == a
        # The complement's score on the other group's target plane = the original's on its own.
        np.testing.assert_allclose(_score(h_t_by[1 - a], zp[m]), _score(h_t_by[a], z[m]), atol=TOL)
    # With one shared target plane it reduces to the plain complementary latent.
    same = {0: h_t_by[0], 1: h_t_by[0]}
    np.testing.assert_allclose(complementary_latents_domain(z, g, same, h_g), complementary_latents(z, h_t_by[0], h_g), atol=TOL)
    with pytest.raises(FairlatentError, match="row 0 has protected group 5"):
        complementary_latents_domain(z, np.full(60, 5), h_t_by, h_g)


def test_dimension_mismatch_and_agreement():
    r = np.random.default_rng(8)
    h_t, h_g = _plane(r), _plane(r)
    with pytest.raises(FairlatentError, match="dimension 31"):
        complementary_latents(r.normal(size=(2, D - 1)), h_t, h_g)
    np.testing.assert_array_equal(agreement_mask([0, 1, 1, 0], [0, 0, 1, 1]), [True, False, True, False])
    with pytest.raises(FairlatentError, match="differ in length"):
        agreement_mask([0, 1], [0])


def test_verified_mask_keeps_pairs_whose_target_held_and_protected_flipped():
    # every combination of (target held?, protected flipped?) once
    t_z, t_zp = [0, 0, 1, 1], [0, 1, 1, 0]
    g_z, g_zp = [0, 0, 1, 1], [1, 1, 1, 1]
    np.testing.assert_array_equal(verified_mask(t_z, t_zp, g_z, g_zp), [True, False, False, False])
    np.testing.assert_array_equal(verified_mask([1, 1], [1, 1], [0, 1], [1, 0]), [True, True])
    with pytest.raises(FairlatentError, match="target labels cover 2 pairs but protected labels 3"):
        verified_mask([0, 1], [0, 1], [0, 1, 0], [1, 0, 1])


# ---------------------------------------------------------------- editing part of the latent (``editable``)
@pytest.mark.parametrize("kind", ["complementary", "onto_plane", "reflect", "project"])
def test_editable_everything_is_the_free_edit(kind):
    r = np.random.default_rng(7)
    h_t, h_g = _plane(r), _plane(r)
    z = r.normal(size=(50, D))
    np.testing.assert_allclose(edit_latents(z, h_t, h_g, kind, editable=np.ones(D, bool)),
                               edit_latents(z, h_t, h_g, kind), atol=TOL)


@pytest.mark.parametrize("seed", range(4))
def test_editable_holds_the_rest_and_is_the_minimum_norm_edit_within(seed):
    r = np.random.default_rng(seed)
    h_t, h_g = _plane(r), _plane(r)
    z = r.normal(size=(60, D))
    m = np.zeros(D, bool)
    m[: D - 10] = True  # the last 10 entries held, like an InfoGAN latent's codes
    zp = complementary_latents(z, h_t, h_g, editable=m)
    np.testing.assert_array_equal(zp[:, ~m], z[:, ~m])
    np.testing.assert_allclose(zp @ h_t.w, z @ h_t.w, atol=TOL)  # the invariants on the whole planes
    np.testing.assert_allclose(_score(h_g, zp), -_score(h_g, z), atol=TOL)
    # oracle: the least-norm solution of the two constraints in the editable entries (numpy's lstsq)
    A = np.stack([h_t.w[m], h_g.w[m]])
    rhs = np.stack([np.zeros(len(z)), -2 * _score(h_g, z)])
    np.testing.assert_allclose(zp[:, m] - z[:, m], np.linalg.lstsq(A, rhs, rcond=None)[0].T, atol=1e-9)
    # holding entries can only lengthen the edit
    free = complementary_latents(z, h_t, h_g)
    assert np.all(np.linalg.norm(zp - z, axis=1) >= np.linalg.norm(free - z, axis=1) - 1e-9)
    proj = edit_latents(z, h_t, h_g, "project", editable=m)
    np.testing.assert_array_equal(proj[:, ~m], z[:, ~m])
    np.testing.assert_allclose(_score(h_g, proj), 0, atol=TOL)


def test_editable_refuses_planes_that_live_in_the_held_entries():
    r = np.random.default_rng(3)
    m = np.zeros(D, bool)
    m[:20] = True
    w_g = np.zeros(D)
    w_g[25] = 1.0  # h_g lives entirely in the held entries: its score cannot move
    h_t, h_g = _plane(r, "Smiling"), _plane(r, "Male", w=w_g)
    z = r.normal(size=(5, D))
    with pytest.raises(FairlatentError, match="not separable in the editable latent entries"):
        complementary_latents(z, h_t, h_g, editable=m)
    with pytest.raises(FairlatentError, match="of its unit normal in the editable entries"):
        edit_latents(z, h_t, h_g, "reflect", editable=m)
    # in the editable entries the two normals are parallel: keeping one score pins the other
    w_t2 = np.zeros(D)
    w_t2[0], w_t2[25] = 1.0, 1.0
    w_g2 = np.zeros(D)
    w_g2[0], w_g2[26] = 1.0, 1.0
    with pytest.raises(FairlatentError, match="not separable in the editable"):
        complementary_latents(z, _plane(r, w=w_t2), _plane(r, w=w_g2), editable=m)
    with pytest.raises(FairlatentError, match="boolean mask of the latents' 32 entries"):
        complementary_latents(z, h_t, h_g, editable=np.ones(D - 1, bool))
    with pytest.raises(FairlatentError, match="nothing is left to edit"):
        complementary_latents(z, h_t, h_g, editable=np.zeros(D, bool))
