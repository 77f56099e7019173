"""Tabular evaluation (fidelity metrics against hand-computed values, fairness, privacy), fair conditional
sampling, the competitors, and the ``fairlatent tabular`` commands."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from fairlatent.errors import FairlatentError
from fairlatent.tabular.competitors import reweighing_weights, run_competitors
from fairlatent.tabular.evaluate import (contingency_similarity, correlation_similarity, discretize,
                                         distance_to_closest_record, fidelity, group_fairness, ks_complement,
                                         risk_difference, tv_complement)
from fairlatent.tabular.fair_sampling import cell_counts, fair_synthetic, independent_joint
from fairlatent.tabular.table import prepare_tables


def _data(df, test=None, continuous=("x",), **kw):
    cats = [c for c in df.columns if c not in continuous]
    return prepare_tables({"train": df, "test": df if test is None else test}, name="t", source="t",
                          continuous=list(continuous), categorical=cats, target="y", positive="1",
                          protected=[("s", "p")], **kw)


# --- fidelity, by hand --------------------------------------------------------------------------------------


def test_ks_and_tv_complements_by_hand():
    # ECDFs of {1,2,3,4} and {3,4,5,6} differ by at most 1/2 (at x = 2 and x = 4)
    assert ks_complement([1, 2, 3, 4], [3, 4, 5, 6]) == pytest.approx(0.5)
    assert ks_complement([1, 2, 3], [1, 2, 3]) == pytest.approx(1.0)
    # p_real = (a ½, b ½), p_syn = (a ⅙, b ½, c ⅓): TV = ½ (⅓ + 0 + ⅓) = ⅓
    assert tv_complement(list("aabb"), list("abbbcc")) == pytest.approx(2 / 3)


def test_correlation_and_contingency_similarity_by_hand():
    assert correlation_similarity([1, 2, 3], [1, 2, 3], [1, 2, 3], [3, 2, 1]) == pytest.approx(0.0)
    assert correlation_similarity([1, 2, 3], [1, 2, 3], [1, 2, 3], [1, 3, 2]) == pytest.approx(0.75)  # ρ = ½
    # real cells (x,p) ¼, (x,q) ¼, (y,p) ½; synthetic (x,p) ½, (y,q) ½: TV = ½ (¼ + ¼ + ½ + ½) = ¾
    assert contingency_similarity(list("xxyy"), list("pqpp"), list("xxyy"), list("ppqq")) == pytest.approx(0.25)


def test_discretize_uses_the_real_histogram_edges_opened_to_infinity():
    real, syn = np.arange(11.0), np.array([-3.0, 5.0, 5.1, 100.0])
    r, s = discretize(real, syn, bins=2)  # edges 0, 5, 10 → bins [-inf, 5), [5, inf), codes 1 and 2
    assert r.tolist() == [1] * 5 + [2] * 6 and s.tolist() == [1, 2, 2, 2]


def test_fidelity_report_of_identical_and_shifted_tables():
    g = np.random.default_rng(0)
    df = pd.DataFrame({"x": g.normal(size=200), "z": g.normal(size=200), "c": g.choice(list("ab"), 200),
                       "s": g.choice(list("pu"), 200), "y": g.choice(list("01"), 200)})
    d = _data(df, continuous=("x", "z"))
    same = fidelity(d, d.train, d.train)
    assert same["column_shapes"] == pytest.approx(1.0) and same["column_pair_trends"] == pytest.approx(1.0)
    assert same["pairs"]["x | z"]["metric"] == "CorrelationSimilarity"
    assert same["pairs"]["x | c"]["metric"] == "ContingencySimilarity"
    shifted = d.train.copy()
    shifted["x"] += 100.0
    f = fidelity(d, d.train, shifted)
    assert f["columns"]["x"]["score"] == pytest.approx(0.0) and f["columns"]["z"]["score"] == pytest.approx(1.0)


# --- fairness -------------------------------------------------------------------------------------------


def test_risk_difference_by_hand():
    df = pd.DataFrame({"x": [0.0, 1, 2, 3, 4, 5], "s": list("pppuuu"), "y": list("110010")})
    d = _data(df)
    assert risk_difference(d, df) == pytest.approx(2 / 3 - 1 / 3)


def test_group_fairness_agrees_with_the_project_metrics_and_brackets_them():
    from fairlatent.metrics.fairness import demographic_parity_difference, equalized_odds_difference

    g = np.random.default_rng(0)
    y, s = g.integers(0, 2, 500), g.integers(0, 2, 500)
    pred = ((y + (g.random(500) < 0.3 * s)) > 0).astype(int)
    r = group_fairness(y, pred, s, n_boot=200, seed=0)
    assert r["demographic_parity_difference"] == pytest.approx(demographic_parity_difference(y, pred, sensitive_features=s))
    assert r["equalized_odds_difference"] == pytest.approx(equalized_odds_difference(y, pred, sensitive_features=s))
    lo, hi = r["demographic_parity_difference_ci"]
    assert lo < r["demographic_parity_difference"] < hi and hi - lo < 0.3


def test_reweighing_makes_target_and_protected_independent():
    g = np.random.default_rng(0)
    s = g.integers(0, 2, 1000)
    y = (g.random(1000) < 0.2 + 0.5 * s).astype(int)
    w = reweighing_weights(y, s)
    rates = [np.average(y[s == k], weights=w[s == k]) for k in (0, 1)]
    assert rates[0] == pytest.approx(y.mean()) and rates[1] == pytest.approx(y.mean())
    assert w.sum() == pytest.approx(len(y))


def test_competitors_reduce_the_parity_gap_of_plain_logistic_regression():
    from fairlatent.tabular.evaluate import ml_efficacy

    g = np.random.default_rng(0)
    n = 600
    s = g.integers(0, 2, n)
    x = g.normal(s * 1.5, 1.0)
    y = (x + g.normal(0, 0.5, n) > 0.75).astype(int)
    df = pd.DataFrame({"x": x, "s": np.where(s, "p", "u"), "y": y.astype(str)})
    d = _data(df.iloc[:400].reset_index(drop=True), test=df.iloc[400:].reset_index(drop=True))
    plain = ml_efficacy(d, d.train, classifiers=("logistic_regression",), n_boot=0)["logistic_regression"]
    gap = plain["fairness"]["s"]["demographic_parity_difference"]
    assert gap > 0.4
    res = run_competitors(d, n_boot=20)
    for name in ("expgrad_dp", "threshold_optimizer", "reweighing"):
        assert res[name]["fairness"]["s"]["demographic_parity_difference"] < gap - 0.15, (name, res[name])
    assert 0.4 < res["expgrad_eo"]["accuracy"] <= 1.0 and np.isnan(res["threshold_optimizer"]["auc"])


# --- privacy --------------------------------------------------------------------------------------------


def test_distance_to_closest_record_flags_copies():
    g = np.random.default_rng(0)
    df = pd.DataFrame({"x": g.normal(size=100), "s": g.choice(list("pu"), 100), "y": g.choice(list("01"), 100)})
    d = _data(df.iloc[:60].reset_index(drop=True), test=df.iloc[60:].reset_index(drop=True))
    copies = distance_to_closest_record(d, d.train)
    assert copies["synthetic"]["exact_copies"] == 1.0 and copies["synthetic"]["median"] == 0.0
    assert copies["holdout"]["median"] > 0 and copies["median_ratio"] == 0.0


# --- fair conditional sampling ----------------------------------------------------------------------------


def _cells_table():
    rows = [("1", "p")] * 30 + [("1", "u")] * 10 + [("0", "p")] * 20 + [("0", "u")] * 40
    df = pd.DataFrame(rows, columns=["y", "s"])
    df.insert(0, "x", np.arange(len(df), dtype=float))
    return _data(df)


def test_cell_counts_by_hand():
    d = _cells_table()
    joint = independent_joint(d)
    assert joint[("1", "p")] == pytest.approx(0.2) and joint[("0", "u")] == pytest.approx(0.3)
    # union of T = max(30/.2, 10/.2, 20/.3, 40/.3) = 150 rows: cells 30, 30, 45, 45
    assert cell_counts(d, joint) == {("0", "p"): 25, ("0", "u"): 5, ("1", "p"): 0, ("1", "u"): 20}
    assert cell_counts(d, joint, mode="synthetic", n=100) == {("0", "p"): 30, ("0", "u"): 30, ("1", "p"): 20,
                                                             ("1", "u"): 20}
    with pytest.raises(FairlatentError, match="value not in the training data"):
        cell_counts(d, {("1", "zz"): 1.0})


def test_fair_synthetic_makes_the_union_independent():
    d = _cells_table()

    class Stub:
        def sample(self, m, conditions, seed=0):
            return pd.DataFrame({"x": np.zeros(m), "y": conditions["y"], "s": conditions["s"]})

    syn = fair_synthetic(Stub(), d)
    union = pd.concat([d.train, syn], ignore_index=True)
    assert len(syn) == 50 and risk_difference(d, union) == pytest.approx(0.0)
    assert risk_difference(d, d.train) == pytest.approx(0.6 - 0.2)


# --- the CLI --------------------------------------------------------------------------------------------


TINY = ["--set", "batch_size=20", "--set", "pac=5", "--set", "generator_dims=[16]", "--set", "discriminator_dims=[16]",
        "--set", "embedding_dim=8"]


@pytest.fixture(scope="module")
def table_csv(tmp_path_factory):
    g = np.random.default_rng(0)
    n = 160
    s = g.integers(0, 2, n)
    df = pd.DataFrame({"x": g.normal(s, 1.0).round(3), "c": g.choice(list("abc"), n), "s": np.where(s, "m", "f"),
                       "y": (g.random(n) < 0.3 + 0.4 * s).astype(int)})
    path = tmp_path_factory.mktemp("csv") / "table.csv"
    df.to_csv(path, index=False)
    return path


@pytest.mark.slow
def test_cli_fit_sample_evaluate(cli, table_csv, tmp_path):
    run = tmp_path / "run"
    res = cli(["tabular", "fit", "--data", table_csv, "--target", "y", "--protected", "s=m", "--out", run,
               "--epochs", "2", "--quiet", *TINY])
    assert res.code == 0, res
    assert (run / "generator.safetensors").is_file() and json.loads((run / "config.json").read_text())["done"]
    out = tmp_path / "rows.csv"
    res = cli(["tabular", "sample", "--run", run, "--n", "40", "--out", out, "--condition", "c=b", "--condition", "s=f"])
    assert res.code == 0, res
    rows = pd.read_csv(out, dtype=str)
    assert len(rows) == 40 and set(rows["c"]) == {"b"} and set(rows["s"]) == {"f"}
    fair = tmp_path / "fair.csv"
    assert cli(["tabular", "sample", "--run", run, "--n", "100", "--out", fair, "--fair"]).code == 0
    f = pd.read_csv(fair, dtype=str)
    cells = f.groupby(["y", "s"]).size() / len(f)
    py, ps = (f["y"] == "1").mean(), (f["s"] == "m").mean()
    assert cells[("1", "m")] == pytest.approx(py * ps, abs=0.02)
    rep_dir = tmp_path / "eval"
    res = cli(["tabular", "evaluate", "--run", run, "--out", rep_dir, "--n-boot", "10", "--no-competitors",
               "--classifiers", "logistic_regression,mlp"])
    assert res.code == 0, res
    rep = json.loads((rep_dir / "report.json").read_text())
    assert {"real", "synthetic", "augmented"} <= rep.keys()
    syn = rep["synthetic"]["ctgan"]
    assert 0 <= syn["fidelity"]["column_shapes"] <= 1 and set(syn["efficacy"]) == {"logistic_regression", "mlp"}
    assert "demographic_parity_difference_ci" in syn["efficacy"]["mlp"]["fairness"]["s"]
    assert rep["augmented"]["real+fair_synthetic"]["risk_difference"]["s"] == pytest.approx(0.0, abs=0.02)
    # a user's synthetic table with a category training never saw: reported, and still evaluated
    odd = rows.copy()
    odd.loc[0, "c"] = "zz"
    odd.loc[1:, "y"] = np.resize(["0", "1"], len(odd) - 1)
    odd.to_csv(tmp_path / "odd.csv", index=False)
    res = cli(["tabular", "evaluate", "--run", run, "--out", tmp_path / "eval2", "--synthetic", tmp_path / "odd.csv",
               "--n-boot", "0", "--no-competitors", "--no-fair-sampling"])
    assert res.code == 0, res
    rep = json.loads((tmp_path / "eval2" / "report.json").read_text())
    assert rep["synthetic"]["synthetic"]["unseen_categories"] == {"c": ["zz"]}
    assert rep["synthetic"]["synthetic"]["efficacy"]["logistic_regression"]["accuracy"] > 0


def test_cli_user_errors(cli, table_csv, tmp_path):
    (tmp_path / "empty.csv").write_text("")
    cli.user_error(["tabular", "fit", "--data", tmp_path / "empty.csv", "--target", "y", "--protected", "s=m", "--out",
                    tmp_path / "a"], "empty file")
    cli.user_error(["tabular", "fit", "--data", table_csv, "--target", "y", "--protected", "s", "--out", tmp_path / "b"],
                   "protected column 's' has two values", "name the privileged value")
    cli.user_error(["tabular", "fit", "--data", table_csv, "--target", "y", "--protected", "s=m", "--model", "vae",
                    "--out", tmp_path / "c"], "unknown tabular model 'vae'")
    cli.user_error(["tabular", "fit", "--data", table_csv, "--target", "y", "--protected", "s=m", "--out", tmp_path / "d",
                    "--set", "pacc=3"], "pacc: unknown key")
    cli.user_error(["tabular", "sample", "--run", tmp_path, "--n", "3", "--out", tmp_path / "x.csv"],
                   "not a fairlatent tabular run")
    mine = tmp_path / "thesis"
    mine.mkdir()
    (mine / "chapter1.tex").write_text("keep me")
    cli.user_error(["tabular", "fit", "--data", table_csv, "--target", "y", "--protected", "s=m", "--out", mine],
                   "holds files fairlatent did not write")
    assert sorted(p.name for p in mine.iterdir()) == ["chapter1.tex"]
    run = tmp_path / "run"
    assert cli(["tabular", "fit", "--data", table_csv, "--target", "y", "--protected", "s=m", "--out", run,
                "--epochs", "1", "--quiet", *TINY]).code == 0
    cli.user_error(["tabular", "sample", "--run", run, "--n", "3", "--out", tmp_path / "x.csv", "--condition", "c=q"],
                   "c='q'", "never saw")
    (tmp_path / "x.csv").write_text("mine")
    cli.user_error(["tabular", "sample", "--run", run, "--n", "3", "--out", tmp_path / "x.csv"], "--overwrite")
    assert (tmp_path / "x.csv").read_text() == "mine"
    pd.DataFrame({"x": [1.0], "c": ["a"]}).to_csv(tmp_path / "short.csv", index=False)
    cli.user_error(["tabular", "evaluate", "--run", run, "--out", tmp_path / "e", "--synthetic", tmp_path / "short.csv"],
                   "missing column(s) ['s', 'y']")
    assert not (tmp_path / "e").exists()  # nothing half-written


def _german_file(path, n=200, seed=0):
    from fairlatent.tabular.readers import GERMAN_COLUMNS, GERMAN_VALUES

    g = np.random.default_rng(seed)
    lines = []
    for _ in range(n):
        cells = []
        for c in GERMAN_COLUMNS:
            if c in GERMAN_VALUES:
                cells.append(g.choice(sorted(GERMAN_VALUES[c])))
            elif c == "credit":
                cells.append(str(g.integers(1, 3)))
            else:
                cells.append(str(g.integers(1, 5) if c not in ("duration", "credit_amount", "age")
                                 else g.integers(18, 70)))
        lines.append(" ".join(cells))
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.slow
def test_benchmark_runs_and_resumes_without_recomputing(cli, tmp_path):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    _german_file(data_dir / "german.data")
    out = tmp_path / "bench"
    argv = ["tabular", "benchmark", "--data-dir", data_dir, "--out", out, "--datasets", "german", "--epochs", "2",
            "--n-boot", "5", "--quiet", "--classifiers", "logistic_regression"]
    res = cli(argv)
    assert res.code == 0, res
    rows = json.loads((out / "summary.json").read_text())["rows"]
    methods = {r["method"] for r in rows}
    assert {"real", "ctgan", "fairgan", "fairgan_dp", "ctgan:real+fair_synthetic", "expgrad_dp", "expgrad_eo",
            "threshold_optimizer", "reweighing"} <= methods
    assert all(r["dataset"] == "german" and r["protected"] == "sex" for r in rows)
    stamps = {p.name: p.stat().st_mtime_ns for p in (out / "results").iterdir()}
    assert len(stamps) == 4  # ctgan, fairgan, fairgan_dp, the competitors
    fg = json.loads((out / "runs" / "german_fairgan_dp_s0" / "config.json").read_text())["config"]
    assert fg["fair_loss"] == "demographic_parity"
    assert cli(argv).code == 0  # a rerun reads the results back
    assert stamps == {p.name: p.stat().st_mtime_ns for p in (out / "results").iterdir()}
    cli.user_error(["tabular", "benchmark", "--data-dir", data_dir, "--out", tmp_path / "b2", "--datasets", "adult"],
                   "adult.data: not found")
    # `fairlatent benchmark tabular` is the same command; a rerun there reads the same results back
    assert cli(["benchmark", "tabular", *argv[2:]]).code == 0
    assert stamps == {p.name: p.stat().st_mtime_ns for p in (out / "results").iterdir()}
    cli.user_error(["tabular", "evaluate", "--run", out / "runs" / "german_ctgan_s0", "--out", tmp_path / "e",
                    "--classifiers", "svm"], "choose from")
    # a rerun that asks for other epochs does not silently reuse the old results
    cli.user_error([*argv[:9], "german=3", *argv[10:]], "german_ctgan_s0.json: a result of 2 epochs")
    assert stamps == {p.name: p.stat().st_mtime_ns for p in (out / "results").iterdir()}
    cli.user_error([*argv[:9], "german=0", *argv[10:]], "--epochs 'german=0'")
    cli.user_error([*argv, "--models", "ctgan,tvae"], "unknown model(s) ['tvae']")
    # the document and its JSON come from the same summary
    docs = tmp_path / "docs"
    assert cli([*argv, "--doc-dir", docs]).code == 0
    record = json.loads((docs / "tabular.json").read_text())
    assert record["rows"] == json.loads((out / "summary.json").read_text())["rows"]
    assert record["config"]["epochs"] == 2 and "--doc-dir" in record["command"]
    md = (docs / "tabular.md").read_text()
    real = next(a for a in record["aggregate"] if a["method"] == "real")
    assert f"{real['f1_lr']['mean']:.3f}" in md and "## Time per stage" in md
    assert record["aggregate"][0]["method"] == "real"  # real first, then the models, then the competitors


def test_aggregate_is_the_mean_and_sample_sd_over_seeds():
    from fairlatent.tabular.benchmark import aggregate

    rows = [{"dataset": "d", "method": "ctgan", "seed": s, "f1_lr": v, "dp_lr": float("nan"),
             "seconds": {"fit": 10.0 * (s + 1)}} for s, v in ((0, 0.5), (1, 0.7), (2, 0.9))]
    rows.append({"dataset": "d", "method": "real", "seed": 0, "f1_lr": 0.8})
    agg = aggregate(rows)
    assert [a["method"] for a in agg] == ["real", "ctgan"]
    ct = agg[1]
    assert ct["seeds"] == [0, 1, 2]
    assert ct["f1_lr"]["mean"] == pytest.approx(0.7) and ct["f1_lr"]["sd"] == pytest.approx(0.2)  # ddof 1
    assert "dp_lr" not in ct  # NaN everywhere: no figure rather than a NaN mean
    assert ct["seconds"]["fit"] == pytest.approx(20.0)
    assert agg[0]["f1_lr"] == {"mean": 0.8, "sd": None, "n": 1}


def test_targets_are_judged_from_the_rows():
    from fairlatent.tabular.benchmark import aggregate
    from fairlatent.tabular.benchmark_report import targets

    def row(method, **m):
        return {"dataset": "adult", "seed": 0, "method": method, **m}

    rows = [row("real", acc_lr=0.85, f1_mean=0.68, risk_difference=0.2, dp_lr=0.18),
            row("ctgan", f1_mean=0.62, risk_difference=0.2, acc_lr=0.8, dp_lr=0.2),
            row("ctgan:real+fair_synthetic", acc_lr=0.83, risk_difference=0.0, dp_lr=0.01),
            row("fairgan", acc_lr=0.84, risk_difference=0.11, dp_lr=0.15),
            row("expgrad_dp", acc_lr=0.82, dp_lr=0.02)]
    t = {x["target"].split(" ")[0]: x for x in targets({"rows": rows, "aggregate": aggregate(rows)})}
    assert t["CTGAN"]["met"] is True and t["CTGAN"]["ours"] == 0.62
    assert t["against"]["met"] is None  # the package comparison was not given
    assert t["ctgan:real+fair_synthetic"]["met"] is True
    assert t["fairgan"]["met"] is False and t["fairgan"]["ours"]["risk_ok"] is False
    pkg = {"seconds_per_epoch": {"ratio": 1.4}, "fidelity_at_least_equal": True, "efficacy_at_least_equal": True}
    t = targets({"rows": rows, "aggregate": aggregate(rows)}, pkg)
    assert t[1]["met"] is False  # 1.4× is short of 1.5×


def test_drop_protected_leaves_the_protected_columns_out_of_the_features():
    from fairlatent.tabular.evaluate import feature_encoder, ml_efficacy

    g = np.random.default_rng(0)
    n = 300
    s = g.integers(0, 2, n)
    df = pd.DataFrame({"x": g.normal(size=n), "c": g.choice(list("abc"), n), "s": np.where(s, "p", "u"),
                       "y": np.where(g.random(n) < 0.1 + 0.8 * s, "1", "0")})  # y follows s, nothing else
    d = _data(df.iloc[:200].reset_index(drop=True), test=df.iloc[200:].reset_index(drop=True))
    assert feature_encoder(d).fit_transform(d.train).shape[1] == 1 + 3 + 2
    assert feature_encoder(d, drop_protected=True).fit_transform(d.train).shape[1] == 1 + 3
    aware = ml_efficacy(d, d.train, classifiers=("logistic_regression",), n_boot=0)["logistic_regression"]
    blind = ml_efficacy(d, d.train, classifiers=("logistic_regression",), n_boot=0,
                        drop_protected=True)["logistic_regression"]
    assert aware["fairness"]["s"]["demographic_parity_difference"] > 0.6
    assert blind["fairness"]["s"]["demographic_parity_difference"] < 0.25
