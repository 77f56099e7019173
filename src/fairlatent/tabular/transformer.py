"""CTGAN's data representation: mode-specific normalisation of continuous columns, one-hot categoricals.

Continuous column ``c`` (Xu et al. 2019, §4.2): a variational Gaussian mixture (scikit-learn's
``BayesianGaussianMixture``, at most ``max_modes`` = 10 components, Dirichlet-process prior with
concentration 0.001, as the reference implementation's ``ClusterBasedNormalizer``) is fitted to the training
values; components of weight ≤ ``weight_threshold`` (0.005) are dropped. A value ``x`` is represented by

- a **mode** ``k`` drawn from the posterior over the kept components, ``p(k | x) ∝ w_k N(x; μ_k, σ_k²)``
  (the mixture's point estimates; the reference samples from scikit-learn's variational posterior, which
  differs from this only by the prior's small terms), given as a one-hot vector of the kept modes, and
- a **scalar** ``α = (x − μ_k) / (4 σ_k)`` clipped to [−0.99, 0.99] (``tanh`` output of the generator).

The inverse takes the mode of largest value and ``x = α · 4σ_k + μ_k`` (α clipped to [−1, 1]): exact for every
value within 3.96 σ of its mode's mean. Columns whose training values are all whole numbers are rounded back
to whole numbers (an age of 37.4 is not a value the table can hold).

Categorical column: one-hot over the training categories (sorted). ``spans`` says where each column lies in
the encoded vector and which activation the generator uses there (``tanh`` or ``softmax``).

The fitted state (mixture parameters, categories) is plain JSON (:meth:`to_json`), so a trained run needs no
pickle and resumes with the very same encoding.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import pandas as pd

from fairlatent.errors import FairlatentError

__all__ = ["Span", "ColumnInfo", "TableTransformer"]


@dataclass(frozen=True)
class Span:
    """A block of the encoded vector: ``column``'s part ``kind`` (``scalar``, ``mode`` or ``category``)."""

    column: str
    kind: str
    start: int
    width: int

    @property
    def activation(self) -> str:
        return "tanh" if self.kind == "scalar" else "softmax"

    @property
    def stop(self) -> int:
        return self.start + self.width


@dataclass
class ColumnInfo:
    name: str
    kind: str  # "continuous" | "categorical"
    # continuous
    means: list[float] | None = None
    stds: list[float] | None = None
    weights: list[float] | None = None
    integer: bool = False
    # categorical
    categories: list[str] | None = None

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


