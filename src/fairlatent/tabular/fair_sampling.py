"""Fair conditional sampling: a synthetic set whose (target, protected) cells follow a requested joint.

With a conditional generator (:class:`~fairlatent.tabular.synthesizer.Synthesizer`) every cell
``(target = y, protected = a)`` can be drawn on request, so the training set of a downstream classifier can
be given any joint distribution of the two, e.g. **independent** target and protected attribute with the real
marginals, ``P*(y, a) = P(y) · P(a)`` (all values of both columns, so the privileged-vs-rest version is
independent too). Two modes:

- ``"augment"`` (default): real training rows + the fewest synthetic rows that make the *union* follow
  ``P*``: with ``n_ya`` real rows per cell, the union has ``T = max_ya n_ya / P*(y, a)`` rows and cell
  ``(y, a)`` gets ``round(T · P*(y, a)) − n_ya`` synthetic rows (≥ 0; the cell that sets ``T`` gets none);
- ``"synthetic"``: ``n`` synthetic rows only, ``round(n · P*(y, a))`` per cell.
"""

from __future__ import annotations

from typing import Literal, Mapping

import numpy as np
import pandas as pd

from fairlatent.errors import FairlatentError
from fairlatent.tabular.table import TabularData

__all__ = ["independent_joint", "cell_counts", "fair_synthetic", "fair_training_set"]

Cell = tuple[str, str]


def independent_joint(data: TabularData, protected: str | None = None) -> dict[Cell, float]:
    """``P(y) · P(a)`` over the training rows' values of the target and the protected column."""
    a = data.protected_attribute(protected).column
    py = data.train[data.target].astype(str).value_counts(normalize=True)
    pa = data.train[a].astype(str).value_counts(normalize=True)
    return {(y, s): float(py[y] * pa[s]) for y in sorted(py.index) for s in sorted(pa.index)}


def cell_counts(data: TabularData, joint: Mapping[Cell, float], *, protected: str | None = None,
                mode: Literal["augment", "synthetic"] = "augment", n: int | None = None) -> dict[Cell, int]:
    """Synthetic rows to draw per cell (see the module docstring)."""
    a = data.protected_attribute(protected).column
    total = sum(joint.values())
    if not joint or total <= 0 or any(p < 0 for p in joint.values()):
        raise FairlatentError(f"the requested joint must hold non-negative probabilities summing to > 0: {dict(joint)}")
    joint = {k: v / total for k, v in joint.items()}
    ys, ss = set(data.train[data.target].astype(str)), set(data.train[a].astype(str))
    for y, s in joint:
        if y not in ys or s not in ss:
            raise FairlatentError(f"cell ({data.target}={y!r}, {a}={s!r}): value not in the training data")
    if mode == "synthetic":
        if not n or n < 1:
            raise FairlatentError("mode='synthetic' needs n >= 1 rows")
        return {k: int(round(n * p)) for k, p in joint.items()}
    if mode != "augment":
        raise FairlatentError(f"unknown mode {mode!r}; 'augment' or 'synthetic'")
    real = data.train.groupby([data.target, a]).size()
    have = {k: int(real.get(k, 0)) for k in joint}
    outside = int(len(data.train) - sum(have.values()))
    if outside:
        raise FairlatentError(f"{outside} training rows fall in cells the requested joint does not list")
    t = max(have[k] / p for k, p in joint.items() if p > 0)
    return {k: max(int(round(t * p)) - have[k], 0) for k, p in joint.items()}


def fair_synthetic(synth, data: TabularData, *, joint: Mapping[Cell, float] | None = None,
                   protected: str | None = None, mode: Literal["augment", "synthetic"] = "augment",
                   n: int | None = None, seed: int = 0) -> pd.DataFrame:
    """The synthetic rows of each cell, drawn with ``synth.sample(m, conditions={target: y, protected: a})``."""
    a = data.protected_attribute(protected).column
    joint = dict(joint) if joint is not None else independent_joint(data, protected)
    counts = cell_counts(data, joint, protected=protected, mode=mode, n=n)
    parts = []
    for i, ((y, s), m) in enumerate(sorted(counts.items())):
        if m > 0:
            parts.append(synth.sample(m, {data.target: y, a: s}, seed=seed * 1000 + i))
    if not parts:
        return data.train.iloc[:0].copy()
    return pd.concat(parts, ignore_index=True)


def fair_training_set(synth, data: TabularData, **kw) -> pd.DataFrame:
    """Real training rows + :func:`fair_synthetic` rows (mode ``augment``)."""
    syn = fair_synthetic(synth, data, mode="augment", **kw)
    return pd.concat([data.train, syn], ignore_index=True)
