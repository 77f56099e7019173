"""Latent edits that flip a protected attribute while keeping the target attribute (Ramaswamy et al. 2021).

Notation: unit-normal hyperplanes ``h_t = (w_t, b_t)`` (target) and ``h_g = (w_g, b_g)`` (protected), so
``w·z + b`` is a signed distance; ``d = w_g·z + b_g``; ``cos θ = w_g·w_t``; ``sin θ = √(1 − cos²θ)``;
``ĝ⊥ = (w_g − cos θ · w_t) / sin θ`` the unit part of ``w_g`` orthogonal to ``w_t``.

The paper's *complementary latent* is

    z' = z − 2d / (1 − cos²θ) · (w_g − cos θ · w_t)            (= z − (2d / sin θ) · ĝ⊥)

which keeps the target score (``w_t·z' = w_t·z``) and negates the protected score
(``w_g·z' + b_g = −d``). Moving along ``ĝ⊥`` changes the protected score by only ``sin θ`` per unit step,
so the edit length ``2|d|/sin θ`` explodes as the two planes become parallel: then the attributes are
not separable in this latent space and every function here refuses (:class:`FairlatentError`) when
``sin θ < min_sin`` (default 0.1, i.e. |cos θ| > 0.995, an edit ≥ 20·|d| long).

It is also the **minimum-norm** edit satisfying those two constraints, which generalises to any set of
planes: :func:`minimum_norm_edit` keeps the scores of ``fixed`` planes and negates those of ``flipped``
planes with the smallest ``‖z' − z‖``, in closed form ``z' = z + Aᵀ (A Aᵀ)⁻¹ r``. The reference code
reached such edits (two protected attributes; domain-dependent target planes) with an iterative
projection in homogeneous coordinates, ``linear_multi_sgd.py`` / ``linear_dom_dep.py``; the closed form
here is exact and has no learning rate.

**Editing part of the latent** (``editable``, a boolean mask over the D entries): the edit may be asked to
move only some entries, e.g. the N(0, I) noise of an InfoGAN latent while its codes (a one-hot block and
values in [−1, 1]) stay as drawn, so that z' stays a vector of the kind the generator was trained on. The
constraints stay those on the whole planes; the edit is the minimum-norm one within the editable entries,
``z' = z + Uᵀ (U Uᵀ)⁻¹ r`` where the rows of ``U`` are the normals with the held entries zeroed (on that
subspace ``w·Δ = u·Δ``). It is longer than the free edit by the share of each normal outside the held
entries, and refused when that share is too small to move the scores (see :func:`edit_latents`).

All functions are vectorised over the rows of ``z`` (n×D) and work in float64.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from fairlatent.errors import FairlatentError
from fairlatent.latent.hyperplane import Hyperplane, _as_latents, _py

__all__ = [
    "DOMAIN_EDIT",
    "EDIT_KINDS",
    "agreement_mask",
    "verified_mask",
    "affine_minimum_norm_edit",
    "complementary_latents",
    "complementary_latents_domain",
    "edit_latents",
    "minimum_norm_edit",
    "multi_protected_edits",
    "multi_protected_jobs",
    "MULTI_EDIT",
]

#: Edits written by the reference code (``linear.py``): the paper's one and three ablations.
EDIT_KINDS = ("complementary", "onto_plane", "reflect", "project")
#: The complementary edit with one target plane per protected group (:func:`complementary_latents_domain`);
#: apart from EDIT_KINDS because it needs the latents' groups and the per-group planes.
DOMAIN_EDIT = "complementary_domain"
#: The edits of several protected attributes at once (:func:`multi_protected_edits`), each keeping the target
#: score and the scores of the protected planes it does not flip; it needs the extra protected planes.
MULTI_EDIT = "multi_protected"


def _check_dims(z, planes: Sequence[Hyperplane]) -> np.ndarray:
    dims = {p.dim for p in planes}
    if len(dims) != 1:
        raise FairlatentError(f"hyperplanes have different dimensions: { {p.label: p.dim for p in planes} }")
    return _as_latents(z, dims.pop(), "latents")


def _angle(h_t: Hyperplane, h_g: Hyperplane, min_sin: float) -> tuple[float, float]:
    """``(cos θ, sin θ)`` between the planes' normals; refuses nearly parallel planes."""
    cos = float(np.clip(h_g.w @ h_t.w, -1.0, 1.0))
    sin = float(np.sqrt(max(0.0, 1.0 - cos * cos)))
    if sin < min_sin:
        raise FairlatentError(
            f"target {h_t.label} and protected {h_g.label} are not separable in this latent space: "
            f"their hyperplanes are nearly parallel, cos θ = w_g·w_t = {cos:.6f} (sin θ = {sin:.4g} < "
            f"min_sin = {min_sin}); flipping one while keeping the other would move latents "
            f"{1 / max(sin, 1e-300):.3g}× the distance to the plane"
        )
    return cos, sin