class TableTransformer:
    """Encode a table into CTGAN's vector and back; see the module docstring."""

    def __init__(self, max_modes: int = 10, weight_threshold: float = 0.005, seed: int = 0):
        self.max_modes, self.weight_threshold, self.seed = max_modes, weight_threshold, seed
        self.columns: list[ColumnInfo] = []

    # --- fitting ---
    def fit(self, df: pd.DataFrame, continuous: Sequence[str], categorical: Sequence[str]) -> "TableTransformer":
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.mixture import BayesianGaussianMixture

        self.columns = []
        for c in df.columns:
            if c in continuous:
                x = df[c].to_numpy(np.float64)
                n_distinct = len(np.unique(x))
                if n_distinct < 2:
                    raise FairlatentError(f"column {c!r} is constant; constant columns are not modelled")
                bgm = BayesianGaussianMixture(
                    n_components=min(self.max_modes, n_distinct), weight_concentration_prior_type="dirichlet_process",
                    weight_concentration_prior=0.001, max_iter=100, n_init=1, random_state=self.seed)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", ConvergenceWarning)
                    bgm.fit(x.reshape(-1, 1))
                keep = bgm.weights_ > self.weight_threshold
                if not keep.any():
                    keep = bgm.weights_ == bgm.weights_.max()
                stds = np.sqrt(bgm.covariances_.reshape(-1))
                self.columns.append(ColumnInfo(
                    c, "continuous", means=bgm.means_.reshape(-1)[keep].tolist(),
                    stds=np.maximum(stds[keep], 1e-6 * max(1.0, float(np.abs(x).max()))).tolist(),
                    weights=(bgm.weights_[keep] / bgm.weights_[keep].sum()).tolist(),
                    integer=bool(np.all(np.mod(x, 1) == 0))))
            elif c in categorical:
                self.columns.append(ColumnInfo(c, "categorical", categories=sorted(df[c].astype(str).unique())))
            else:
                raise FairlatentError(f"column {c!r} is neither continuous nor categorical")
        return self

    # --- layout ---
    @property
    def spans(self) -> list[Span]:
        out, at = [], 0
        for col in self.columns:
            if col.kind == "continuous":
                out.append(Span(col.name, "scalar", at, 1))
                out.append(Span(col.name, "mode", at + 1, len(col.means)))
                at += 1 + len(col.means)
            else:
                out.append(Span(col.name, "category", at, len(col.categories)))
                at += len(col.categories)
        return out

    @property
    def dim(self) -> int:
        s = self.spans
        return s[-1].stop if s else 0

    def column(self, name: str) -> ColumnInfo:
        for c in self.columns:
            if c.name == name:
                return c
        raise FairlatentError(f"column {name!r} is not modelled; columns: {[c.name for c in self.columns]}")

    def category_span(self, name: str) -> Span:
        for s in self.spans:
            if s.column == name and s.kind == "category":
                return s
        raise FairlatentError(f"column {name!r} is not a categorical column of the model")

    # --- encoding ---
    def mode_posterior(self, col: ColumnInfo, x: np.ndarray) -> np.ndarray:
        """``p(k | x) ∝ w_k N(x; μ_k, σ_k²)`` over the kept modes, shape (n, K)."""
        mu, sd, w = (np.asarray(v, np.float64) for v in (col.means, col.stds, col.weights))
        logp = np.log(w) - np.log(sd) - 0.5 * ((x[:, None] - mu) / sd) ** 2
        logp -= logp.max(axis=1, keepdims=True)
        p = np.exp(logp)
        return p / p.sum(axis=1, keepdims=True)

    def transform(self, df: pd.DataFrame, generator: np.random.Generator) -> np.ndarray:
        """Encode ``df`` (float32, ``n × dim``); modes are drawn from their posterior with ``generator``."""
        n = len(df)
        out = np.zeros((n, self.dim), dtype=np.float32)
        for col, span0 in zip(self.columns, [s for s in self.spans if s.kind in ("scalar", "category")]):
            if col.kind == "continuous":
                x = df[col.name].to_numpy(np.float64)
                p = self.mode_posterior(col, x)
                u = generator.random(n)[:, None]
                k = np.minimum((np.cumsum(p, axis=1) < u).sum(axis=1), p.shape[1] - 1)
                mu, sd = np.asarray(col.means)[k], np.asarray(col.stds)[k]
                out[:, span0.start] = np.clip((x - mu) / (4 * sd), -0.99, 0.99)
                out[np.arange(n), span0.start + 1 + k] = 1.0
            else:
                index = {c: i for i, c in enumerate(col.categories)}
                values = df[col.name].astype(str)
                codes = values.map(index)
                if codes.isna().any():
                    i = int(np.flatnonzero(codes.isna().to_numpy())[0])
                    raise FairlatentError(f"column {col.name!r}: category {values.iloc[i]!r} (row {i}) was not in the "
                                          f"training data; known: {col.categories[:20]}")
                out[np.arange(n), span0.start + codes.to_numpy(np.int64)] = 1.0
        return out

    def inverse(self, data: np.ndarray) -> pd.DataFrame:
        """Decode an ``n × dim`` array (generator output, activated) into a table of the modelled columns."""
        data = np.asarray(data, dtype=np.float64)
        cols: dict[str, Any] = {}
        spans = {(s.column, s.kind): s for s in self.spans}
        for col in self.columns:
            if col.kind == "continuous":
                a, m = spans[(col.name, "scalar")], spans[(col.name, "mode")]
                k = data[:, m.start:m.stop].argmax(axis=1)
                alpha = np.clip(data[:, a.start], -1.0, 1.0)
                x = alpha * 4 * np.asarray(col.stds)[k] + np.asarray(col.means)[k]
                cols[col.name] = np.round(x) if col.integer else x
            else:
                s = spans[(col.name, "category")]
                cols[col.name] = np.asarray(col.categories, dtype=object)[data[:, s.start:s.stop].argmax(axis=1)]
        return pd.DataFrame(cols)

    # --- state ---
    def to_json(self) -> dict[str, Any]:
        return {"max_modes": self.max_modes, "weight_threshold": self.weight_threshold, "seed": self.seed,
                "columns": [c.to_json() for c in self.columns]}

    @classmethod
    def from_json(cls, state: dict[str, Any]) -> "TableTransformer":
        t = cls(state["max_modes"], state["weight_threshold"], state["seed"])
        t.columns = [ColumnInfo(**c) for c in state["columns"]]
        return t
