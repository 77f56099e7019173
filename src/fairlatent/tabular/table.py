"""A tabular data set as the models and the evaluation see it, and the checks every table goes through.

:class:`TabularData` holds a train and a test table (pandas), the column types (``continuous``: float64;
``categorical``: strings), the binary target with its positive value and the protected attributes with their
privileged value. Every reader ends in :func:`prepare_tables`, which turns bad input into one
:class:`~fairlatent.errors.FairlatentError` naming the file, column and value, or handles it as stated:

- **missing values** (``?``, empty cells, ``NaN``/``NA``): ``missing="drop"`` (default) drops the rows
  holding any (their number is recorded in ``notes``); ``"error"`` refuses the table naming the first
  row and column;
- **a constant column** (one value in the training rows): kept in the table, left out of the model and
  written back as that constant when sampling (``TabularData.constants``); a constant target or
  protected attribute is an error;
- **a categorical column with more than** ``max_categories`` **values** (default 1,000; an identifier, a
  free-text field): an error naming it (declare it continuous or drop it);
- **a continuous column with ±inf or text**: an error naming the row and value;
- **a protected column with more than two values**: the privileged value must be given; the attribute is
  privileged-vs-rest (one-vs-rest) in every metric and in FairGAN's second discriminator;
- **a target that is not binary**: an error listing its values, unless ``positive`` names the positive
  value (then positive-vs-rest);
- **an empty file** or a table with no rows left: an error.

Row numbers in messages are 1-based lines of the data as read (the header, where there is one, is line 1).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Sequence

import numpy as np
import pandas as pd

from fairlatent.errors import FairlatentError
from fairlatent.utils.seed import rng

__all__ = ["Protected", "TabularData", "prepare_tables", "seeded_split", "MISSING_MARKERS"]

#: Cells read as missing in every reader (besides pandas' own NaN/NA markers).
MISSING_MARKERS = ("?", "")
MAX_CATEGORIES = 1000


@dataclass(frozen=True)
class Protected:
    """A protected attribute: ``column`` and the value of its privileged group (as a string)."""

    column: str
    privileged: str


@dataclass
class TabularData:
    """Train and test tables of one data set, with everything the models and metrics need to know."""

    name: str
    train: pd.DataFrame
    test: pd.DataFrame
    continuous: list[str]
    categorical: list[str]
    target: str
    positive: str
    protected: list[Protected]
    constants: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def columns(self) -> list[str]:
        return list(self.train.columns)

    @property
    def modelled(self) -> list[str]:
        """The columns a generator models: every column but the constant ones."""
        return [c for c in self.columns if c not in self.constants]

    def protected_attribute(self, column: str | None = None) -> Protected:
        if column is None:
            return self.protected[0]
        for p in self.protected:
            if p.column == column:
                return p
        raise FairlatentError(f"{column!r} is not a protected attribute of {self.name} "
                              f"(protected: {[p.column for p in self.protected]})")

    def y(self, df: pd.DataFrame) -> np.ndarray:
        """The binary target of ``df`` (1 = the positive value)."""
        return (df[self.target].astype(str) == self.positive).to_numpy().astype(np.int8)

    def s(self, df: pd.DataFrame, column: str | None = None) -> np.ndarray:
        """1 for rows of the privileged group of a protected attribute (the first one by default)."""
        p = self.protected_attribute(column)
        return (df[p.column].astype(str) == p.privileged).to_numpy().astype(np.int8)

    def spec(self) -> dict[str, Any]:
        """A JSON record of everything but the rows."""
        return {"name": self.name, "continuous": self.continuous, "categorical": self.categorical,
                "target": self.target, "positive": self.positive,
                "protected": [{"column": p.column, "privileged": p.privileged} for p in self.protected],
                "constants": self.constants, "notes": self.notes, "columns": self.columns,
                "n_train": len(self.train), "n_test": len(self.test)}

    @classmethod
    def from_spec(cls, spec: dict[str, Any], train: pd.DataFrame, test: pd.DataFrame) -> "TabularData":
        return cls(name=spec["name"], train=train, test=test, continuous=list(spec["continuous"]),
                   categorical=list(spec["categorical"]), target=spec["target"], positive=spec["positive"],
                   protected=[Protected(p["column"], p["privileged"]) for p in spec["protected"]],
                   constants=dict(spec.get("constants", {})), notes=list(spec.get("notes", [])))

    def coerce(self, df: pd.DataFrame, source: str) -> pd.DataFrame:
        """``df`` (a synthetic or test table read back from CSV) with this data set's columns and types.

        A missing column is an error; a non-number in a continuous column is an error naming the row.
        Categories training never saw are kept (the evaluation counts them; see ``unseen_categories``)."""
        missing = [c for c in self.columns if c not in df.columns]
        if missing:
            raise FairlatentError(f"{source}: missing column(s) {missing}; expected {self.columns}")
        out = df[self.columns].copy()
        for c in self.continuous:
            out[c] = _to_float(out[c], c, source, allow_missing=False)
        for c in self.categorical:
            out[c] = out[c].map(_as_text)
        return out

    def unseen_categories(self, df: pd.DataFrame) -> dict[str, list[str]]:
        """Per categorical column, the values of ``df`` that the training table does not have."""
        out = {}
        for c in self.categorical:
            new = sorted(set(df[c].astype(str)) - set(self.train[c].astype(str)))
            if new:
                out[c] = new
        return out


def _as_text(v: Any) -> str:
    """A cell as category text: integral floats without ``.0`` (``1.0`` read by pandas → ``"1"``)."""
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v).strip()


def _per_value(col: pd.Series, fn) -> pd.Series:
    """``fn`` applied to each distinct non-missing value once (missing cells stay NaN)."""
    codes, uniques = pd.factorize(col, use_na_sentinel=True)
    table = np.array([fn(u) for u in uniques] + [np.nan], dtype=object)
    return pd.Series(table[codes], index=col.index, dtype=object)


def _to_float(col: pd.Series, name: str, source: str, *, allow_missing: bool, line0: int = 2) -> pd.Series:
    values = pd.to_numeric(col, errors="coerce")
    bad = values.isna() & col.notna()
    if allow_missing is False:
        bad = bad | col.isna()
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise FairlatentError(f"{source}: column {name!r} is continuous but row {i + line0} holds "
                              f"{col.iloc[i]!r}; give a number (or declare the column categorical)")
    inf = np.isinf(values.to_numpy(dtype=np.float64, na_value=np.nan))
    if inf.any():
        i = int(np.flatnonzero(inf)[0])
        raise FairlatentError(f"{source}: column {name!r} row {i + line0} is {float(values.iloc[i])!r}; continuous "
                              "columns must be finite (remove the row or replace the value)")
    return values.astype(np.float64)


def seeded_split(n: int, test_fraction: float, seed: int, stream: str = "tabular-split") -> tuple[np.ndarray, np.ndarray]:
    """Train and test row indices of a fixed, seeded random split (``rng(seed, stream).permutation(n)``)."""
    if not 0.0 < test_fraction < 1.0:
        raise FairlatentError(f"test_fraction must be in (0, 1), got {test_fraction}")
    perm = rng(seed, stream).permutation(n)
    k = int(round(n * test_fraction))
    if k == 0 or k == n:
        raise FairlatentError(f"{n} rows cannot be split into train and test at test_fraction={test_fraction}")
    return np.sort(perm[k:]), np.sort(perm[:k])


def prepare_tables(
    tables: dict[str, pd.DataFrame],
    *,
    name: str,
    source: str,
    continuous: Sequence[str],
    categorical: Sequence[str],
    target: str,
    positive: str | None,
    protected: Sequence[tuple[str, str | None]],
    missing: Literal["drop", "error"] = "drop",
    max_categories: int = MAX_CATEGORIES,
    notes: Sequence[str] = (),
    line0: int = 2,
) -> TabularData:
    """Validate and type ``tables`` (``{"train": df, "test": df}``, raw text cells) into :class:`TabularData`.

    ``protected`` is ``[(column, privileged value or None)]``; None is allowed for a two-valued column only
    (then the privileged value must still be said: it is an error, listing both values). ``line0`` is the
    line number of the first data row in messages."""
    notes = list(notes)
    train, test = tables["train"], tables["test"]
    if len(train) == 0:
        raise FairlatentError(f"{source}: no data rows")
    columns = list(train.columns)
    for what, cols in (("target", [target]), ("protected", [p for p, _ in protected]),
                       ("continuous", continuous), ("categorical", categorical)):
        unknown = [c for c in cols if c not in columns]
        if unknown:
            raise FairlatentError(f"{source}: {what} column(s) {unknown} not in the table; columns: {columns}")
    if not protected:
        raise FairlatentError(f"{source}: name at least one protected attribute")
    untyped = [c for c in columns if c not in continuous and c not in categorical]
    both = [c for c in continuous if c in categorical]
    if untyped or both:
        raise FairlatentError(f"{source}: every column must be continuous or categorical, once "
                              f"(untyped: {untyped}, both: {both})")
    for c in [target] + [p for p, _ in protected]:
        if c in continuous:
            raise FairlatentError(f"{source}: column {c!r} is the target or a protected attribute and must be "
                                  "categorical (derive a categorical column, e.g. age > 25, first)")

    out = {}
    for part, df in (("train", train), ("test", test)):
        df = df.copy()
        for c in categorical:
            df[c] = _per_value(df[c], lambda v: np.nan if str(v).strip() in MISSING_MARKERS else _as_text(v))
        for c in continuous:
            df[c] = _per_value(df[c], lambda v: np.nan if str(v).strip() in MISSING_MARKERS else v)
        holes = df.isna()
        if holes.to_numpy().any():
            rows = np.flatnonzero(holes.any(axis=1).to_numpy())
            if missing == "error":
                i = int(rows[0])
                col = holes.columns[holes.iloc[i].to_numpy()][0]
                raise FairlatentError(f"{source} ({part}): row {i + line0} column {col!r} is missing; drop such rows "
                                      "(missing='drop', the default) or fill them in")
            per_col = {c: int(n) for c, n in holes.sum().items() if n}
            notes.append(f"{part}: dropped {len(rows)} of {len(df)} rows with missing values {per_col}")
        for c in continuous:
            df[c] = _to_float(df[c], c, f"{source} ({part})", allow_missing=True, line0=line0)
        if missing == "drop":
            df = df.dropna().reset_index(drop=True)
        if len(df) == 0:
            raise FairlatentError(f"{source} ({part}): no rows left after dropping the rows with missing values")
        out[part] = df
    train, test = out["train"], out["test"]

    for c in categorical:
        k = train[c].nunique()
        if k > max_categories:
            raise FairlatentError(f"{source}: categorical column {c!r} has {k} distinct values (more than "
                                  f"{max_categories}); an identifier or free text cannot be modelled: drop the "
                                  "column, or declare it continuous if it is a number")
    values = sorted(train[target].unique())
    if positive is None and values in (["0", "1"], ["False", "True"]):
        positive = values[1]
    if positive is None:
        if len(values) != 2:
            raise FairlatentError(f"{source}: target {target!r} has {len(values)} values {values[:20]}; it must be "
                                  "binary, or name its positive value (positive-vs-rest)")
        raise FairlatentError(f"{source}: name the positive value of target {target!r} (one of {values})")
    positive = _as_text(positive)
    if positive not in values:
        raise FairlatentError(f"{source}: positive value {positive!r} of target {target!r} not found; values: "
                              f"{values[:20]}")
    if len(values) < 2:
        raise FairlatentError(f"{source}: target {target!r} is constant ({values[0]!r}) in the training rows")
    prot = []
    for col, priv in protected:
        vals = sorted(train[col].unique())
        if len(vals) < 2:
            raise FairlatentError(f"{source}: protected column {col!r} is constant ({vals[0]!r}) in the training rows")
        if priv is None:
            kind = "two" if len(vals) == 2 else f"{len(vals)}"
            raise FairlatentError(f"{source}: protected column {col!r} has {kind} values {vals[:20]}; name the "
                                  f"privileged value (the metrics compare it with the rest)")
        priv = _as_text(priv)
        if priv not in vals:
            raise FairlatentError(f"{source}: privileged value {priv!r} not found in protected column {col!r}; "
                                  f"values: {vals[:20]}")
        if len(vals) > 2:
            notes.append(f"protected {col!r}: {len(vals)} values, {priv!r} vs the rest (one-vs-rest)")
        prot.append(Protected(col, priv))
    constants: dict[str, Any] = {}
    for c in columns:
        u = train[c].unique()
        if len(u) == 1 and c != target and c not in [p.column for p in prot]:
            constants[c] = u[0].item() if isinstance(u[0], np.generic) else u[0]
            notes.append(f"column {c!r} is constant ({constants[c]!r}): not modelled, restored when sampling")
    return TabularData(name=name, train=train, test=test, continuous=list(continuous), categorical=list(categorical),
                       target=target, positive=positive, protected=prot, constants=constants, notes=notes)