def complementary_latents(z, h_t: Hyperplane, h_g: Hyperplane, *, min_sin: float = 0.1,
                          editable=None) -> np.ndarray:
    """The paper's complementary latents: same target score, negated protected score.

    ``z' = z − 2 (w_g·z + b_g) / (1 − (w_g·w_t)²) · (w_g − (w_g·w_t) w_t)``.

    Invariants: ``w_t·z' = w_t·z`` and ``w_g·z' + b_g = −(w_g·z + b_g)``; it is the minimum-norm edit
    with those properties (see :func:`minimum_norm_edit`).

    Parameters
    ----------
    z : array-like, shape (n, D) or (D,)
    h_t, h_g : Hyperplane
        Target and protected planes (unit normals).
    min_sin : float
        Refuse when ``sin θ < min_sin`` (the attributes are not separable in this latent space).
    editable : array-like of bool, shape (D,), optional
        Move only these entries (see the module docstring); None moves all of them, as the paper.

    Returns
    -------
    ndarray, float64, shape (n, D)
    """
    return edit_latents(z, h_t, h_g, kind="complementary", min_sin=min_sin, editable=editable)


def edit_latents(z, h_t: Hyperplane, h_g: Hyperplane, kind: str = "complementary", *, min_sin: float = 0.1,
                 editable=None) -> np.ndarray:
    """The paper's edit or one of the reference code's ablations, with ``d = w_g·z + b_g``.

    ============== ====================================== ===============================================
    kind           z'                                     invariant
    ============== ====================================== ===============================================
    complementary  ``z − (2d / sin θ) ĝ⊥``                ``w_t·z' = w_t·z``, ``w_g·z' + b_g = −d``
    onto_plane     ``z − (d / sin θ) ĝ⊥``                 ``w_t·z' = w_t·z``, ``w_g·z' + b_g = 0``
    reflect        ``z − 2d w_g``                         ``w_g·z' + b_g = −d`` (target score drifts)
    project        ``z − d w_g``                          ``w_g·z' + b_g = 0`` (target score drifts)
    ============== ====================================== ===============================================

    ``(d / sin θ) ĝ⊥ = d (w_g − cos θ w_t) / (1 − cos²θ)``: along it ``w_t·z`` does not change (the
    vector is orthogonal to ``w_t``) and ``w_g·z`` changes by exactly ``d``. ``reflect``/``project``
    ignore the target plane (no angle guard), which is the point of those ablations.

    With ``editable`` (a boolean mask over the D entries) the same invariants hold on the whole planes, but
    only the editable entries move, by the minimum-norm step within them (module docstring). Refused
    (:class:`FairlatentError`) when the planes' editable parts are too close to move one score without the
    other (for ``complementary`` / ``onto_plane``: ``h_g``'s editable part lies within ``min_sin`` of the
    span of ``h_t``'s, both measured as unit-normal score changes per unit step), or when ``h_g`` has less
    than ``min_sin`` of its norm there (for ``reflect`` / ``project``).
    """
    if kind not in EDIT_KINDS:
        raise FairlatentError(f"unknown latent edit kind {kind!r}; choose from {list(EDIT_KINDS)}")
    z = _check_dims(z, [h_t, h_g])
    if editable is not None:
        return _edit_within(z, h_t, h_g, kind, min_sin, _editable_mask(editable, z.shape[1]))
    d = z @ h_g.w + h_g.b  # (n,)
    if kind in ("reflect", "project"):
        step = 2.0 if kind == "reflect" else 1.0
        return z - step * d[:, None] * h_g.w[None, :]
    cos, sin = _angle(h_t, h_g, min_sin)
    direction = (h_g.w - cos * h_t.w) / (sin * sin)  # = ĝ⊥ / sin θ
    step = 2.0 if kind == "complementary" else 1.0
    return z - step * d[:, None] * direction[None, :]


