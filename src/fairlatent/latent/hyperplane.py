"""Linear attribute hyperplanes in a generator's latent space.

Ramaswamy et al. (CVPR 2021) label sampled latents by running attribute classifiers on the generated
images, then fit one linear SVM per attribute on the latents. The latent edits of
:mod:`fairlatent.latent.edits` need each plane as a **unit** normal ``w`` and offset ``b`` so that
``w·z + b`` is the signed Euclidean distance of ``z`` to the plane; that is the only form stored here.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

from fairlatent.errors import FairlatentError

__all__ = ["Hyperplane", "cell_balanced_weights", "fit_hyperplane", "fit_domain_hyperplanes"]


@dataclass(frozen=True, eq=False)
class Hyperplane:
    """The plane ``{z : w·z + b = 0}`` with ``‖w‖ = 1``; ``w·z + b`` is the signed distance.

    Attributes
    ----------
    w : ndarray, float64, shape (D,)
        Unit normal, pointing towards the positive class.
    b : float
        Offset (the SVM intercept divided by the norm of its coefficients).
    fit_accuracy : float
        Accuracy of ``predict`` on the latents the plane was fitted on.
    heldout_accuracy : float or None
        Accuracy on held-out latents, when given (the paper holds out 5,000).
    method : str
        ``"svm"`` or ``"logistic"``.
    name : str or None
        Attribute name, used in error messages.
    """

    w: np.ndarray
    b: float
    fit_accuracy: float = float("nan")
    heldout_accuracy: float | None = None
    method: str = "svm"
    name: str | None = None
    extra: dict = field(default_factory=dict, compare=False)

    def __post_init__(self):
        w = np.asarray(self.w, dtype=np.float64).reshape(-1)
        norm = float(np.linalg.norm(w))
        if not np.isfinite(norm) or abs(norm - 1.0) > 1e-6:
            raise FairlatentError(f"hyperplane {self.label}: w must have unit norm, got ‖w‖ = {norm}")
        object.__setattr__(self, "w", w)
        object.__setattr__(self, "b", float(self.b))

    @property
    def label(self) -> str:
        return repr(self.name) if self.name else "(unnamed)"

    @property
    def dim(self) -> int:
        return int(self.w.shape[0])

    def decision(self, z) -> np.ndarray:
        """Signed distance ``z·w + b`` of each latent (rows of ``z``) to the plane."""
        z = _as_latents(z, self.dim, f"latents for hyperplane {self.label}")
        return z @ self.w + self.b

    def predict(self, z) -> np.ndarray:
        """0/1 label: 1 on the side ``w`` points to (``w·z + b > 0``)."""
        return (self.decision(z) > 0).astype(np.int64)

    def to_dict(self) -> dict:
        """JSON-serialisable form (``w`` as a list of floats, lossless via ``repr``)."""
        return {
            "w": self.w.tolist(),
            "b": self.b,
            "fit_accuracy": self.fit_accuracy,
            "heldout_accuracy": self.heldout_accuracy,
            "method": self.method,
            "name": self.name,
            "extra": dict(self.extra),
        }

    @classmethod
    def from_dict(cls, d: dict) -> Hyperplane:
        try:
            return cls(
                w=np.asarray(d["w"], dtype=np.float64),
                b=float(d["b"]),
                fit_accuracy=float(d.get("fit_accuracy", float("nan"))),
                heldout_accuracy=None if d.get("heldout_accuracy") is None else float(d["heldout_accuracy"]),
                method=str(d.get("method", "svm")),
                name=d.get("name"),
                extra=dict(d.get("extra") or {}),
            )
        except KeyError as e:
            raise FairlatentError(f"hyperplane record is missing key {e.args[0]!r}") from None



def _py(value):
    """A numpy scalar as the plain Python value, so messages read ``2`` rather than ``np.int64(2)``."""
    return value.item() if isinstance(value, np.generic) else value


def _as_latents(z, dim: int | None, what: str) -> np.ndarray:
    z = np.asarray(z, dtype=np.float64)
    if z.ndim == 1:
        z = z[None, :]
    if z.ndim != 2:
        raise FairlatentError(f"{what} must be an n×D array, got shape {z.shape}")
    if dim is not None and z.shape[1] != dim:
        raise FairlatentError(f"{what} have dimension {z.shape[1]}, the hyperplane has {dim}")
    bad = np.argwhere(~np.isfinite(z))
    if bad.size:
        i, j = map(int, bad[0])
        raise FairlatentError(f"{what}: row {i}, column {j} is not finite ({_py(z[i, j])!r})")
    return z


def _as_labels(y, n: int, what: str) -> np.ndarray:
    y = np.asarray(y).reshape(-1)
    if len(y) != n:
        raise FairlatentError(f"{what}: {len(y)} labels for {n} latents")
    bad = np.flatnonzero((y != 0) & (y != 1))
    if bad.size:
        i = int(bad[0])
        raise FairlatentError(f"{what}: row {i} has label {_py(y[i])!r}, expected 0 or 1")
    return y.astype(np.int64)


def fit_hyperplane(
    z,
    y,
    *,
    method: str = "svm",
    C: float = 1.0,
    max_iter: int = 500_000,
    holdout: tuple | None = None,
    seed: int = 0,
    name: str | None = None,
    sample_weight=None,
) -> Hyperplane:
    """Fit a linear separator of a binary attribute in latent space, normalised to a unit normal.

    ``method="svm"``: ``LinearSVC(C=C, loss="squared_hinge", penalty="l2", max_iter=max_iter)`` as in the
    reference code (which used C=1, max_iter=500000; 10,000 latents to fit, 5,000 held out).
    ``method="logistic"``: L2 logistic regression with the same ``C`` (lbfgs). Either way the
    coefficients ``a, c`` are rescaled to ``w = a/‖a‖, b = c/‖a‖`` so the decision value is a signed
    distance, which the complementary-latent formula assumes.

    LinearSVC's ``dual="auto"`` picks the primal solver when latents outnumber dimensions; the problem is
    strictly convex, so this is the same optimum the reference's dual solver reaches, only faster.

    Parameters
    ----------
    z : array-like, shape (n, D)
    y : array-like of 0/1, shape (n,)
    holdout : (z_ho, y_ho), optional
        Held-out latents and labels; their accuracy is stored in ``heldout_accuracy``.
    seed : int
        ``random_state`` of the solver (coordinate-descent order): same seed, same plane.
    name : str, optional
        Attribute name for messages and for the stored plane.
    sample_weight : array-like of float ≥ 0, shape (n,), optional
        Per-latent weights of the fit (scikit-learn's ``sample_weight``; the reference fits unweighted), e.g.
        :func:`cell_balanced_weights`.
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.svm import LinearSVC

    what = f"hyperplane for attribute {name!r}" if name else "hyperplane"
    z = _as_latents(z, None, f"{what}: latents")
    y = _as_labels(y, len(z), what)
    present = np.unique(y)
    if len(present) < 2:
        raise FairlatentError(
            f"cannot fit a {what}: all {len(y)} latents have label {int(present[0])} "
            "(the attribute classifier never predicts the other class on these samples)"
        )
    if method == "svm":
        model = LinearSVC(C=C, loss="squared_hinge", penalty="l2", max_iter=int(max_iter), random_state=seed, dual="auto")
    elif method == "logistic":
        model = LogisticRegression(C=C, max_iter=int(min(max_iter, 100_000)), random_state=seed)
    else:
        raise FairlatentError(f"unknown hyperplane method {method!r}; choose 'svm' or 'logistic'")
    if sample_weight is not None:
        sample_weight = np.asarray(sample_weight, dtype=np.float64)
        if sample_weight.shape != (len(y),) or not (np.isfinite(sample_weight) & (sample_weight >= 0)).all():
            raise FairlatentError(f"{what}: sample_weight must be {len(y)} finite weights ≥ 0, got shape "
                                  f"{sample_weight.shape}")
    converged = True
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        model.fit(z, y, sample_weight=sample_weight)
    for wrn in caught:
        if issubclass(wrn.category, ConvergenceWarning):
            converged = False
        else:
            warnings.warn_explicit(wrn.message, wrn.category, wrn.filename, wrn.lineno)
    if not converged:
        warnings.warn(f"{what}: solver did not converge in max_iter={max_iter} iterations", stacklevel=2)
    coef = np.asarray(model.coef_, dtype=np.float64).reshape(-1)
    norm = float(np.linalg.norm(coef))
    if not norm > 0:
        raise FairlatentError(f"{what}: the fitted normal is zero (labels carry no linear signal)")
    plane = Hyperplane(w=coef / norm, b=float(np.asarray(model.intercept_).reshape(-1)[0]) / norm, method=method, name=name)
    fit_acc = float(np.mean(plane.predict(z) == y))
    ho_acc = None
    if holdout is not None:
        z_ho = _as_latents(holdout[0], z.shape[1], f"{what}: held-out latents")
        y_ho = _as_labels(holdout[1], len(z_ho), f"{what} (held-out)")
        ho_acc = float(np.mean(plane.predict(z_ho) == y_ho))
    return Hyperplane(
        w=plane.w,
        b=plane.b,
        fit_accuracy=fit_acc,
        heldout_accuracy=ho_acc,
        method=method,
        name=name,
        extra={"converged": converged, "n_fit": int(len(y)), "C": float(C)},
    )


def cell_balanced_weights(t, g) -> np.ndarray:
    """Weights over latents that make their target and protected labels independent, mean 1:
    ``w(t, g) = N_t / (2·N_{t,g})`` (the reweighting baseline's weights, here over the labels of G(z)).

    Why: the GAN reproduces the training set's skew, so among the labelled latents t and g agree on, say,
    90 % of rows. An unweighted plane for t can then reach 90 % accuracy along g's direction alone and leans
    toward it (cos θ near 1; the complementary edit, which must hold t while flipping g, becomes
    ill-conditioned and moves t too). Under these weights each (t, g) cell of a class weighs the same, so g's
    direction no longer predicts t and each plane is fitted to its own attribute. The reference fits
    unweighted (``latent.plane_weights = "none"``).
    """
    from fairlatent.train.classifier import reweighting_weights

    t, g = np.asarray(t).astype(np.int64), np.asarray(g).astype(np.int64)
    for a in (0, 1):
        for b in (0, 1):
            if (t == a).any() and not ((t == a) & (g == b)).any():
                raise FairlatentError(
                    f"cell-balanced plane weights: no latent is labelled target={a}, protected={b} among {len(t)} "
                    "(the generator does not draw this cell, or the labeler never calls it); balance needs every "
                    "cell of a present class")
    w = reweighting_weights(t, g)
    return w / w.mean()


def fit_domain_hyperplanes(z, y_t, g, *, name: str | None = None, holdout: tuple | None = None, **fit_kwargs) -> dict:
    """One target hyperplane per protected group (the reference's "domain-dependent" variant).

    Why: if the target attribute looks different in the two groups (e.g. "attractive" for women and
    men), one global target plane mixes the two; separate planes ``h_t^{(g)}`` fitted only on the
    latents labelled group ``g`` capture each group's own direction.

    Parameters
    ----------
    z : array-like, shape (n, D)
    y_t : array-like of 0/1, shape (n,)
        Target labels of the latents.
    g : array-like, shape (n,)
        Protected labels (group values) of the latents.
    holdout : (z_ho, y_t_ho, g_ho), optional
        Held-out latents; each group's plane is scored on that group's held-out rows.
    **fit_kwargs
        Passed to :func:`fit_hyperplane` (``method``, ``C``, ``max_iter``, ``seed``).

    Returns
    -------
    dict
        ``{group value: Hyperplane}`` in sorted group order (plain Python ints for integer groups).
    """
    z = _as_latents(z, None, "latents")
    g = np.asarray(g).reshape(-1)
    if len(g) != len(z):
        raise FairlatentError(f"domain hyperplanes: {len(g)} protected labels for {len(z)} latents")
    y_t = np.asarray(y_t).reshape(-1)
    planes = {}
    for value in np.unique(g):
        key = value.item() if hasattr(value, "item") else value
        mask = g == value
        ho = None
        if holdout is not None:
            z_ho, yt_ho, g_ho = (np.asarray(a) for a in holdout)
            m_ho = g_ho.reshape(-1) == value
            ho = (z_ho[m_ho], yt_ho.reshape(-1)[m_ho]) if m_ho.any() else None
        label = f"{name or 'target'} | group {key}"
        planes[key] = fit_hyperplane(z[mask], y_t[mask], holdout=ho, name=label, **fit_kwargs)
    return planes
