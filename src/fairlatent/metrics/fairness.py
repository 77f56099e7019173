"""Fairness metrics of a binary attribute classifier, as in Ramaswamy et al. (CVPR 2021).

Every function takes fairlearn-style arguments ``f(y_true, y_pred_or_score, *, sensitive_features)``
and returns a **fraction** (AP, accuracy, rates and their differences are in [0, 1]; KL in nats), like
fairlearn and scikit-learn. :func:`fairlatent.metrics.bootstrap.bootstrap_metrics` is the layer that
multiplies by 100 to report percent as the paper does.

Why one shared core: all threshold metrics (DEO, BA, demographic parity, equalized odds, accuracy,
worst-group accuracy) are functions of one table, the confusion matrix of every protected group,
``counts[..., group, true, pred]``. :func:`confusion_by_group` builds it for any sample weights, including
a whole matrix of bootstrap resample counts at once (resampling with replacement is the same as integer
sample weights), so the bootstrap needs no per-resample Python loop. The ``*_from_counts`` functions
compute each metric from that table, vectorised over leading axes; the public functions are thin
wrappers. Average precision and the score-histogram KL share the same weighting trick.

Undefined values (a group with no positives has no TPR; a group absent from a bootstrap resample) give
``nan`` rather than a made-up 0; the bootstrap summarises with nan-aware statistics.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter1d

from fairlatent.errors import FairlatentError

# The calibrated threshold (``score > t`` predicts positive; t = the (P+1)-th largest validation score, ties
# at the boundary predicted negative, not the reference's off-by-one) has one implementation, in the
# classifier's threshold module (fairlatent.models.thresholds, below both training and metrics); it is
# re-exported here so that metrics users find it beside the metrics.
from fairlatent.models.thresholds import calibrated_threshold

__all__ = [
    "accuracy",
    "average_precision",
    "bias_amplification",
    "calibrated_threshold",
    "confusion_by_group",
    "demographic_parity_difference",
    "deo",
    "equal_opportunity_difference",
    "equalized_odds_difference",
    "kl_divergence_scores",
    "rates_by_group",
    "worst_group_accuracy",
]


# --------------------------------------------------------------------------------------------------
# Input checking
# --------------------------------------------------------------------------------------------------



def _py(value):
    """A numpy scalar as the plain Python value, so messages read ``2`` rather than ``np.int64(2)``."""
    return value.item() if isinstance(value, np.generic) else value


def _as_1d(values, name: str) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim == 2 and 1 in arr.shape:
        arr = arr.reshape(-1)
    if arr.ndim != 1:
        raise FairlatentError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if arr.size == 0:
        raise FairlatentError(f"{name} is empty")
    return arr


def _as_binary(values, name: str) -> np.ndarray:
    """0/1 (or boolean) labels as int8; names the first row holding anything else."""
    arr = _as_1d(values, name)
    if arr.dtype == bool:
        return arr.astype(np.int8)
    if not np.issubdtype(arr.dtype, np.number):
        raise FairlatentError(f"{name} must hold 0/1 labels, got dtype {arr.dtype} (row 0: {_py(arr[0])!r})")
    bad = np.flatnonzero((arr != 0) & (arr != 1))
    if bad.size:
        i = int(bad[0])
        raise FairlatentError(f"{name} must hold 0/1 labels; row {i} has value {_py(arr[i])!r}")
    return arr.astype(np.int8)


def _as_scores(values, name: str) -> np.ndarray:
    arr = _as_1d(values, name).astype(np.float64)
    bad = np.flatnonzero(~np.isfinite(arr))
    if bad.size:
        i = int(bad[0])
        raise FairlatentError(f"{name} must be finite; row {i} has value {_py(arr[i])!r}")
    return arr


def _same_length(**arrays: np.ndarray) -> int:
    lengths = {name: len(a) for name, a in arrays.items()}
    if len(set(lengths.values())) != 1:
        raise FairlatentError(f"inputs differ in length: {lengths}")
    return next(iter(lengths.values()))


def _group_codes(sensitive_features, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Distinct group values (sorted) and each row's index into them."""
    sf = _as_1d(sensitive_features, "sensitive_features")
    if len(sf) != n:
        raise FairlatentError(f"sensitive_features has {len(sf)} rows, the labels have {n}")
    groups, codes = np.unique(sf, return_inverse=True)
    return groups, codes.reshape(-1)


# --------------------------------------------------------------------------------------------------
# Shared core: confusion matrix per group
# --------------------------------------------------------------------------------------------------