def _editable_mask(editable, dim: int) -> np.ndarray:
    """``editable`` as a boolean vector of the latents' length, refused unless it is one with an editable entry."""
    m = np.asarray(editable)
    if m.dtype != bool or m.shape != (dim,):
        raise FairlatentError(f"editable must be a boolean mask of the latents' {dim} entries, got "
                              f"{m.dtype} of shape {m.shape}")
    if not m.any():
        raise FairlatentError("editable holds every latent entry fixed: nothing is left to edit")
    return m


def _edit_within(z: np.ndarray, h_t: Hyperplane, h_g: Hyperplane, kind: str, min_sin: float,
                 editable: np.ndarray) -> np.ndarray:
    """:func:`edit_latents` moving only the ``editable`` entries: :func:`affine_minimum_norm_edit` with the
    normals' editable parts as rows (``u·Δ = w·Δ`` for Δ there), after the guards of :func:`edit_latents`."""
    u_t, u_g = np.where(editable, h_t.w, 0.0), np.where(editable, h_g.w, 0.0)
    d = z @ h_g.w + h_g.b
    step = 2.0 if kind in ("complementary", "reflect") else 1.0
    held = f"{int((~editable).sum())} of {len(editable)} latent entries held fixed"
    rows, change = u_g[None, :], -step * d[:, None]  # the protected score's constraint; h_t's is added below
    if kind in ("reflect", "project"):
        norm = float(np.linalg.norm(u_g))
        if norm < min_sin:
            raise FairlatentError(
                f"the protected plane {h_g.label} has {norm:.4g} of its unit normal in the editable entries "
                f"(< min_sin = {min_sin}; {held}): moving its score would take an edit "
                f"{1 / max(norm, 1e-300):.3g}× its distance to the plane")
    else:
        tt, tg, gg = float(u_t @ u_t), float(u_t @ u_g), float(u_g @ u_g)
        # distance of u_g from the span of u_t (the protected score's change per unit step that keeps the target's)
        sin = float(np.sqrt(max(tt * gg - tg * tg, 0.0) / tt)) if tt > 0 else float(np.sqrt(gg))
        if sin < min_sin:
            raise FairlatentError(
                f"target {h_t.label} and protected {h_g.label} are not separable in the editable latent entries "
                f"({held}): the protected normal's part there, outside the target's, has norm {sin:.4g} < "
                f"min_sin = {min_sin}; flipping one while keeping the other would move latents "
                f"{1 / max(sin, 1e-300):.3g}× the distance to the plane")
        if tt > 0:  # h_t's score is held too (with no weight in the editable entries it cannot change anyway)
            rows, change = np.stack([u_t, u_g]), np.stack([np.zeros(len(z)), -step * d], axis=1)
    return affine_minimum_norm_edit(z, rows, z @ rows.T + change)


def _plane_matrix(planes: Sequence[Hyperplane], min_sin: float) -> np.ndarray:
    """Stack the unit normals as rows of ``A`` after checking that no normal is (nearly) in the span of the others.

    For each plane, ``sin_i`` is the distance of ``w_i`` from the span of the other normals,
    ``sin_i² = 1 / (G⁻¹)_ii`` with ``G = A Aᵀ``; for two planes it is ``sin θ``. A small ``sin_i`` means
    that plane's score cannot be changed independently of the others without a huge edit.
    """
    A = np.stack([p.w for p in planes])
    if len(planes) == 1:
        return A
    G = A @ A.T
    names = [p.label for p in planes]
    eig_min = float(np.linalg.eigvalsh(G)[0])
    if eig_min > 1e-12:
        sins = 1.0 / np.sqrt(np.diag(np.linalg.inv(G)))
    else:
        sins = np.zeros(len(planes))
    worst = int(np.argmin(sins))
    if sins[worst] < min_sin:
        cosines = {f"{names[i]}·{names[j]}": round(float(G[i, j]), 6) for i in range(len(planes)) for j in range(i + 1, len(planes))}
        raise FairlatentError(
            f"hyperplane {names[worst]} is nearly in the span of the other constrained planes "
            f"(sin = {float(sins[worst]):.4g} < min_sin = {min_sin}): these attributes are not separable "
            f"in this latent space; pairwise cos θ = {cosines}"
        )
    return A


