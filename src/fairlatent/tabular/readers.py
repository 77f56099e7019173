"""Readers of the raw benchmark files (Adult, COMPAS, German credit) and of any CSV, into :class:`TabularData`.

Each gives the table, column types, target (with its positive value), protected attributes with their
privileged value and a fixed split; all end in :func:`fairlatent.tabular.table.prepare_tables` (missing
values, constants, infinities, … see there).

- **Adult** (``adult.data`` + ``adult.test``, UCI): no header, ``", "`` separators, the ``|1x3 Cross
  validator`` first line of the test file skipped, the test labels' trailing ``.`` removed, ``?`` missing.
  Rows with a ``?`` are dropped (30,162 train + 15,060 test rows, the usual fairness-literature table);
  ``keep_unknown=True`` keeps ``?`` as a category ``"?"`` instead (as SDGym's and CTGAN's copy of Adult do:
  32,561 + 16,281 rows). Split: the official test file. Target ``income``, positive ``">50K"``. Protected:
  ``sex`` (privileged ``Male``), ``race`` (``White`` vs the rest). Continuous: age, fnlwgt, education-num,
  capital-gain, capital-loss, hours-per-week (CTGAN's metadata; education is categorical).
- **COMPAS** (ProPublica ``compas-scores-two-years.csv``) with ProPublica's analysis filter (their
  ``Compas Analysis.ipynb``): ``-30 <= days_b_screening_arrest <= 30``, ``is_recid != -1``,
  ``c_charge_degree != "O"``, ``score_text != "N/A"`` (6,172 rows); then, by default (``races="two"``), only
  African-American and Caucasian defendants (5,278 rows), as in ProPublica's race comparison; ``races="all"``
  keeps everyone (Caucasian vs the rest). Columns: sex, age, race, juv_fel_count, juv_misd_count,
  juv_other_count, priors_count, c_charge_degree, length_of_stay (days from c_jail_in to c_jail_out), and the
  target ``two_year_recid`` whose positive (favourable) value is ``"0"`` (no new arrest within two years, as
  in AIF360). COMPAS's own scores are left out: they are the audited model. Protected: ``race`` (privileged
  ``Caucasian``), ``sex`` (privileged ``Female``, the group with the favourable outcome more often, as in
  AIF360). Split: seeded 70/30 (:func:`seeded_split`).
- **German credit** (``german.data``, coded ``A11``… values, space-separated, 20 attributes + class): codes
  decoded with the value map of the UCI documentation (``german_values_maps.json`` beside the file when
  present, else the built-in copy below); ``sex`` derived from "personal status and sex" (A91/A93/A94 male,
  A92/A95 female) and ``age_group`` (``"> 25"`` / ``"<= 25"``) from age, both categorical; age stays a
  continuous column. Target ``credit``, positive ``good`` (class 1). Protected: ``sex`` (privileged
  ``male``), ``age_group`` (privileged ``"> 25"``). Continuous: duration, credit_amount, age; the small
  integer codes (installment rate, residence, existing credits, people liable) are categorical. Split: seeded
  70/30.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Literal, Sequence

import numpy as np
import pandas as pd

from fairlatent.errors import FairlatentError
from fairlatent.tabular.table import TabularData, prepare_tables, seeded_split
from fairlatent.utils.io import read_user_text

__all__ = ["ADULT_COLUMNS", "GERMAN_COLUMNS", "read_adult", "read_compas", "read_german", "read_csv_table",
           "load_table", "detect_format"]

ADULT_COLUMNS = ["age", "workclass", "fnlwgt", "education", "education-num", "marital-status", "occupation",
                 "relationship", "race", "sex", "capital-gain", "capital-loss", "hours-per-week", "native-country",
                 "income"]
ADULT_CONTINUOUS = ["age", "fnlwgt", "education-num", "capital-gain", "capital-loss", "hours-per-week"]

GERMAN_COLUMNS = ["status", "duration", "credit_history", "purpose", "credit_amount", "savings",
                  "present_employment", "installment_rate", "status_sex", "other_debtors", "present_residence",
                  "property", "age", "installment_plans", "housing", "existing_credits", "job", "people_liable",
                  "telephone", "foreign_worker", "credit"]
GERMAN_CONTINUOUS = ["duration", "credit_amount", "age"]
# UCI german.doc; used when german_values_maps.json is not beside german.data.
GERMAN_VALUES = {
    "status": {"A11": "< 0 DM", "A12": "0 <= ... < 200 DM", "A13": ">= 200 DM / salary assignments",
               "A14": "no checking account"},
    "credit_history": {"A30": "no credits taken / all paid back duly", "A31": "all credits at this bank paid back duly",
                       "A32": "existing credits paid back duly till now", "A33": "delay in paying off in the past",
                       "A34": "critical account / other credits existing"},
    "purpose": {"A40": "car (new)", "A41": "car (used)", "A42": "furniture/equipment", "A43": "radio/television",
                "A44": "domestic appliances", "A45": "repairs", "A46": "education", "A47": "vacation",
                "A48": "retraining", "A49": "business", "A410": "others"},
    "savings": {"A61": "< 100 DM", "A62": "100 <= ... < 500 DM", "A63": "500 <= ... < 1000 DM", "A64": ">= 1000 DM",
                "A65": "unknown / no savings account"},
    "present_employment": {"A71": "unemployed", "A72": "< 1 year", "A73": "1 <= ... < 4 years",
                           "A74": "4 <= ... < 7 years", "A75": ">= 7 years"},
    "status_sex": {"A91": "male : divorced/separated", "A92": "female : divorced/separated/married",
                   "A93": "male : single", "A94": "male : married/widowed", "A95": "female : single"},
    "other_debtors": {"A101": "none", "A102": "co-applicant", "A103": "guarantor"},
    "property": {"A121": "real estate", "A122": "building society savings / life insurance",
                 "A123": "car or other", "A124": "unknown / no property"},
    "installment_plans": {"A141": "bank", "A142": "stores", "A143": "none"},
    "housing": {"A151": "rent", "A152": "own", "A153": "for free"},
    "job": {"A171": "unemployed / unskilled non-resident", "A172": "unskilled resident",
            "A173": "skilled employee / official", "A174": "management / self-employed / highly qualified"},
    "telephone": {"A191": "none", "A192": "yes, registered"},
    "foreign_worker": {"A201": "yes", "A202": "no"},
}
GERMAN_MALE = {"A91", "A93", "A94"}

COMPAS_COLUMNS = ["sex", "age", "race", "juv_fel_count", "juv_misd_count", "juv_other_count", "priors_count",
                  "c_charge_degree", "length_of_stay", "two_year_recid"]
COMPAS_CONTINUOUS = ["age", "juv_fel_count", "juv_misd_count", "juv_other_count", "priors_count", "length_of_stay"]

Missing = Literal["drop", "error"]


def _read_text(path: Path) -> str:
    text = read_user_text(path, what="data file")
    if not text.strip():
        raise FairlatentError(f"{path}: empty file")
    return text


def _read_adult_file(path: Path) -> pd.DataFrame:
    text = _read_text(path)
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.startswith("|")]
    if not lines:
        raise FairlatentError(f"{path}: no data rows")
    try:
        df = pd.read_csv(io.StringIO("\n".join(lines)), header=None, dtype=str, skipinitialspace=True,
                         keep_default_na=False)
    except pd.errors.ParserError as exc:
        raise FairlatentError(f"{path}: not Adult's comma-separated format ({' '.join(str(exc).split())})") from None
    if df.shape[1] != len(ADULT_COLUMNS):
        raise FairlatentError(f"{path}: rows have {df.shape[1]} fields, Adult has {len(ADULT_COLUMNS)}")
    df.columns = ADULT_COLUMNS
    df = df.apply(lambda c: c.str.strip()).astype(object)
    df["income"] = df["income"].str.rstrip(".")
    return df


def read_adult(data: str | Path, test: str | Path | None = None, *, keep_unknown: bool = False,
               missing: Missing = "drop") -> TabularData:
    """Adult from ``adult.data`` and ``adult.test`` (default: beside it). See the module docstring."""
    data = Path(data)
    test = Path(test) if test is not None else data.with_name("adult.test")
    tables = {"train": _read_adult_file(data), "test": _read_adult_file(test)}
    notes = [f"Adult: official split {data.name} / {test.name}"]
    if keep_unknown:
        tables = {k: v.replace("?", "unknown") for k, v in tables.items()}
        notes.append("'?' kept as the category 'unknown'")
    return prepare_tables(tables, name="adult", source=str(data), continuous=ADULT_CONTINUOUS,
                          categorical=[c for c in ADULT_COLUMNS if c not in ADULT_CONTINUOUS], target="income",
                          positive=">50K", protected=[("sex", "Male"), ("race", "White")], missing=missing,
                          notes=notes, line0=1)


def _csv(path: Path) -> pd.DataFrame:
    text = _read_text(path)
    try:
        return pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=True, skipinitialspace=True)
    except pd.errors.ParserError as exc:
        raise FairlatentError(f"{path}: not a readable CSV ({' '.join(str(exc).split())})") from None
    except pd.errors.EmptyDataError:
        raise FairlatentError(f"{path}: empty file") from None


def read_compas(path: str | Path, *, races: Literal["two", "all"] = "two", test_fraction: float = 0.3, seed: int = 0,
                missing: Missing = "drop") -> TabularData:
    """COMPAS with ProPublica's filter; see the module docstring."""
    path = Path(path)
    raw = _csv(path)
    need = ["days_b_screening_arrest", "is_recid", "c_charge_degree", "score_text", "c_jail_in", "c_jail_out",
            *[c for c in COMPAS_COLUMNS if c != "length_of_stay"]]
    absent = [c for c in need if c not in raw.columns]
    if absent:
        raise FairlatentError(f"{path}: not ProPublica's compas-scores-two-years.csv (missing columns {absent})")
    days = pd.to_numeric(raw["days_b_screening_arrest"], errors="coerce")
    keep = (days.between(-30, 30) & (pd.to_numeric(raw["is_recid"], errors="coerce") != -1)
            & (raw["c_charge_degree"] != "O") & (raw["score_text"] != "N/A") & raw["score_text"].notna())
    df = raw.loc[keep].copy()
    n_pp = len(df)
    stay = (pd.to_datetime(df["c_jail_out"], errors="coerce") - pd.to_datetime(df["c_jail_in"], errors="coerce"))
    df["length_of_stay"] = (stay.dt.total_seconds() / 86400.0).round(3).astype(object)
    notes = [f"COMPAS: ProPublica filter (|days_b_screening_arrest| <= 30, is_recid != -1, c_charge_degree != 'O', "
             f"score_text != 'N/A'): {n_pp} of {len(raw)} rows"]
    protected: list[tuple[str, str | None]] = [("race", "Caucasian"), ("sex", "Female")]
    if races == "two":
        df = df[df["race"].isin(["African-American", "Caucasian"])]
        notes.append(f"African-American and Caucasian defendants only: {len(df)} rows")
    df = df[COMPAS_COLUMNS].reset_index(drop=True)
    tr, te = seeded_split(len(df), test_fraction, seed)
    notes.append(f"seeded split: test_fraction={test_fraction}, seed={seed}")
    return prepare_tables({"train": df.iloc[tr].reset_index(drop=True), "test": df.iloc[te].reset_index(drop=True)},
                          name="compas", source=str(path), continuous=COMPAS_CONTINUOUS,
                          categorical=[c for c in COMPAS_COLUMNS if c not in COMPAS_CONTINUOUS],
                          target="two_year_recid", positive="0", protected=protected, missing=missing, notes=notes)


