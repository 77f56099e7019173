"""Tabular readers (Adult, COMPAS, German credit, CSV) and the stated handling of bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fairlatent.errors import FairlatentError
from fairlatent.tabular.readers import (ADULT_COLUMNS, GERMAN_COLUMNS, load_table, read_adult, read_compas,
                                        read_csv_table, read_german)

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "tabular"

ADULT_TRAIN = """39, State-gov, 77516, Bachelors, 13, Never-married, Adm-clerical, Not-in-family, White, Male, 2174, 0, 40, United-States, <=50K
50, Self-emp-not-inc, 83311, Bachelors, 13, Married-civ-spouse, Exec-managerial, Husband, White, Male, 0, 0, 13, United-States, >50K
38, ?, 215646, HS-grad, 9, Divorced, ?, Not-in-family, Black, Female, 0, 0, 40, United-States, <=50K
53, Private, 234721, 11th, 7, Married-civ-spouse, Handlers-cleaners, Husband, Black, Male, 0, 0, 40, ?, <=50K
28, Private, 338409, Bachelors, 13, Married-civ-spouse, Prof-specialty, Wife, Asian-Pac-Islander, Female, 0, 0, 40, Cuba, >50K

"""
ADULT_TEST = """|1x3 Cross validator
25, Private, 226802, 11th, 7, Never-married, Machine-op-inspct, Own-child, Black, Male, 0, 0, 40, United-States, <=50K.
38, Private, 89814, HS-grad, 9, Married-civ-spouse, Farming-fishing, Husband, White, Female, 0, 0, 50, United-States, >50K.
18, ?, 103497, Some-college, 10, Never-married, ?, Own-child, White, Female, 0, 0, 30, United-States, <=50K.
"""


@pytest.fixture
def adult_files(tmp_path):
    (tmp_path / "adult.data").write_text(ADULT_TRAIN)
    (tmp_path / "adult.test").write_text(ADULT_TEST)
    return tmp_path / "adult.data"


def test_adult_raw_format(adult_files):
    d = read_adult(adult_files)
    assert list(d.train.columns) == ADULT_COLUMNS
    assert (len(d.train), len(d.test)) == (3, 2)  # rows with '?' dropped; the '|1x3' line skipped
    assert set(d.test["income"]) == {"<=50K", ">50K"}  # the test labels' '.' removed
    assert d.train["age"].dtype == np.float64 and d.train["workclass"].iloc[1] == "Self-emp-not-inc"
    assert [(p.column, p.privileged) for p in d.protected] == [("sex", "Male"), ("race", "White")]
    assert d.y(d.test).tolist() == [0, 1] and d.s(d.train, "race").tolist() == [1, 1, 0]
    assert any("dropped 2 of 5 rows" in n for n in d.notes)
    kept = read_adult(adult_files, keep_unknown=True)
    assert (len(kept.train), len(kept.test)) == (5, 3) and "unknown" in set(kept.train["workclass"])


@pytest.mark.slow
@pytest.mark.skipif(not (SHARED / "adult.data").is_file(), reason="the shared Adult files are not on this machine")
def test_real_adult_counts_and_a_few_hundred_rows_train(tmp_path):
    from fairlatent.tabular.ctgan import CTGANConfig
    from fairlatent.tabular.synthesizer import Synthesizer, fit

    d = read_adult(SHARED / "adult.data")
    assert (len(d.train), len(d.test)) == (30162, 15060)  # the usual Adult table without missing values
    assert d.y(d.train).mean() == pytest.approx(0.2489, abs=1e-3)
    d.train, d.test = d.train.iloc[:300].reset_index(drop=True), d.test.iloc[:200].reset_index(drop=True)
    run = fit(d, tmp_path / "run", CTGANConfig(batch_size=100, epochs=2, generator_dims=(32,), discriminator_dims=(32,)),
              progress=False)
    rows = Synthesizer(run).sample(100, {"sex": "Female"})
    assert len(rows) == 100 and set(rows["sex"]) == {"Female"} and list(rows.columns) == ADULT_COLUMNS


def _compas_csv(path):
    cols = ["id", "sex", "age", "race", "juv_fel_count", "juv_misd_count", "juv_other_count", "priors_count",
            "days_b_screening_arrest", "c_jail_in", "c_jail_out", "c_charge_degree", "is_recid", "score_text",
            "decile_score", "two_year_recid"]
    rows = [
        [1, "Male", 34, "African-American", 0, 0, 0, 0, -1, "2013-01-26 03:45:27", "2013-02-05 05:36:53", "F", 1, "Low", 3, 1],
        [2, "Female", 24, "Caucasian", 0, 0, 1, 4, 0, "2013-04-13 04:58:34", "2013-04-14 07:02:04", "M", 0, "Low", 4, 0],
        [3, "Male", 41, "Caucasian", 0, 0, 0, 14, 31, "2014-02-18 05:08:24", "2014-02-24 12:18:30", "F", 1, "Medium", 6, 1],
        [4, "Male", 39, "Hispanic", 0, 0, 0, 0, 0, "2013-03-26 12:10:19", "2013-03-27 05:09:05", "M", 0, "Low", 1, 0],
        [5, "Female", 27, "African-American", 0, 0, 0, 1, 0, "2013-11-30 04:50:18", "2013-12-01 12:28:56", "O", 0, "Low", 4, 0],
        [6, "Male", 23, "African-American", 0, 1, 0, 3, -30, "2013-03-12 09:00:00", "2013-03-13 09:00:00", "F", -1, "High", 8, 1],
        [7, "Male", 45, "Caucasian", 0, 0, 0, 2, 30, "2013-05-01 00:00:00", "2013-05-03 12:00:00", "F", 1, "N/A", 5, 1],
    ] + [[10 + i, "Male" if i % 2 else "Female", 20 + i, "African-American" if i % 3 else "Caucasian", 0, 0, 0, i % 4,
          0, "2013-01-01 00:00:00", "2013-01-02 00:00:00", "F" if i % 2 else "M", i % 2, "Low", 2, i % 2] for i in range(20)]
    pd.DataFrame(rows, columns=cols).to_csv(path, index=False)


def test_compas_propublica_filter_and_two_races(tmp_path):
    path = tmp_path / "compas-scores-two-years.csv"
    _compas_csv(path)
    d = read_compas(path)
    both = pd.concat([d.train, d.test])
    # dropped: days 31 (id 3), Hispanic (id 4, races="two"), charge 'O' (id 5), is_recid -1 (id 6), N/A (id 7)
    assert len(both) == 2 + 20
    assert set(both["race"]) == {"African-American", "Caucasian"}
    assert both["length_of_stay"].max() == pytest.approx(10.077, abs=1e-3)  # id 1: 10 days 1 h 51 m
    assert d.positive == "0" and d.protected[0].privileged == "Caucasian" and d.protected[1].privileged == "Female"
    assert any("6 of 27 rows" not in n for n in d.notes) and any("ProPublica filter" in n for n in d.notes)
    assert len(pd.concat([read_compas(path, races="all").train, read_compas(path, races="all").test])) == 23
    again = read_compas(path)
    pd.testing.assert_frame_equal(d.test, again.test)  # the seeded split is fixed
    assert not d.test.equals(read_compas(path, seed=1).test)


def test_german_decoding_and_derived_protected(tmp_path):
    real = SHARED / "german.data"
    lines = ["A11 6 A34 A43 1169 A65 A75 4 A93 A101 4 A121 67 A143 A152 2 A173 1 A192 A201 1",
             "A12 48 A32 A43 5951 A61 A73 2 A92 A101 2 A121 22 A143 A152 1 A173 1 A191 A201 2"] * 5
    path = tmp_path / "german.data"
    path.write_text("\n".join(lines) + "\n")
    d = read_german(path)
    both = pd.concat([d.train, d.test], ignore_index=True)
    assert set(both.columns) == set(GERMAN_COLUMNS) | {"sex", "age_group"}
    first = both[both["age"] == 67].iloc[0]
    assert first["sex"] == "male" and first["age_group"] == "> 25" and first["credit"] == "good"
    assert first["purpose"] == "radio/television" and first["housing"] == "own"
    second = both[both["age"] == 22].iloc[0]
    assert second["sex"] == "female" and second["age_group"] == "<= 25" and second["credit"] == "bad"
    assert [(p.column, p.privileged) for p in d.protected] == [("sex", "male"), ("age_group", "> 25")]
    (tmp_path / "bad.data").write_text(lines[0].replace("A93", "A99") + "\n" + lines[1] + "\n")
    with pytest.raises(FairlatentError, match="'A99'"):
        read_german(tmp_path / "bad.data")
    if real.is_file():
        r = read_german(real)
        assert len(r.train) + len(r.test) == 1000 and r.y(pd.concat([r.train, r.test])).sum() == 700


# --- bad input ---------------------------------------------------------------------------------------------


def _csv(tmp_path, df, name="t.csv"):
    p = tmp_path / name
    df.to_csv(p, index=False)
    return p


def _base(n=40, seed=0):
    g = np.random.default_rng(seed)
    return pd.DataFrame({"x": g.normal(size=n).round(4), "c": g.choice(["u", "v"], n), "s": g.choice(["m", "f"], n),
                         "y": g.integers(0, 2, n)})


def test_missing_values_are_dropped_or_refused(tmp_path):
    df = _base().astype(object)
    df.loc[3, "x"], df.loc[5, "c"], df.loc[7, "x"] = "?", "", np.nan
    p = _csv(tmp_path, df)
    d = read_csv_table(p, target="y", protected=[("s", "m")], test_fraction=0.25)
    assert len(d.train) + len(d.test) == 37 and not d.train.isna().any().any()
    assert any("missing values" in n for n in d.notes)
    with pytest.raises(FairlatentError, match=r"row \d+ column '(x|c)' is missing"):
        read_csv_table(p, target="y", protected=[("s", "m")], missing="error")


def test_constant_column_is_kept_and_restored_when_sampling(tmp_path):
    from fairlatent.tabular.ctgan import CTGANConfig
    from fairlatent.tabular.synthesizer import Synthesizer, fit

    df = _base(120)
    df["k"] = 7
    df["kc"] = "same"
    d = read_csv_table(_csv(tmp_path, df), target="y", protected=[("s", "m")], continuous=["x", "k"])
    assert d.constants == {"k": 7.0, "kc": "same"} and "k" not in d.modelled
    run = fit(d, tmp_path / "run", CTGANConfig(batch_size=20, pac=5, epochs=1, generator_dims=(8,),
                                               discriminator_dims=(8,)), progress=False)
    rows = Synthesizer(run).sample(30)
    assert set(rows["k"]) == {7.0} and set(rows["kc"]) == {"same"} and list(rows.columns) == d.columns
    rows = Synthesizer(run).sample(10, {"kc": "same", "c": "u"})  # a condition on the constant always holds
    assert set(rows["kc"]) == {"same"} and set(rows["c"]) == {"u"}
    with pytest.raises(FairlatentError, match="kc='other'"):
        Synthesizer(run).sample(10, {"kc": "other"})


def test_many_category_column_inf_and_text_in_numbers_are_refused(tmp_path):
    df = _base(60)
    df["id"] = [f"id{i}" for i in range(60)]
    with pytest.raises(FairlatentError, match=r"'id' has \d+ distinct values \(more than 30\)"):
        read_csv_table(_csv(tmp_path, df), target="y", protected=[("s", "m")], max_categories=30)
    df = _base().astype(object)
    df.loc[4, "x"] = "inf"
    with pytest.raises(FairlatentError, match=r"column 'x' row \d+ is inf"):
        read_csv_table(_csv(tmp_path, df), target="y", protected=[("s", "m")], continuous=["x"])
    df.loc[4, "x"] = "abc"
    with pytest.raises(FairlatentError, match=r"column 'x' is continuous but row \d+ holds 'abc'"):
        read_csv_table(_csv(tmp_path, df), target="y", protected=[("s", "m")], continuous=["x"])


def test_protected_with_more_than_two_values_needs_its_privileged_value(tmp_path):
    df = _base(60)
    df["s"] = np.resize(["a", "b", "c"], 60)
    p = _csv(tmp_path, df)
    with pytest.raises(FairlatentError, match=r"protected column 's' has 3 values \['a', 'b', 'c'\]; name the privileged"):
        read_csv_table(p, target="y", protected=[("s", None)])
    with pytest.raises(FairlatentError, match="privileged value 'z' not found"):
        read_csv_table(p, target="y", protected=[("s", "z")])
    d = read_csv_table(p, target="y", protected=[("s", "b")])
    assert d.s(d.train).tolist() == (d.train["s"] == "b").astype(int).tolist()
    assert any("one-vs-rest" in n for n in d.notes)


def test_empty_file_and_header_only_and_non_binary_target(tmp_path):
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(FairlatentError, match="empty file"):
        read_csv_table(tmp_path / "empty.csv", target="y", protected=[("s", "m")])
    (tmp_path / "head.csv").write_text("x,s,y\n")
    with pytest.raises(FairlatentError, match="no data rows"):
        read_csv_table(tmp_path / "head.csv", target="y", protected=[("s", "m")])
    (tmp_path / "adult.data").write_text("")
    with pytest.raises(FairlatentError, match="empty file"):
        read_adult(tmp_path / "adult.data")
    df = _base(60)
    df["y"] = np.resize(["lo", "mid", "hi"], 60)
    p = _csv(tmp_path, df)
    with pytest.raises(FairlatentError, match=r"target 'y' has 3 values .*binary"):
        read_csv_table(p, target="y", protected=[("s", "m")])
    d = read_csv_table(p, target="y", protected=[("s", "m")], positive="hi")
    assert d.y(d.train).tolist() == (d.train["y"] == "hi").astype(int).tolist()
    df["y"] = np.resize(["no", "yes"], 60)
    with pytest.raises(FairlatentError, match=r"name the positive value of target 'y' \(one of \['no', 'yes'\]\)"):
        read_csv_table(_csv(tmp_path, df, "b.csv"), target="y", protected=[("s", "m")])


def test_constant_target_or_protected_and_unknown_columns(tmp_path):
    df = _base()
    df["s"] = "m"
    with pytest.raises(FairlatentError, match="protected column 's' is constant"):
        read_csv_table(_csv(tmp_path, df), target="y", protected=[("s", "m")])
    with pytest.raises(FairlatentError, match=r"protected column\(s\) \['nope'\] not in the table"):
        read_csv_table(_csv(tmp_path, _base(), "c.csv"), target="y", protected=[("nope", "m")])


def test_load_table_by_name_and_disagreeing_target(adult_files):
    d = load_table(adult_files, protected=[("race", None)])
    assert d.name == "adult" and d.protected[0].column == "race"  # chosen protected attribute first
    with pytest.raises(FairlatentError, match="target is 'income', not 'y'"):
        load_table(adult_files, target="y")