def affine_minimum_norm_edit(z, A, c) -> np.ndarray:
    """Closest point to each row of ``z`` satisfying ``A z' = c``: ``z' = z + Aᵀ (A Aᵀ)⁻¹ (c − A z)``.

    Minimal because the correction lies in the row space of ``A`` and any other solution differs from
    ``z'`` by a null-space vector orthogonal to it (Pythagoras). ``A`` is k×D with independent rows,
    ``c`` is (n, k) or (k,). No conditioning check here: callers guard (see :func:`minimum_norm_edit`).
    """
    z = np.asarray(z, dtype=np.float64)
    A = np.atleast_2d(np.asarray(A, dtype=np.float64))
    c = np.broadcast_to(np.asarray(c, dtype=np.float64), (len(z), len(A)))
    residual = c - z @ A.T  # (n, k)
    coeffs = np.linalg.solve(A @ A.T, residual.T).T  # (n, k)
    return z + coeffs @ A


def minimum_norm_edit(
    z,
    fixed: Sequence[Hyperplane],
    flipped: Sequence[Hyperplane],
    *,
    min_sin: float = 0.1,
) -> np.ndarray:
    """Smallest edit keeping the scores of ``fixed`` planes and negating those of ``flipped`` planes.

    Constraints per row: ``w·z' + b = w·z + b`` for each fixed plane and ``w·z' + b = −(w·z + b)``
    for each flipped plane, i.e. ``A z' = c`` with ``c = A z`` on fixed rows and ``c = −A z − 2b`` on
    flipped rows; solved by :func:`affine_minimum_norm_edit`. With ``fixed=[h_t]``, ``flipped=[h_g]``
    this is exactly :func:`complementary_latents`.

    Refuses (:class:`FairlatentError`) when a plane's normal is within ``sin < min_sin`` of the span of
    the others (``A Aᵀ`` ill-conditioned): the edit would be huge and the attributes are not separable.
    """
    fixed, flipped = list(fixed), list(flipped)
    if not flipped:
        raise FairlatentError("minimum_norm_edit needs at least one hyperplane to flip")
    planes = fixed + flipped
    z = _check_dims(z, planes)
    A = _plane_matrix(planes, min_sin)
    b = np.array([p.b for p in planes])
    scores = z @ A.T  # w·z without b, (n, k)
    sign = np.array([1.0] * len(fixed) + [-1.0] * len(flipped))
    shift = np.array([0.0] * len(fixed) + [-2.0] * len(flipped)) * b
    return affine_minimum_norm_edit(z, A, scores * sign + shift)


def multi_protected_edits(
    z,
    h_t: Hyperplane,
    h_gs: Mapping[str, Hyperplane],
    mode: str | Sequence[str] = "each",
    *,
    min_sin: float = 0.1,
) -> dict[str, np.ndarray]:
    """Edits for several protected attributes, keeping the target score fixed.

    The reference's two-protected-attribute experiment (``linear_multi_sgd.py``) writes "flip g1",
    "flip g2" and "flip both", each keeping the target score and the non-flipped protected scores.

    Parameters
    ----------
    h_gs : mapping name → Hyperplane
        The protected planes.
    mode : ``"each"``, ``"all"``, a name, or a sequence of names
        ``"each"``: one edit per protected attribute, flipping it and keeping the others;
        ``"all"``: one edit flipping every protected attribute; a name: flip that one only; a sequence of
        names: flip those jointly and keep the rest.

    Returns
    -------
    dict
        ``{name: z'}`` for ``"each"`` and a single name, ``{"all": z'}`` for ``"all"``,
        ``{"+".join(names): z'}`` for a sequence.
    """
    names = list(h_gs)
    if not names:
        raise FairlatentError("multi_protected_edits needs at least one protected hyperplane")
    jobs = multi_protected_jobs(names, mode)
    out = {}
    for key, flip in jobs.items():
        keep = [h_gs[n] for n in names if n not in flip]
        out[key] = minimum_norm_edit(z, [h_t, *keep], [h_gs[n] for n in flip], min_sin=min_sin)
    return out


def multi_protected_jobs(names: Sequence[str], mode: str | Sequence[str] = "each") -> dict[str, list[str]]:
    """The edits of :func:`multi_protected_edits` for protected attributes ``names``: ``{key: [flipped names]}``
    (every other name is kept). Apart so a caller can label each edit's images without recomputing it."""
    names = list(names)
    if mode == "each":
        jobs = {n: [n] for n in names}
    elif mode == "all":
        jobs = {"all": names}
    elif isinstance(mode, str):
        jobs = {mode: [mode]}
    else:
        jobs = {"+".join(mode): list(mode)}
    for flip in jobs.values():
        unknown = [n for n in flip if n not in names]
        if unknown:
            raise FairlatentError(f"unknown protected attribute(s) {unknown} in mode {mode!r}; have {names}")
    return jobs