def read_german(path: str | Path, *, test_fraction: float = 0.3, seed: int = 0, missing: Missing = "drop") -> TabularData:
    """German credit from the coded ``german.data``; see the module docstring."""
    path = Path(path)
    text = _read_text(path)
    rows = [ln.split() for ln in text.splitlines() if ln.strip()]
    for i, r in enumerate(rows):
        if len(r) != len(GERMAN_COLUMNS):
            raise FairlatentError(f"{path}: line {i + 1} has {len(r)} fields; german.data has {len(GERMAN_COLUMNS)}")
    df = pd.DataFrame(rows, columns=GERMAN_COLUMNS, dtype=object)
    values = GERMAN_VALUES
    side = path.with_name("german_values_maps.json")
    notes = []
    if side.is_file():
        loaded = json.loads(side.read_text(encoding="utf-8"))
        values = {k: {code: " ".join(str(v).split()) for code, v in m.items()} for k, m in loaded.items()
                  if k in GERMAN_COLUMNS and k != "credit"}
        notes.append(f"codes decoded with {side.name}")
    df["sex"] = np.where(df["status_sex"].isin(GERMAN_MALE), "male", "female")
    age = pd.to_numeric(df["age"], errors="coerce")
    df["age_group"] = np.where(age > 25, "> 25", "<= 25")
    df.loc[age.isna(), "age_group"] = np.nan
    for col, m in values.items():
        unknown = sorted(set(df[col]) - set(m))
        if unknown:
            raise FairlatentError(f"{path}: column {col!r} holds code(s) {unknown[:5]} not in the German credit value "
                                  "map")
        df[col] = df[col].map(m)
    bad = ~df["credit"].isin(["1", "2"])
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise FairlatentError(f"{path}: line {i + 1}: class {df['credit'].iloc[i]!r}, expected 1 (good) or 2 (bad)")
    df["credit"] = df["credit"].map({"1": "good", "2": "bad"})
    tr, te = seeded_split(len(df), test_fraction, seed)
    notes.append(f"seeded split: test_fraction={test_fraction}, seed={seed}")
    cols = list(df.columns)
    return prepare_tables({"train": df.iloc[tr].reset_index(drop=True), "test": df.iloc[te].reset_index(drop=True)},
                          name="german", source=str(path), continuous=GERMAN_CONTINUOUS,
                          categorical=[c for c in cols if c not in GERMAN_CONTINUOUS], target="credit", positive="good",
                          protected=[("sex", "male"), ("age_group", "> 25")], missing=missing, notes=notes, line0=1)


