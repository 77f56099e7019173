"""Evaluation of synthetic tables: fidelity, machine-learning efficacy, fairness, privacy.

**Fidelity** (SDMetrics' definitions, each in [0, 1], 1 = identical):

- ``KSComplement`` (continuous column): ``1 − D``, D the two-sample Kolmogorov–Smirnov statistic
  (``sup_x |F_real(x) − F_syn(x)|``);
- ``TVComplement`` (categorical column): ``1 − ½ Σ_c |p_real(c) − p_syn(c)|`` over the union of categories;
- ``CorrelationSimilarity`` (two continuous columns): ``1 − |ρ_real − ρ_syn| / 2``, ρ Pearson's;
- ``ContingencySimilarity`` (any other pair): ``1 − ½ Σ_{a,b} |p_real(a, b) − p_syn(a, b)|``; a continuous
  member of the pair is first cut into 10 bins at ``np.histogram_bin_edges`` of the real values, outer edges
  opened to ±∞, bins closed on the left (``np.digitize``; SDMetrics' ``utils.discretize_column``).

"Column shapes" and "column pair trends" are the means of the two kinds, as in SDMetrics' quality report.

**Machine-learning efficacy**: logistic regression, gradient boosting (scikit-learn's histogram gradient
boosting) and a small MLP (one hidden layer of 64) are trained on a table (real or synthetic) and tested on
the real test split: accuracy, F1 of the positive class and ROC AUC. Features: continuous columns
standardised, categorical one-hot (categories the training table lacks are ignored: all-zero), the protected
attributes included (``drop_protected=True`` leaves them out, as FairGAN's evaluation does); the target
excluded.

**Fairness**: the data's risk difference ``P(y=1 | privileged) − P(y=1 | rest)`` of the real training table
and of the synthetic one, and of every classifier on the real test split the demographic parity difference
and the equalized odds difference (fairlearn's definitions: max − min over the two groups of the selection
rate; the larger of the TPR and FPR gaps), computed by fairlearn when it is installed (else the project's
:mod:`fairlatent.metrics.fairness`, which the tests check agree), with percentile bootstrap intervals
(:func:`fairlatent.metrics.bootstrap.bootstrap_metrics`, resamples of the test rows).

**Privacy sanity**: the distance to the closest training record (DCR; Euclidean, in the standardised /
one-hot feature space of all columns) of synthetic rows, beside that of real held-out rows (the test split),
which the model never saw. Synthetic rows much closer to the training rows than held-out rows are (or many
exact copies: DCR 0) suggest memorisation.
"""

from __future__ import annotations

import warnings
from itertools import combinations
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from fairlatent.errors import FairlatentError
from fairlatent.tabular.table import TabularData

__all__ = ["ks_complement", "tv_complement", "correlation_similarity", "contingency_similarity", "discretize",
           "fidelity", "risk_difference", "feature_encoder", "CLASSIFIERS", "fit_classifier", "score_predictions",
           "group_fairness", "ml_efficacy", "distance_to_closest_record", "evaluate_tables"]

CLASSIFIERS = ("logistic_regression", "gradient_boosting", "mlp")


# --- fidelity --------------------------------------------------------------------------------------


def ks_complement(real: Sequence[float], synthetic: Sequence[float]) -> float:
    from scipy.stats import ks_2samp

    r, s = np.asarray(real, float), np.asarray(synthetic, float)
    r, s = r[~np.isnan(r)], s[~np.isnan(s)]
    return float(1.0 - ks_2samp(r, s).statistic)


def tv_complement(real: Sequence[Any], synthetic: Sequence[Any]) -> float:
    pr = pd.Series(real).astype(str).value_counts(normalize=True)
    ps = pd.Series(synthetic).astype(str).value_counts(normalize=True)
    cats = pr.index.union(ps.index)
    return float(1.0 - 0.5 * np.abs(pr.reindex(cats, fill_value=0) - ps.reindex(cats, fill_value=0)).sum())