def complementary_latents_domain(
    z,
    g,
    h_t_by_group: Mapping,
    h_g: Hyperplane,
    *,
    min_sin: float = 0.1,
) -> np.ndarray:
    """Complementary latents with domain-dependent target planes (reference ``linear_dom_dep.py``).

    A latent ``z`` of protected group ``a`` (its protected label, e.g. ``h_g.predict(z)`` or the
    classifier's label) is scored for the target with its own group's plane ``h_t^{(a)}``. Its
    complement belongs to the other group ``a'``, so the rule of the reference code is: the complement's
    target score **on the other group's plane** equals the original's score on its own group's plane,
    and the protected score is negated:

        ``w_t^{(a')}·z' + b_t^{(a')} = w_t^{(a)}·z + b_t^{(a)}``,  ``w_g·z' + b_g = −(w_g·z + b_g)``,

    with the minimum-norm ``z'`` (closed form; the reference iterated a projection in homogeneous
    coordinates to approximate it).

    Parameters
    ----------
    z : array-like, shape (n, D)
    g : array-like, shape (n,)
        Protected group of each latent; values must be the two keys of ``h_t_by_group``.
    h_t_by_group : mapping group → Hyperplane
        Exactly two target planes, e.g. from :func:`fairlatent.latent.hyperplane.fit_domain_hyperplanes`.
    h_g : Hyperplane
        The protected plane.
    """
    keys = list(h_t_by_group)
    if len(keys) != 2:
        raise FairlatentError(f"domain-dependent edits need target planes for exactly 2 groups, got {keys}")
    z = _check_dims(z, [h_g, *h_t_by_group.values()])
    g = np.asarray(g).reshape(-1)
    if len(g) != len(z):
        raise FairlatentError(f"{len(g)} protected labels for {len(z)} latents")
    out = np.empty_like(z)
    seen = np.zeros(len(z), dtype=bool)
    for own, other in ((keys[0], keys[1]), (keys[1], keys[0])):
        mask = g == own
        seen |= mask
        if not mask.any():
            continue
        h_own, h_other = h_t_by_group[own], h_t_by_group[other]
        A = _plane_matrix([h_other, h_g], min_sin)
        zm = z[mask]
        target = h_own.decision(zm) - h_other.b
        flipped = -(zm @ h_g.w) - 2.0 * h_g.b
        out[mask] = affine_minimum_norm_edit(zm, A, np.stack([target, flipped], axis=1))
    if not seen.all():
        i = int(np.flatnonzero(~seen)[0])
        raise FairlatentError(f"row {i} has protected group {_py(g[i])!r}, not one of the target planes' groups {keys}")
    return out


def agreement_mask(labels_z, labels_zp) -> np.ndarray:
    """Rows where the edit kept the label: ``labels_z == labels_zp``.

    Used for the reference's data ablation that keeps only pairs (G(z), G(z')) on which the target
    classifier agrees, i.e. the edit did not visibly change the target attribute.
    """
    a = np.asarray(labels_z).reshape(-1)
    b = np.asarray(labels_zp).reshape(-1)
    if a.shape != b.shape:
        raise FairlatentError(f"label arrays differ in length: {len(a)} for z, {len(b)} for z'")
    return a == b


def verified_mask(target_z, target_zp, protected_z, protected_zp) -> np.ndarray:
    """Rows where the edit did on the images what it does in latent space: the target label held
    (``target_z == target_zp``) and the protected label flipped (``protected_z != protected_zp``), both read
    by the labelers f_t and f_g on G(z) and G(z').

    Why: the paper gives G(z') z's target label and the flipped protected label by construction, whatever the
    images show. Where the GAN cannot draw the other group for a z (or the hyperplanes are nearly parallel),
    G(z') looks like G(z) and the pair repeats the training set's correlation instead of breaking it; the
    agreement filter (:func:`agreement_mask`) keeps such pairs, this one drops them, so every kept pair holds
    one image of each protected group with one target label.
    """
    keep = agreement_mask(target_z, target_zp)
    flip = ~agreement_mask(protected_z, protected_zp)
    if keep.shape != flip.shape:
        raise FairlatentError(f"target labels cover {len(keep)} pairs but protected labels {len(flip)}")
    return keep & flip