def read_csv_table(path: str | Path, *, target: str, protected: Sequence[tuple[str, str | None]],
                   positive: str | None = None, continuous: Sequence[str] | None = None,
                   test: str | Path | None = None, test_fraction: float = 0.3, seed: int = 0,
                   missing: Missing = "drop", max_categories: int = 1000) -> TabularData:
    """Any CSV with a header. ``continuous`` (default: every column other than the target and the protected
    ones whose cells all parse as numbers and that has more than 10 distinct values) are continuous, the rest
    categorical. ``test``: a CSV of the same columns as the test split, else a seeded split."""
    path = Path(path)
    df = _csv(path)
    if len(df) == 0:
        raise FairlatentError(f"{path}: a header but no data rows")
    fixed = {target, *[p for p, _ in protected]}
    if continuous is None:
        continuous = []
        for c in df.columns:
            if c in fixed:
                continue
            cells = df[c].dropna()
            cells = cells[~cells.str.strip().isin(["?", ""])]
            num = pd.to_numeric(cells, errors="coerce")
            if len(cells) and num.notna().all() and num.nunique() > 10:
                continuous.append(c)
    continuous = list(continuous)
    categorical = [c for c in df.columns if c not in continuous]
    if test is not None:
        tables = {"train": df, "test": _csv(Path(test))}
        if list(tables["test"].columns) != list(df.columns):
            raise FairlatentError(f"{test}: columns {list(tables['test'].columns)} differ from {path}'s {list(df.columns)}")
        notes = [f"split: {Path(path).name} / {Path(test).name}"]
    else:
        tr, te = seeded_split(len(df), test_fraction, seed)
        tables = {"train": df.iloc[tr].reset_index(drop=True), "test": df.iloc[te].reset_index(drop=True)}
        notes = [f"seeded split: test_fraction={test_fraction}, seed={seed}"]
    return prepare_tables(tables, name=path.stem, source=str(path), continuous=continuous, categorical=categorical,
                          target=target, positive=positive, protected=list(protected), missing=missing,
                          max_categories=max_categories, notes=notes)


