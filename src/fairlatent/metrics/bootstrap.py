"""Bootstrap estimates of the fairness metrics, in percent, as reported in Ramaswamy et al. (CVPR 2021).

The paper reports every metric as the **median over 500 bootstrap resamples** of the evaluation split
(and "±" as 2·std). Resampling ``n`` rows with replacement is the same as giving each row an integer
weight (how many times it was drawn), so a block of resamples is a ``(B, n)`` count matrix and every
metric is evaluated for the whole block at once through the weighted cores of
:mod:`fairlatent.metrics.fairness` (confusion tables and KL histograms by one ``bincount`` over
row-offset cell indices, AP by cumulative sums over one global sort). No per-resample Python loop, no
per-resample sort.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from fairlatent.errors import FairlatentError
from fairlatent.metrics import fairness as F
from fairlatent.utils.seed import rng as seeded_rng

__all__ = ["ALL_METRICS", "bootstrap_metrics", "resample_counts", "resample_indices"]

#: Metric names understood by :func:`bootstrap_metrics`.
ALL_METRICS = ("AP", "DEO", "BA", "KL", "DP", "EOpp", "EOdds", "acc", "worst_group_acc")

_FROM_COUNTS = {
    "DEO": F.deo_from_counts,
    "BA": F.bias_amplification_from_counts,
    "DP": F.demographic_parity_from_counts,
    "EOpp": F.deo_from_counts,
    "EOdds": F.equalized_odds_from_counts,
    "acc": F.accuracy_from_counts,
    "worst_group_acc": F.worst_group_accuracy_from_counts,
}

#: Resamples per vectorised block: bounds memory at ~``_BLOCK * n * 8`` bytes per array.
_BLOCK = 50


def resample_indices(generator: np.random.Generator, n_resamples: int, n: int) -> np.ndarray:
    """``(n_resamples, n)`` row indices drawn uniformly with replacement."""
    return generator.integers(0, n, size=(n_resamples, n))


def _per_row_counts(labels: np.ndarray, idx: np.ndarray, n_labels: int) -> np.ndarray:
    """``(B, n_labels)``: how often each label value occurs in each resample (row of ``idx``).

    One ``bincount`` over row-offset labels: O(B·n), no dense one-hot product.
    """
    b = len(idx)
    flat = (labels[idx] + (np.arange(b) * n_labels)[:, None]).ravel()
    return np.bincount(flat, minlength=b * n_labels).reshape(b, n_labels).astype(np.float64)


def resample_counts(generator: np.random.Generator, n_resamples: int, n: int) -> np.ndarray:
    """``(n_resamples, n)`` float matrix: how often each row is drawn in each resample (with replacement)."""
    return _per_row_counts(np.arange(n), resample_indices(generator, n_resamples, n), n)


def bootstrap_metrics(
    y_true,
    y_score,
    *,
    sensitive_features,
    threshold: float,
    n_boot: int = 500,
    ci: float = 0.95,
    seed: int = 0,
    metrics: Sequence[str] = ALL_METRICS,
    kl_bins: int = 50,
    kl_sigma: float = 1.0,
    kl_range: tuple[float, float] = (0.0, 1.0),
    return_samples: bool = False,
):
    """Median and percentile interval of each fairness metric over bootstrap resamples, in **percent**.

    With ``return_samples=True`` returns ``(summary, samples)`` where ``samples[name]`` holds the per-resample
    values (shape ``(n_boot,)``; ``(n_boot, 4)`` for KL). The resamples depend only on ``seed`` and the split
    size, so two models scored on the same split see the *same* resamples: feed both sample sets to
    :func:`paired_difference` to compare them.

    Parameters
    ----------
    y_true : array-like of 0/1, shape (n,)
        Target labels of the evaluation split.
    y_score : array-like of float, shape (n,)
        Sigmoid scores; AP and KL use them, the threshold metrics use ``y_score > threshold``.
    sensitive_features : array-like, shape (n,)
        Protected group of each row (KL needs exactly two groups).
    threshold : float
        Usually :func:`fairlatent.metrics.fairness.calibrated_threshold` of the validation split.
    n_boot : int
        Number of resamples of all ``n`` rows with replacement (paper: 500).
    ci : float
        Central interval mass: ``lo``/``hi`` are the ``(1−ci)/2`` and ``(1+ci)/2`` percentiles.
    seed : int
        Resamples come from ``fairlatent.utils.seed.rng(seed, "bootstrap")``: same seed, same numbers.
    metrics : sequence of str
        Any of ``ALL_METRICS``. DEO and EOpp are the same number (paper's and fairlearn's name).

    Returns
    -------
    dict
        ``{name: {"median", "lo", "hi", "std", "full"}}``, in percent (×100) like the paper, except KL,
        which stays in nats: the reference code (``utils.bootstrap_kl``) and the paper's table report raw KL
        (values around 1), while AP, DEO and BA are ×100. ``full`` is the metric on the whole split. For KL
        each resample gives 4 values (both directions, positives and negatives) and the statistics are over
        all ``4·n_boot`` of them, as in the reference code. Undefined resample values (a group
        absent from a resample) are ignored (nan-aware statistics).
    """
    names = list(metrics)
    unknown = [m for m in names if m not in ALL_METRICS]
    if unknown:
        raise FairlatentError(f"unknown metric(s) {unknown}; choose from {list(ALL_METRICS)}")
    if int(n_boot) < 1:
        raise FairlatentError(f"n_boot must be >= 1, got {n_boot}")
    if not 0.0 < float(ci) < 1.0:
        raise FairlatentError(f"ci must be in (0, 1), got {ci}")

    yt = F._as_binary(y_true, "y_true")
    ys = F._as_scores(y_score, "y_score")
    n = F._same_length(y_true=yt, y_score=ys)
    groups, codes = F._group_codes(sensitive_features, n)
    yp = (ys > float(threshold)).astype(np.int8)
    cells = F._cell_index(yt, yp, codes)

    count_metrics = [m for m in names if m in _FROM_COUNTS]
    if "AP" in names:
        order, y_sorted, ends = F._ap_order(yt, ys)
    if "KL" in names:
        if len(groups) != 2:
            raise FairlatentError(f"KL needs exactly 2 protected groups, got {len(groups)}: {groups.tolist()}")
        kl_cells = F._kl_cells(yt, ys, codes, int(kl_bins), kl_range)

    def evaluate(idx: np.ndarray) -> dict[str, np.ndarray]:
        """All requested metrics for resamples ``idx`` of shape (B, n); values (B,) or (B, 4) for KL."""
        out = {}
        b = len(idx)
        if count_metrics:
            counts = _per_row_counts(cells, idx, 4 * len(groups)).reshape(b, len(groups), 2, 2)
            for m in count_metrics:
                out[m] = _FROM_COUNTS[m](counts)
        if "AP" in names:
            w = _per_row_counts(np.arange(n), idx, n)
            out["AP"] = F._ap_from_weights(y_sorted, ends, w[:, order])
        if "KL" in names:
            hist = _per_row_counts(kl_cells, idx, 4 * int(kl_bins)).reshape(b, 2, 2, int(kl_bins))[:, ::-1]
            out["KL"] = F._kl_from_histograms(hist, kl_sigma, 1e-6).reshape(b, 4)
        return out

    full = evaluate(np.arange(n)[None, :])
    gen = seeded_rng(int(seed), "bootstrap")
    blocks: dict[str, list[np.ndarray]] = {m: [] for m in names}
    for start in range(0, int(n_boot), _BLOCK):
        for m, v in evaluate(resample_indices(gen, min(_BLOCK, int(n_boot) - start), n)).items():
            blocks[m].append(v)

    lo_q, hi_q = 50.0 * (1.0 - ci), 50.0 * (1.0 + ci)
    result: dict[str, dict[str, float]] = {}
    samples: dict[str, np.ndarray] = {}
    for m in names:
        scale = 1.0 if m == "KL" else 100.0  # KL in nats, as the reference reports it
        samples[m] = scale * np.concatenate(blocks[m], axis=0)
        values = samples[m].ravel()
        full_value = scale * full[m].ravel()
        if np.all(np.isnan(values)):
            stats = dict.fromkeys(("median", "lo", "hi", "std"), float("nan"))
        else:
            stats = {
                "median": float(np.nanmedian(values)),
                "lo": float(np.nanpercentile(values, lo_q)),
                "hi": float(np.nanpercentile(values, hi_q)),
                "std": float(np.nanstd(values)),
            }
        stats["full"] = float(np.nanmedian(full_value)) if not np.all(np.isnan(full_value)) else float("nan")
        result[m] = stats
    return (result, samples) if return_samples else result


def paired_difference(samples_a: dict[str, np.ndarray], samples_b: dict[str, np.ndarray], *, ci: float = 0.95,
                      lower_is_better: Sequence[str] = ("DEO", "EOpp", "BA", "KL", "DP", "EOdds"),
                      ) -> dict[str, dict[str, float]]:
    """Paired bootstrap comparison of model A with model B scored on the same resamples.

    For each metric, ``d_i = metric_A(resample i) − metric_B(resample i)``; returns the median of ``d``, its
    ``ci`` percentile interval and ``p_better``, the share of resamples on which A is better than B (lower
    for fairness gaps, higher for AP/accuracy). Because both models see identical resamples, the noise of the
    evaluation split cancels in ``d``: this is the right test of "is A fairer than B on this test set",
    whereas comparing the two marginal intervals for overlap is far more conservative (two intervals can
    overlap while their paired difference excludes 0). KL's four values per resample are reduced to their
    median first.
    """
    lo_q, hi_q = 50.0 * (1.0 - ci), 50.0 * (1.0 + ci)
    out: dict[str, dict[str, float]] = {}
    for m in samples_a.keys() & samples_b.keys():
        a, b = np.asarray(samples_a[m], float), np.asarray(samples_b[m], float)
        if a.shape != b.shape:
            raise FairlatentError(f"paired_difference: {m} has {a.shape} vs {b.shape} resamples; "
                                  "both models must be scored on the same resamples (same seed and split)")
        if a.ndim == 2:
            a, b = np.nanmedian(a, axis=1), np.nanmedian(b, axis=1)
        d = a - b
        ok = ~np.isnan(d)
        if not ok.any():
            out[m] = dict.fromkeys(("median", "lo", "hi", "p_better"), float("nan"))
            continue
        d = d[ok]
        better = d < 0 if m in lower_is_better else d > 0
        out[m] = {"median": float(np.median(d)), "lo": float(np.percentile(d, lo_q)),
                  "hi": float(np.percentile(d, hi_q)), "p_better": float(better.mean())}
    return dict(sorted(out.items()))