def correlation_similarity(real_a, real_b, syn_a, syn_b) -> float:
    ra, rb, sa, sb = (np.asarray(v, float) for v in (real_a, real_b, syn_a, syn_b))
    with np.errstate(invalid="ignore", divide="ignore"):
        cr, cs = np.corrcoef(ra, rb)[0, 1], np.corrcoef(sa, sb)[0, 1]
    if np.isnan(cr) or np.isnan(cs):
        return float("nan")
    return float(1.0 - abs(cr - cs) / 2.0)


def discretize(real: Sequence[float], synthetic: Sequence[float], bins: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Bin codes of both columns at the real column's histogram edges, outer edges opened to ±∞, each bin
    closed on the left (a value on an inner edge goes to the upper bin), as SDMetrics' ``discretize_column``."""
    r, s = np.asarray(real, float), np.asarray(synthetic, float)
    edges = np.histogram_bin_edges(r[~np.isnan(r)], bins=bins)
    edges[0], edges[-1] = -np.inf, np.inf
    return np.digitize(r, edges), np.digitize(s, edges)


def _joint(a: np.ndarray, b: np.ndarray, ka: int, kb: int) -> np.ndarray:
    return np.bincount(a * kb + b, minlength=ka * kb) / len(a)


def contingency_similarity(real_a, real_b, syn_a, syn_b) -> float:
    codes = []
    for r, s in ((real_a, syn_a), (real_b, syn_b)):
        both = pd.Series(np.concatenate([np.asarray(r, dtype=object), np.asarray(s, dtype=object)])).astype(str)
        c, uniq = pd.factorize(both)
        codes.append((c[: len(r)], c[len(r):], len(uniq)))
    (ra, sa, ka), (rb, sb, kb) = codes
    return float(1.0 - 0.5 * np.abs(_joint(ra, rb, ka, kb) - _joint(sa, sb, ka, kb)).sum())


def fidelity(data: TabularData, real: pd.DataFrame, synthetic: pd.DataFrame, bins: int = 10) -> dict[str, Any]:
    """Every column's and every pair's score, and their means (see the module docstring)."""
    shapes, pairs = {}, {}
    for c in data.columns:
        if c in data.continuous:
            shapes[c] = {"metric": "KSComplement", "score": ks_complement(real[c], synthetic[c])}
        else:
            shapes[c] = {"metric": "TVComplement", "score": tv_complement(real[c], synthetic[c])}
    for a, b in combinations(data.columns, 2):
        if a in data.continuous and b in data.continuous:
            score, metric = correlation_similarity(real[a], real[b], synthetic[a], synthetic[b]), "CorrelationSimilarity"
        else:
            cols = []
            for c in (a, b):
                if c in data.continuous:
                    cols.append(discretize(real[c], synthetic[c], bins))
                else:
                    cols.append((real[c].to_numpy(), synthetic[c].to_numpy()))
            score = contingency_similarity(cols[0][0], cols[1][0], cols[0][1], cols[1][1])
            metric = "ContingencySimilarity"
        pairs[f"{a} | {b}"] = {"metric": metric, "score": score}
    col_mean = float(np.nanmean([v["score"] for v in shapes.values()]))
    pair_mean = float(np.nanmean([v["score"] for v in pairs.values()])) if pairs else float("nan")
    return {"column_shapes": col_mean, "column_pair_trends": pair_mean,
            "overall": float(np.nanmean([col_mean, pair_mean])), "columns": shapes, "pairs": pairs}


# --- fairness of data ---------------------------------------------------------------------------------


def risk_difference(data: TabularData, df: pd.DataFrame, protected: str | None = None) -> float:
    """``P(y=1 | privileged) − P(y=1 | rest)`` in ``df`` (nan when a group is absent)."""
    y, s = data.y(df), data.s(df, protected)
    if s.all() or not s.any():
        return float("nan")
    return float(y[s == 1].mean() - y[s == 0].mean())


# --- classifiers ------------------------------------------------------------------------------------


def feature_encoder(data: TabularData, include_target: bool = False, drop_protected: bool = False):
    """Standardised continuous + one-hot categorical columns (unknown categories → all zeros); without the
    protected attributes when ``drop_protected`` ("fairness through unawareness", FairGAN's evaluation)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    dropped = {p.column for p in data.protected} if drop_protected else set()
    cats = [c for c in data.categorical if (include_target or c != data.target) and c not in dropped]
    return ColumnTransformer([("num", StandardScaler(), list(data.continuous)),
                              ("cat", OneHotEncoder(handle_unknown="ignore", sparse_output=False), cats)])


def _estimator(name: str, seed: int):
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier

    if name == "logistic_regression":
        return LogisticRegression(max_iter=1000)
    if name == "gradient_boosting":
        return HistGradientBoostingClassifier(random_state=seed)
    if name == "mlp":
        return MLPClassifier(hidden_layer_sizes=(64,), max_iter=200, early_stopping=True, random_state=seed)
    raise FairlatentError(f"unknown classifier {name!r}; one of {CLASSIFIERS}")


def fit_classifier(data: TabularData, train: pd.DataFrame, name: str, seed: int = 0, sample_weight=None,
                   drop_protected: bool = False):
    """A fitted pipeline (encoder + classifier) of ``train``; a one-class table is an error naming it."""
    from sklearn.pipeline import Pipeline

    y = data.y(train)
    if y.min() == y.max():
        raise FairlatentError(f"the training table has only target value {'positive' if y[0] else 'negative'}; "
                              "no classifier can be trained on it")
    pipe = Pipeline([("enc", feature_encoder(data, drop_protected=drop_protected)), ("clf", _estimator(name, seed))])
    kw = {"clf__sample_weight": sample_weight} if sample_weight is not None else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence warnings of tiny tables; the scores say how it went
        pipe.fit(train, y, **kw)
    return pipe


def score_predictions(y_true: np.ndarray, y_pred: np.ndarray, y_score: np.ndarray | None) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

    out = {"accuracy": float(accuracy_score(y_true, y_pred)), "f1": float(f1_score(y_true, y_pred, zero_division=0))}
    out["auc"] = float(roc_auc_score(y_true, y_score)) if y_score is not None and len(set(y_true)) == 2 else float("nan")
    return out


def group_fairness(y_true: np.ndarray, y_pred: np.ndarray, s: np.ndarray, *, n_boot: int = 200, seed: int = 0,
                   ci: float = 0.95) -> dict[str, Any]:
    """Demographic parity and equalized odds differences (fractions) with bootstrap intervals."""
    from fairlatent.metrics import fairness as F
    from fairlatent.metrics.bootstrap import bootstrap_metrics

    try:
        from fairlearn.metrics import demographic_parity_difference, equalized_odds_difference
        source = "fairlearn"
    except ImportError:  # pragma: no cover - fairlearn is a test dependency
        demographic_parity_difference, equalized_odds_difference = F.demographic_parity_difference, F.equalized_odds_difference
        source = "fairlatent.metrics.fairness"
    dp = float(demographic_parity_difference(y_true, y_pred, sensitive_features=s))
    eo = float(equalized_odds_difference(y_true, y_pred, sensitive_features=s))
    out: dict[str, Any] = {"source": source, "demographic_parity_difference": dp, "equalized_odds_difference": eo}
    if n_boot > 0:
        boot = bootstrap_metrics(y_true, y_pred.astype(float), sensitive_features=s, threshold=0.5, n_boot=n_boot,
                                 seed=seed, ci=ci, metrics=("DP", "EOdds"))
        for key, m in (("demographic_parity_difference", "DP"), ("equalized_odds_difference", "EOdds")):
            out[f"{key}_ci"] = [boot[m]["lo"] / 100.0, boot[m]["hi"] / 100.0]
    return out


def ml_efficacy(data: TabularData, train: pd.DataFrame, *, classifiers: Sequence[str] = CLASSIFIERS, seed: int = 0,
                n_boot: int = 200, sample_weight=None, drop_protected: bool = False) -> dict[str, Any]:
    """Every classifier trained on ``train``, scored (and its fairness measured) on ``data.test``."""
    test = data.test
    y = data.y(test)
    out = {}
    for name in classifiers:
        try:
            pipe = fit_classifier(data, train, name, seed, sample_weight, drop_protected)
        except FairlatentError as exc:
            out[name] = {"error": str(exc)}
            continue
        score = pipe.predict_proba(test)[:, 1]
        pred = (score >= 0.5).astype(np.int8)
        res = score_predictions(y, pred, score)
        res["fairness"] = {p.column: group_fairness(y, pred, data.s(test, p.column), n_boot=n_boot, seed=seed)
                           for p in data.protected}
        out[name] = res
    return out


# --- privacy -----------------------------------------------------------------------------------------


def distance_to_closest_record(data: TabularData, synthetic: pd.DataFrame, *, n_max: int = 2000,
                               seed: int = 0) -> dict[str, Any]:
    """DCR of (up to ``n_max``) synthetic rows and of as many real held-out rows, to the training rows."""
    from sklearn.neighbors import NearestNeighbors

    from fairlatent.utils.seed import rng

    enc = feature_encoder(data, include_target=True).fit(data.train)
    train = enc.transform(data.train)
    nn_ = NearestNeighbors(n_neighbors=1).fit(train)
    g = rng(seed, "dcr")
    res = {}
    for name, df in (("synthetic", synthetic), ("holdout", data.test)):
        sub = df.iloc[np.sort(g.permutation(len(df))[:n_max])]
        d = nn_.kneighbors(enc.transform(sub))[0][:, 0]
        res[name] = {"n": int(len(d)), "median": float(np.median(d)), "p05": float(np.percentile(d, 5)),
                     "exact_copies": float(np.mean(d < 1e-9))}
    h = res["holdout"]["median"]
    res["median_ratio"] = float(res["synthetic"]["median"] / h) if h > 0 else float("nan")
    return res


# --- everything ----------------------------------------------------------------------------------------


def evaluate_tables(data: TabularData, synthetic: Mapping[str, pd.DataFrame], *, seed: int = 0, n_boot: int = 200,
                    classifiers: Sequence[str] = CLASSIFIERS, competitors: bool = True,
                    extra_training_sets: Mapping[str, pd.DataFrame] | None = None,
                    drop_protected: bool = False) -> dict[str, Any]:
    """The full report of ``synthetic`` tables (name → table) against ``data``'s real split.

    ``extra_training_sets`` (name → table, e.g. real + fair synthetic rows) are scored for efficacy and
    fairness like the real and synthetic tables (no fidelity). ``drop_protected``: the classifiers (and the
    competitors) do not see the protected attributes."""
    unknown = [c for c in classifiers if c not in CLASSIFIERS]
    if unknown or not classifiers:
        raise FairlatentError(f"classifiers {list(classifiers)}: choose from {list(CLASSIFIERS)}")
    report: dict[str, Any] = {
        "data": {**{k: v for k, v in data.spec().items() if k != "columns"}, "drop_protected": drop_protected,
                 "test_unseen_categories": data.unseen_categories(data.test)},
        "real": {"risk_difference": {p.column: risk_difference(data, data.train, p.column) for p in data.protected},
                 "efficacy": ml_efficacy(data, data.train, classifiers=classifiers, seed=seed, n_boot=n_boot,
                                             drop_protected=drop_protected)},
        "synthetic": {},
    }
    for name, syn in synthetic.items():
        unseen = data.unseen_categories(syn)
        report["synthetic"][name] = {
            "n": int(len(syn)),
            "unseen_categories": unseen,
            "fidelity": fidelity(data, data.train, syn),
            "risk_difference": {p.column: risk_difference(data, syn, p.column) for p in data.protected},
            "efficacy": ml_efficacy(data, syn, classifiers=classifiers, seed=seed, n_boot=n_boot,
                                             drop_protected=drop_protected),
            "privacy": distance_to_closest_record(data, syn, seed=seed),
        }
    for name, table in (extra_training_sets or {}).items():
        report.setdefault("augmented", {})[name] = {
            "n": int(len(table)),
            "risk_difference": {p.column: risk_difference(data, table, p.column) for p in data.protected},
            "efficacy": ml_efficacy(data, table, classifiers=classifiers, seed=seed, n_boot=n_boot,
                                             drop_protected=drop_protected),
        }
    if competitors:
        from fairlatent.tabular.competitors import run_competitors

        report["competitors"] = run_competitors(data, seed=seed, n_boot=n_boot, drop_protected=drop_protected)
    return report