def detect_format(path: str | Path) -> str:
    """``adult`` | ``compas`` | ``german`` | ``csv`` from the file name."""
    name = Path(path).name.lower()
    if name in ("adult.data", "adult.test"):
        return "adult"
    if name.startswith("compas-scores-two-years"):
        return "compas"
    if name == "german.data":
        return "german"
    return "csv"


def load_table(path: str | Path, *, fmt: str = "auto", target: str | None = None,
               protected: Sequence[tuple[str, str | None]] = (), positive: str | None = None, seed: int = 0,
               missing: Missing = "drop", **kw) -> TabularData:
    """Read a data set by format (``auto``: from the file name). For the three benchmark formats the target
    and protected attributes are theirs; a ``target``/``protected`` given as well must agree (a protected
    attribute named alone selects and orders among theirs)."""
    fmt = detect_format(path) if fmt == "auto" else fmt
    if fmt == "csv":
        if target is None or not protected:
            raise FairlatentError(f"{path}: a CSV needs --target and --protected")
        return read_csv_table(path, target=target, protected=protected, positive=positive, seed=seed,
                              missing=missing, **kw)
    if fmt == "adult":
        data = read_adult(path, missing=missing, **kw)
    elif fmt == "compas":
        data = read_compas(path, seed=seed, missing=missing, **kw)
    elif fmt == "german":
        data = read_german(path, seed=seed, missing=missing, **kw)
    else:
        raise FairlatentError(f"unknown table format {fmt!r}; one of auto, csv, adult, compas, german")
    if target is not None and target != data.target:
        raise FairlatentError(f"{path}: the {fmt} data set's target is {data.target!r}, not {target!r}")
    if protected:
        chosen = []
        for col, priv in protected:
            p = data.protected_attribute(col)
            if priv is not None and priv != p.privileged:
                raise FairlatentError(f"{path}: {col!r}'s privileged value in {fmt} is {p.privileged!r}, not {priv!r}")
            chosen.append(p)
        data.protected = chosen + [p for p in data.protected if p not in chosen]
    return data