def _cell_index(y_true: np.ndarray, y_pred: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Flat index ``group*4 + true*2 + pred`` of each row's confusion cell."""
    return codes.astype(np.int64) * 4 + y_true.astype(np.int64) * 2 + y_pred.astype(np.int64)


def _counts_from_cells(cells: np.ndarray, n_groups: int, weights: np.ndarray | None) -> np.ndarray:
    """Weighted cell counts, shape ``(..., G, 2, 2)``; ``weights`` may be ``(n,)`` or ``(B, n)``."""
    k = 4 * n_groups
    if weights is None or np.ndim(weights) == 1:
        counts = np.bincount(cells, weights=weights, minlength=k).astype(np.float64)
    else:
        onehot = np.zeros((len(cells), k))
        onehot[np.arange(len(cells)), cells] = 1.0
        counts = np.asarray(weights, dtype=np.float64) @ onehot
    return counts.reshape(counts.shape[:-1] + (n_groups, 2, 2))


def confusion_by_group(y_true, y_pred, *, sensitive_features, sample_weight=None):
    """Confusion matrix of every protected group.

    Parameters
    ----------
    y_true, y_pred : array-like of 0/1, shape (n,)
    sensitive_features : array-like, shape (n,)
        Any hashable group labels; groups are sorted (``np.unique`` order).
    sample_weight : array-like, shape (n,) or (B, n), optional
        A 2-D weight matrix gives one table per row (used for bootstrap resample counts).

    Returns
    -------
    groups : ndarray, shape (G,)
    counts : ndarray, shape (G, 2, 2) or (B, G, 2, 2)
        ``counts[..., g, t, p]`` = (weighted) number of rows of group ``g`` with true label ``t`` and
        prediction ``p``.
    """
    yt = _as_binary(y_true, "y_true")
    yp = _as_binary(y_pred, "y_pred")
    n = _same_length(y_true=yt, y_pred=yp)
    groups, codes = _group_codes(sensitive_features, n)
    w = None
    if sample_weight is not None:
        w = np.asarray(sample_weight, dtype=np.float64)
        if w.shape[-1] != n or w.ndim > 2:
            raise FairlatentError(f"sample_weight has shape {w.shape}; expected ({n},) or (B, {n})")
    return groups, _counts_from_cells(_cell_index(yt, yp, codes), len(groups), w)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den with nan where den == 0 (an undefined rate, not a zero one)."""
    num, den = np.broadcast_arrays(np.asarray(num, float), np.asarray(den, float))
    out = np.full(num.shape, np.nan)
    np.divide(num, den, out=out, where=den > 0)
    return out


def _spread(x: np.ndarray) -> np.ndarray:
    """max − min over the last axis (groups); nan when any group's value is undefined."""
    return np.max(x, axis=-1) - np.min(x, axis=-1)


def true_positive_rates(counts: np.ndarray) -> np.ndarray:
    """TPR per group, ``TP / (TP + FN)``, shape ``(..., G)``."""
    return _ratio(counts[..., 1, 1], counts[..., 1, :].sum(-1))


def false_positive_rates(counts: np.ndarray) -> np.ndarray:
    """FPR per group, ``FP / (FP + TN)``, shape ``(..., G)``."""
    return _ratio(counts[..., 0, 1], counts[..., 0, :].sum(-1))


def selection_rates(counts: np.ndarray) -> np.ndarray:
    """P(Ŷ=1 | A=a) per group, shape ``(..., G)``."""
    return _ratio(counts[..., :, 1].sum(-1), counts.sum((-1, -2)))


def rates_by_group(y_true, y_pred, *, sensitive_features) -> dict:
    """The per-group rates that DEO, equalized odds and demographic parity are spreads of: for each group
    (``np.unique`` order) ``{"n", "positives", "TPR", "FPR", "selection_rate"}`` (fractions; nan where the
    group has no positives or no negatives). fairlearn's ``MetricFrame(metrics={"TPR":
    true_positive_rate, ...}).by_group``, from the shared confusion table.

    Why it is worth showing beside the gaps: a gap closes by raising the lower group's rate or by lowering
    the higher group's ("levelling down"); only the rates say which a method did."""
    groups, counts = confusion_by_group(y_true, y_pred, sensitive_features=sensitive_features)
    tpr, fpr, sel = true_positive_rates(counts), false_positive_rates(counts), selection_rates(counts)
    return {_py(a): {"n": int(counts[i].sum()), "positives": int(counts[i, 1].sum()), "TPR": float(tpr[i]),
                     "FPR": float(fpr[i]), "selection_rate": float(sel[i])} for i, a in enumerate(groups)}


def deo_from_counts(counts: np.ndarray) -> np.ndarray:
    """Difference in equality of opportunity from a ``(..., G, 2, 2)`` table (see :func:`deo`)."""
    return _spread(true_positive_rates(counts))


def demographic_parity_from_counts(counts: np.ndarray) -> np.ndarray:
    """max − min over groups of the selection rate."""
    return _spread(selection_rates(counts))


def equalized_odds_from_counts(counts: np.ndarray) -> np.ndarray:
    """Worst of the TPR gap and the FPR gap (fairlearn ``agg="worst_case"``)."""
    return np.maximum(_spread(true_positive_rates(counts)), _spread(false_positive_rates(counts)))


def accuracy_from_counts(counts: np.ndarray) -> np.ndarray:
    """Share of rows with prediction equal to the label, over all groups."""
    correct = counts[..., 0, 0].sum(-1) + counts[..., 1, 1].sum(-1)
    return _ratio(correct, counts.sum((-1, -2, -3)))


def worst_group_accuracy_from_counts(counts: np.ndarray) -> np.ndarray:
    """Minimum accuracy over the non-empty (target, group) cells."""
    within = _ratio(np.diagonal(counts, axis1=-2, axis2=-1), counts.sum(-1))  # (..., G, t)
    flat = within.reshape(within.shape[:-2] + (-1,))
    with np.errstate(all="ignore"):
        out = np.nanmin(np.where(np.isnan(flat), np.inf, flat), axis=-1)
    return np.where(np.isinf(out), np.nan, out)


def bias_amplification_from_counts(counts: np.ndarray) -> np.ndarray:
    """Directional bias amplification attribute → task from a ``(..., G, 2, 2)`` table.

    ``BA = mean over cells (t, a) of y_ta · (P(T̂=t | A=a) − P(T=t | A=a))`` with
    ``y_ta = sign(P(T=t, A=a) − P(T=t) P(A=a))``, computed exactly on counts as
    ``sign(n_ta · N − n_t · n_a)`` so that independence gives y = 0 without rounding noise. Cells of an
    empty group are undefined and left out of the mean (the reference code's ``np.nanmean``); cells
    with y = 0 stay in the mean and contribute 0.
    """
    n_ta = counts.sum(-1)  # (..., G, t): true target per group
    n_pa = counts.sum(-2)  # (..., G, p): predicted target per group
    n_a = n_ta.sum(-1)  # (..., G)
    n_t = n_ta.sum(-2)  # (..., t)
    n = n_a.sum(-1)  # (...)
    y = np.sign(n_ta * n[..., None, None] - n_t[..., None, :] * n_a[..., :, None])
    diff = _ratio(n_pa, n_a[..., None]) - _ratio(n_ta, n_a[..., None])
    cells = (y * diff).reshape(diff.shape[:-2] + (-1,))
    valid = ~np.isnan(cells)
    total = np.where(valid, cells, 0.0).sum(-1)
    return _ratio(total, valid.sum(-1))


# --------------------------------------------------------------------------------------------------
# Public threshold metrics
# --------------------------------------------------------------------------------------------------


def _counts(y_true, y_pred, sensitive_features) -> np.ndarray:
    return confusion_by_group(y_true, y_pred, sensitive_features=sensitive_features)[1]


def deo(y_true, y_pred, *, sensitive_features) -> float:
    """Difference in equality of opportunity (DEO) of Ramaswamy et al.

    ``DEO = |FNR_{g=0} − FNR_{g=1}| = |TPR_{g=0} − TPR_{g=1}|``; with more than two groups,
    ``max_g TPR_g − min_g TPR_g``. Equals ``abs(fairlearn.metrics.equal_opportunity_difference)``.
    Returns a fraction (×100 for the paper's percent); nan if a group has no positives.
    """
    return float(deo_from_counts(_counts(y_true, y_pred, sensitive_features)))


def equal_opportunity_difference(y_true, y_pred, *, sensitive_features) -> float:
    """fairlearn's equal-opportunity difference: ``max_g TPR_g − min_g TPR_g`` (unsigned).

    Identical to :func:`deo`; both names exist because the paper and fairlearn use different ones.
    """
    return deo(y_true, y_pred, sensitive_features=sensitive_features)


def demographic_parity_difference(y_true, y_pred, *, sensitive_features) -> float:
    """``max_g P(Ŷ=1 | A=g) − min_g P(Ŷ=1 | A=g)`` (fairlearn convention; ``y_true`` only checked)."""
    return float(demographic_parity_from_counts(_counts(y_true, y_pred, sensitive_features)))


def equalized_odds_difference(y_true, y_pred, *, sensitive_features) -> float:
    """``max(TPR gap, FPR gap)``, each gap being max − min over groups (fairlearn ``worst_case``)."""
    return float(equalized_odds_from_counts(_counts(y_true, y_pred, sensitive_features)))


def accuracy(y_true, y_pred, *, sensitive_features=None) -> float:
    """Share of correct predictions, ``(TP + TN) / n``. ``sensitive_features`` is accepted and ignored."""
    yt = _as_binary(y_true, "y_true")
    yp = _as_binary(y_pred, "y_pred")
    _same_length(y_true=yt, y_pred=yp)
    return float(np.mean(yt == yp))


def worst_group_accuracy(y_true, y_pred, *, sensitive_features) -> float:
    """Minimum over the (target, protected) cells of the accuracy within the cell.

    With a binary target and two groups these are the 4 cells (t, g); within cell (t, g) accuracy is
    the share of rows predicted ``t``. Empty cells are skipped. Why: a model that ignores a rare cell
    (e.g. blond men) has high average accuracy but a low worst-group accuracy.
    """
    return float(worst_group_accuracy_from_counts(_counts(y_true, y_pred, sensitive_features)))


def bias_amplification(y_true, y_pred, *, sensitive_features) -> float:
    """Directional bias amplification A→T (Wang & Russakovsky, ICML 2021) as the reference code computes it.

    Over the cells ``(t, a)``, ``t ∈ {0, 1}`` and ``a`` each protected group,

    ``BA = mean_{t,a} y_ta · (P(T̂=t | A=a) − P(T=t | A=a))``,
    ``y_ta = sign(P(T=t, A=a) − P(T=t) P(A=a))``.

    Positive means the classifier predicts the target even more along the data's correlation with the
    protected attribute than the labels do. The CVPR paper prints this formula with the sign reversed;
    the code (``bias_amp.py``, ``bog_attribute_to_task``) is as above and is what is implemented. As
    there, the mean runs over all 4 cells (a cell with ``y_ta = 0`` counts as 0 in the mean) and skips
    undefined cells of an empty group. Returns a fraction.
    """
    return float(bias_amplification_from_counts(_counts(y_true, y_pred, sensitive_features)))


# --------------------------------------------------------------------------------------------------
# Average precision (vectorisable over sample weights)
# --------------------------------------------------------------------------------------------------


def _ap_order(y_true: np.ndarray, y_score: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Descending score order, labels in that order, and the last index of each tie block."""
    order = np.argsort(-y_score, kind="stable")
    s = y_score[order]
    ends = np.append(np.flatnonzero(s[1:] != s[:-1]), len(s) - 1)
    return order, y_true[order].astype(np.float64), ends


def _ap_from_weights(y_sorted: np.ndarray, ends: np.ndarray, w_sorted: np.ndarray) -> np.ndarray:
    """Weighted AP; ``w_sorted`` is ``(n,)`` or ``(B, n)`` in the order of :func:`_ap_order`.

    ``AP = Σ_k (R_k − R_{k−1}) P_k`` over the distinct thresholds (tie blocks), as in scikit-learn.
    A tie block with zero weight changes neither precision nor recall, so it adds 0: integer weights
    therefore give exactly sklearn's AP on the resampled data.
    """
    tp = np.cumsum(w_sorted * y_sorted, axis=-1)[..., ends]
    fp = np.cumsum(w_sorted * (1.0 - y_sorted), axis=-1)[..., ends]
    precision = np.zeros_like(tp)
    np.divide(tp, tp + fp, out=precision, where=(tp + fp) > 0)
    d_tp = np.diff(tp, axis=-1, prepend=0.0)
    return _ratio((d_tp * precision).sum(-1), tp[..., -1])


def average_precision(y_true, y_score, *, sample_weight=None) -> float:
    """Average precision, ``Σ_k (R_k − R_{k−1}) P_k`` over descending distinct score thresholds.

    Equal to ``sklearn.metrics.average_precision_score`` (including ties) but written so that the
    bootstrap can evaluate hundreds of resamples in one vectorised pass. Returns a fraction; nan when
    there is no positive.
    """
    yt = _as_binary(y_true, "y_true")
    ys = _as_scores(y_score, "y_score")
    n = _same_length(y_true=yt, y_score=ys)
    order, y_sorted, ends = _ap_order(yt, ys)
    w = np.ones(n) if sample_weight is None else _as_scores(sample_weight, "sample_weight")
    return float(_ap_from_weights(y_sorted, ends, w[order]))


# --------------------------------------------------------------------------------------------------
# KL divergence between the groups' score distributions
# --------------------------------------------------------------------------------------------------


def _score_bins(y_score: np.ndarray, bins: int, range_: tuple[float, float]) -> np.ndarray:
    lo, hi = map(float, range_)
    if not hi > lo:
        raise FairlatentError(f"KL histogram range must have hi > lo, got {range_}")
    bad = np.flatnonzero((y_score < lo) | (y_score > hi))
    if bad.size:
        i = int(bad[0])
        raise FairlatentError(
            f"y_score row {i} has value {_py(y_score[i])!r} outside the KL histogram range [{lo}, {hi}]; "
            "pass sigmoid probabilities or set range="
        )
    idx = np.floor((y_score - lo) / (hi - lo) * bins).astype(np.int64)
    return np.clip(idx, 0, bins - 1)  # the last bin is closed, as in np.histogram


def _kl_from_histograms(hist: np.ndarray, sigma: float, eps: float) -> np.ndarray:
    """Both-direction KL between the two groups of ``hist[..., group(2), bins]``.

    Returns ``(..., 2)``: ``[KL(g0 ‖ g1), KL(g1 ‖ g0)]``; nan when either histogram is empty.
    """
    smooth = gaussian_filter1d(hist.astype(np.float64), sigma, axis=-1) if sigma > 0 else hist.astype(float)
    p = _ratio(smooth, smooth.sum(-1, keepdims=True)) + eps
    a, b = p[..., 0, :], p[..., 1, :]
    return np.stack([(a * np.log(a / b)).sum(-1), (b * np.log(b / a)).sum(-1)], axis=-1)


def kl_divergence_scores(
    y_true,
    y_score,
    *,
    sensitive_features,
    bins: int = 50,
    sigma: float = 1.0,
    eps: float = 1e-6,
    range: tuple[float, float] = (0.0, 1.0),  # noqa: A002 - numpy's name for the same thing
) -> np.ndarray:
    """KL divergence between the two protected groups' score distributions, per true class.

    For positives and negatives separately: a ``bins``-bin histogram of each group's scores, smoothed
    with a Gaussian of ``sigma`` bins (``scipy.ndimage.gaussian_filter1d``, reflecting borders),
    normalised to sum 1, plus ``eps``; then ``KL(p‖q) = Σ_i p_i log(p_i / q_i)`` in both directions.

    Why per class: a fair scorer gives positives (and negatives) the same score distribution whatever
    the group, which DEO at a single threshold cannot see.

    Both groups use the **same bin edges**, ``bins`` equal bins on ``range`` (default [0, 1], the range
    of sigmoid scores, so edges do not depend on the sample either). The reference code
    (``smoothed_hist_kl_distance``) histogrammed each group on its own min–max range, so bin *i* meant
    different scores for the two groups — a flaw corrected here. It also smoothed the integer histogram
    into an integer array (truncating); here smoothing is in float64.

    Returns
    -------
    ndarray, shape (4,)
        ``[KL(g0‖g1 | y=1), KL(g1‖g0 | y=1), KL(g0‖g1 | y=0), KL(g1‖g0 | y=0)]`` in nats, groups in
        sorted order; nan where a group has no row of that class. The paper reports the median of all
        these values over the bootstrap resamples.
    """
    yt = _as_binary(y_true, "y_true")
    ys = _as_scores(y_score, "y_score")
    n = _same_length(y_true=yt, y_score=ys)
    groups, codes = _group_codes(sensitive_features, n)
    if len(groups) != 2:
        raise FairlatentError(f"KL needs exactly 2 protected groups, got {len(groups)}: {groups.tolist()}")
    if int(bins) < 1:
        raise FairlatentError(f"bins must be >= 1, got {bins}")
    cells = _kl_cells(yt, ys, codes, int(bins), range)
    hist = np.bincount(cells, minlength=4 * int(bins)).reshape(2, 2, int(bins))
    return _kl_from_histograms(hist[::-1], sigma, eps).reshape(4)


def _kl_cells(yt: np.ndarray, ys: np.ndarray, codes: np.ndarray, bins: int, range_) -> np.ndarray:
    """Flat index ``(true*2 + group)*bins + bin`` of each row's histogram cell."""
    return (yt.astype(np.int64) * 2 + codes) * bins + _score_bins(ys, bins, range_)
