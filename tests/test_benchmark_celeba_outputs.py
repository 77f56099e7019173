"""The CelebA benchmark's published outputs (fairlatent.benchmark.publish and the tables they share numbers
with): the machine-readable record, the AP-versus-DEO figure, the paired differences and the --doc-dir copy,
on results.json content built here (2 targets × 2 seeds × 3 methods, one a post-processing method)."""

import json
import struct

import numpy as np
import pytest

from fairlatent.benchmark.markdown import (ALL_TARGETS, METRICS, average_rows, finished_phrase, machine_line,
                                          paired_differences, results_markdown)
from fairlatent.benchmark.publish import (DOC_FIGURE_NAME, FIGURE_NAME, plot_ap_vs_deo, publish_docs,
                                          results_record, write_benchmark_outputs)
from fairlatent.errors import FairlatentError

METHODS = ["baseline", "latent_debias", "threshold_optimizer_eo"]
TARGETS = ["Smiling", "Wavy_Hair"]
SEEDS = [0, 1]


def _value(t: int, s: int, m: int, k: int) -> float:
    """A distinct, readable number per (target, seed, method, metric)."""
    return 10.0 * (k + 1) + 3.0 * t + 1.5 * s - 2.0 * m + 0.25 * t * s * (m + 1)


def fake_results() -> dict:
    runs = {}
    for ti, t in enumerate(TARGETS):
        for s in SEEDS:
            methods = {}
            for mi, m in enumerate(METHODS):
                res = {}
                for ki, k in enumerate(("AP", "DEO", "BA", "KL", "EOdds")):
                    if m == "threshold_optimizer_eo" and k in ("AP", "KL"):
                        continue  # decisions, not scores: the pipeline writes no AP/KL for it
                    v = _value(ti, s, mi, ki)
                    res[k] = {"median": v, "lo": v - 1.0, "hi": v + 2.0}
                res["threshold"] = None if m == "threshold_optimizer_eo" else 0.5
                methods[m] = res
            runs[f"{t}/seed{s}"] = {"target": t, "seed": s, "category": None, "cells": {}, "methods": methods,
                                    "timings_s": {"baseline": 10.0, "total": 30.0}}
    return {"config": {"methods": METHODS, "seeds": SEEDS, "seed_scope": "all", "protected": "Male", "size": 64},
            "runs": runs, "failed": {}, "skew": {}, "command": "fairlatent benchmark celeba --seeds 0,1"}


def test_record_has_the_tables_numbers_and_null_where_a_metric_does_not_apply():
    results = fake_results()
    rec = results_record(results)
    assert rec["command"] == "fairlatent benchmark celeba --seeds 0,1"
    assert rec["config"] == results["config"]
    assert len(rec["runs"]) == len(TARGETS) * len(SEEDS) * len(METHODS)
    assert {(e["target"], e["seed"], e["method"]) for e in rec["runs"]} == {
        (t, s, m) for t in TARGETS for s in SEEDS for m in METHODS}
    assert all(e["split"] == "test" and set(e["metrics"]) == {"AP", "DEO", "BA", "KL", "EOdds"} for e in rec["runs"])
    # one cell: Wavy_Hair, seed 1, latent_debias, DEO (row of the per-target table)
    cell = next(e for e in rec["runs"] if (e["target"], e["seed"], e["method"]) == ("Wavy_Hair", 1, "latent_debias"))
    v = _value(1, 1, 1, 1)
    assert cell["metrics"]["DEO"] == {"median": v, "lo": v - 1.0, "hi": v + 2.0}
    md = results_markdown(results)
    row = next(line for line in md.splitlines() if line.startswith("| Wavy_Hair/seed1 | latent_debias |"))
    deo_cell = row.split(" | ")[3]  # | key | method | AP | DEO | ...
    assert deo_cell == f"{v:.1f} [{v - 1.0:.1f}, {v + 2.0:.1f}]"
    # the post-processing method: null AP and KL, numbers for the rest
    post = next(e for e in rec["runs"] if (e["target"], e["seed"], e["method"]) == ("Smiling", 0, "threshold_optimizer_eo"))
    assert post["metrics"]["AP"] is None and post["metrics"]["KL"] is None
    assert post["metrics"]["EOdds"]["median"] == _value(0, 0, 2, 4)
    # strict JSON: null, not NaN, and it round-trips
    assert json.loads(json.dumps(rec, allow_nan=False)) == rec


def test_record_turns_a_nan_median_into_null_and_names_a_broken_run():
    results = fake_results()
    results["runs"]["Smiling/seed0"]["methods"]["baseline"]["DEO"]["median"] = float("nan")
    rec = results_record(results)
    e = next(e for e in rec["runs"] if (e["target"], e["seed"], e["method"]) == ("Smiling", 0, "baseline"))
    assert e["metrics"]["DEO"] is None and e["metrics"]["AP"] is not None
    results["runs"]["Wavy_Hair/seed1"] = {"target": "Wavy_Hair", "seed": 1}
    with pytest.raises(FairlatentError, match=r"results.json: runs\['Wavy_Hair/seed1'\] has no 'methods'"):
        results_record(results)
    with pytest.raises(FairlatentError, match="no 'config'"):
        results_record({"runs": {}})


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_ap_vs_deo_plot_has_one_point_per_method_and_seed(tmp_path, monkeypatch):
    import matplotlib.axes

    offsets = []
    real_scatter = matplotlib.axes.Axes.scatter

    def scatter(self, x, y, *a, **kw):  # record what each call draws
        coll = real_scatter(self, x, y, *a, **kw)
        offsets.append((kw.get("label"), coll.get_offsets().copy()))
        return coll

    monkeypatch.setattr(matplotlib.axes.Axes, "scatter", scatter)
    results = fake_results()
    path = tmp_path / "fig.png"
    n = plot_ap_vs_deo(results, path)
    # baseline and latent_debias × 2 seeds; the post-processing method has no AP, hence no point
    assert n == 4
    assert sorted(lbl for lbl, _ in offsets) == ["baseline (reference)", "latent_debias"]
    assert sum(len(o) for _, o in offsets) == 4
    base = dict(offsets)["baseline (reference)"]
    # seed 0's point: mean over the two targets of (DEO, AP)
    assert base[0].tolist() == pytest.approx([np.mean([_value(t, 0, 0, 1) for t in (0, 1)]),
                                              np.mean([_value(t, 0, 0, 0) for t in (0, 1)])])
    data = path.read_bytes()
    w, h = _png_size(data)
    assert len(data) > 1000 and w > 100 and h > 100
    # nothing to draw: no file, and a stale one is removed
    empty = {**results, "runs": {}}
    assert plot_ap_vs_deo(empty, path) == 0 and not path.exists()


def test_paired_difference_is_the_mean_and_sd_of_the_per_seed_differences():
    results = fake_results()
    diffs = paired_differences(results["runs"], METHODS)
    # Wavy_Hair, latent_debias − baseline, DEO, per seed by hand
    d = [_value(1, s, 1, 1) - _value(1, s, 0, 1) for s in SEEDS]
    cell = diffs["Wavy_Hair"]["latent_debias"]["DEO"]
    assert cell["n"] == 2
    assert cell["mean"] == pytest.approx(np.mean(d))
    assert cell["sd"] == pytest.approx(np.std(d, ddof=1)) and cell["sd"] > 0
    # a metric that does not apply to the method: no difference
    assert diffs["Smiling"]["threshold_optimizer_eo"]["AP"] == {"mean": None, "sd": None, "n": 0}
    assert diffs["Smiling"]["threshold_optimizer_eo"]["EOdds"]["n"] == 2
    # averaged over targets: per seed the mean difference over targets, then over seeds
    per_seed = [np.mean([_value(t, s, 1, 4) - _value(t, s, 0, 4) for t in (0, 1)]) for s in SEEDS]
    avg = diffs[ALL_TARGETS]["latent_debias"]["EOdds"]
    assert avg["mean"] == pytest.approx(np.mean(per_seed)) and avg["sd"] == pytest.approx(np.std(per_seed, ddof=1))
    assert "baseline" not in diffs["Smiling"]
    md = results_markdown(results)
    assert "## Paired differences against the baseline" in md
    section = md.split("## Paired differences")[1].split("\n## ")[0]
    row = next(line for line in section.splitlines() if line.startswith("| Wavy_Hair | latent_debias | 2 |"))
    assert f"{np.mean(d):+.1f} ± {np.std(d, ddof=1):.1f}" in row
    assert "EOdds ↓" in md and "EOdds Δ↓" in md
    assert f"| {ALL_TARGETS} | baseline | 2 |" in md


def with_extra_attribute(results: dict) -> dict:
    """``results`` as a run with ``protected_extra = ["Young"]`` records it: every method's DEO/BA/EOdds per
    protected attribute (Male's are its headline figures), the paired differences to the baseline per attribute
    (Young's ΔDEO interval below 0 on seed 0, across 0 on seed 1), and latent_debias_multi's edits in one run."""
    results["config"]["protected_extra"] = ["Young"]
    for key, r in results["runs"].items():
        for mi, (m, res) in enumerate(r["methods"].items()):
            young = {k: {"median": res[k]["median"] + 5.0, "lo": res[k]["lo"], "hi": res[k]["hi"] + 7.0}
                     for k in ("DEO", "BA", "EOdds")}
            res["by_protected"] = {"Male": {k: res[k] for k in ("DEO", "BA", "EOdds")}, "Young": young}
            if m != "baseline":
                lo, hi = (-3.0, -1.0) if r["seed"] == 0 else (-2.0, 1.0)
                res["by_protected_vs_baseline"] = {
                    a: {"DEO": {"median": (lo + hi) / 2 - mi, "lo": lo - mi, "hi": hi - mi, "p_better": 0.9}}
                    for a in ("Male", "Young")}
    results["runs"]["Smiling/seed0"]["latent"] = {
        "h_t_heldout_acc": 0.9, "h_g_heldout_acc": 0.9, "cos_theta": 0.1, "flip_rate_g": 0.8, "keep_rate_t": 0.9,
        "generated_label_rates": {"cells": {"t0_g0": 1, "t0_g1": 1, "t1_g0": 1, "t1_g1": 1}}, "multi_edits": {"Young": {
        "flip": ["Young"], "keep": ["Male"], "flip_rate": {"Young": 0.81},
        "keep_rate": {"Smiling": 0.9, "Male": 0.95}, "did_all_rate": 0.7}}}
    return results


def test_every_protected_attribute_has_its_table_and_record():
    results = with_extra_attribute(fake_results())
    md = results_markdown(results)
    section = md.split("## Every protected attribute (test split)")[1].split("\n## ")[0]
    # Wavy_Hair, latent_debias, Young: DEO mean ± sd of its two seeds; ΔDEO: seed 0 below 0, seed 1 across it
    deo = [_value(1, s, 1, 1) + 5.0 for s in SEEDS]
    row = next(line for line in section.splitlines() if line.startswith("| Wavy_Hair | latent_debias | Young | 2 |"))
    cells = row.split(" | ")
    assert cells[4] == f"{np.mean(deo):.1f} ± {np.std(deo, ddof=1):.1f}"
    assert cells[-1].rstrip(" |") == f"{np.mean([-3.0, -1.5]):+.1f} ± {np.std([-3.0, -1.5], ddof=1):.1f} (↓1 ↑0 of 2)"
    # the baseline has no difference to itself
    base = next(line for line in section.splitlines() if line.startswith("| Smiling | baseline | Male | 2 |"))
    assert base.endswith("| – |")
    assert "| Smiling/seed0 | Young | Young 81% | Smiling 90%, Male 95% | 70% |" in section
    # the record carries the same numbers, the main attribute's equal to its headline metrics
    rec = results_record(results)
    e = next(e for e in rec["runs"] if (e["target"], e["seed"], e["method"]) == ("Wavy_Hair", 1, "latent_debias"))
    assert e["by_protected"]["Young"]["DEO"]["median"] == deo[1]
    assert e["by_protected"]["Male"]["DEO"] == e["metrics"]["DEO"]
    # without protected_extra neither the section nor the record's key
    plain = fake_results()
    assert "## Every protected attribute" not in results_markdown(plain)
    assert all("by_protected" not in e for e in results_record(plain)["runs"])


def test_celeba_results_show_each_runs_preflight_verdict():
    results = fake_results()
    assert "## Pre-flight per run" not in results_markdown(results)  # no latent stages, no verdicts
    results["runs"]["Smiling/seed1"]["preflight"] = {
        "passed": False, "failed": ["f_t_cell_acc", "cell_rate[t1_g0]"], "blocking": ["f_t_cell_acc"],
        "by_method": {"latent_debias": False, "latent_debias_verified": False}}
    results["runs"]["Wavy_Hair/seed0"]["preflight"] = {
        "passed": True, "failed": [], "blocking": [], "by_method": {"latent_debias": True}}
    section = results_markdown(results).split("## Pre-flight per run")[1].split("\n## ")[0]
    assert "| Smiling/seed1 | f_t_cell_acc | cell_rate[t1_g0] | – |" in section
    assert "| Wavy_Hair/seed0 | – | – | latent_debias |" in section


def test_outputs_in_the_benchmark_folder_and_the_doc_copy(tmp_path):
    results = fake_results()
    out, docs = tmp_path / "bench", tmp_path / "docs"
    out.mkdir()
    paths = write_benchmark_outputs(results, out)
    assert paths["figure"] == out / FIGURE_NAME and paths["figure"].stat().st_size > 0
    assert json.loads((out / "celeba.json").read_text()) == results_record(results)
    assert f"]({FIGURE_NAME})" in results_markdown(results, figure=FIGURE_NAME)
    assert "](" not in results_markdown(results)  # no figure, no link
    # a fresh doc folder: results.md with the figure under its documentation name
    got = publish_docs(results, out, docs)
    assert got["md"].read_text() == results_markdown(results, figure=DOC_FIGURE_NAME)
    assert (docs / DOC_FIGURE_NAME).read_bytes() == (out / FIGURE_NAME).read_bytes()
    assert (docs / "celeba.json").read_text() == (out / "celeba.json").read_text()
    # an existing document keeps its text above '---' + '## Results'; the results go below, one level down
    (docs / "celeba.md").write_text("# CelebA\n\nOur discussion.\n\n---\n\n## Results (old)\n\nold tables\n")
    publish_docs(results, out, docs)
    text = (docs / "celeba.md").read_text()
    assert text.startswith("# CelebA\n\nOur discussion.\n\n---\n\n## Results (")
    assert "old tables" not in text and "# CelebA benchmark results" not in text
    assert "\n### Paired differences against the baseline" in text and "\n## Paired differences" not in text
    assert f"]({DOC_FIGURE_NAME})" in text


def test_a_second_benchmark_publishes_beside_the_main_one_under_its_own_name(tmp_path):
    results = fake_results()
    out, docs = tmp_path / "bench", tmp_path / "docs"
    out.mkdir()
    publish_docs(results, out, docs)
    main = {p.name: p.read_bytes() for p in docs.iterdir()}
    other = fake_results()
    other["command"] = "fairlatent benchmark celeba --targets Smiling --doc-name celeba_ext"
    out2 = tmp_path / "bench2"
    out2.mkdir()
    got = publish_docs(other, out2, docs, "celeba_ext")
    assert {p.name for p in got.values()} == {"celeba_ext.md", "celeba_ext.json", "celeba_ext_ap_vs_deo.png"}
    assert got["md"].read_text() == results_markdown(other, figure="celeba_ext_ap_vs_deo.png")
    assert json.loads(got["json"].read_text())["command"] == other["command"]
    assert {p.name: p.read_bytes() for p in docs.iterdir() if p.name in main} == main  # the main one untouched
    with pytest.raises(FairlatentError, match=r"--doc-name '\.\./x'"):
        publish_docs(other, out2, docs, "../x")


def test_machine_line_counts_the_runs_of_each_cpu_and_those_recorded_before_the_field():
    results = {"machine": {"cpu": "Intel Xeon", "cores": 2, "torch_threads": 1, "torch": "2.13.0"},
               "runs": {"A/seed0": {"machine": {"cpu": "AMD EPYC"}}, "A/seed1": {"machine": {"cpu": "Intel Xeon"}},
                        "B/seed0": {"machine": {"cpu": "Intel Xeon"}}, "B/seed1": {}},
               "skew": {"A/skew0.5": {"machine": {"cpu": "AMD EPYC"}}}}
    line = machine_line(results)
    assert line.startswith("Machine: Intel Xeon, 2 cores, torch threads 1")
    assert line.endswith("Runs by CPU: AMD EPYC 2, Intel Xeon 2, not recorded 1.")
    # records that all predate the field say nothing about the runs' CPUs rather than "not recorded" alone
    old = {"machine": results["machine"], "runs": {"A/seed0": {}}}
    assert "Runs by CPU" not in machine_line(old)
    # one model string, two instruction sets: counted apart, since their results differ in the bits
    epycs = {"machine": {"cpu": "AMD EPYC", "cpu_capability": "AVX2", "cores": 2},
             "runs": {"A/seed0": {"machine": {"cpu": "AMD EPYC", "cpu_capability": "AVX2"}},
                      "A/seed1": {"machine": {"cpu": "AMD EPYC", "cpu_capability": "AVX512"}},
                      "A/seed2": {"machine": {"cpu": "AMD EPYC"}}}}
    line = machine_line(epycs)
    assert line.startswith("Machine: AMD EPYC (AVX2), 2 cores")
    assert line.endswith("Runs by CPU: AMD EPYC 1, AMD EPYC (AVX2) 1, AMD EPYC (AVX512) 1.")


def test_finished_phrase_counts_runs_and_keeps_the_wall_time_without_claiming_progress():
    assert finished_phrase(2, 3, {}) == "2 of 3"
    assert finished_phrase(3, 3, {"total_s": 90.0}).startswith("3 of 3; wall time of the last invocation 1.5 min")


def test_which_group_moved_orients_each_run_by_its_baseline_and_averages_per_seed_then_over_seeds():
    """The "Which group moved" table: per run the group with the lower baseline TPR is "low" (group 0 on
    Smiling, group 1 on Wavy_Hair here, so a plain per-group average would mix them); per seed the mean over
    targets of the method's rate minus the baseline's, in points, then mean ± sd over seeds. The record
    carries each entry's rates as they are."""
    results = fake_results()
    base_tpr = {"Smiling": (0.2, 0.6), "Wavy_Hair": (0.7, 0.3)}
    for key, r in results["runs"].items():
        t, s = r["target"], r["seed"]
        lo_g = 0 if t == "Smiling" else 1
        for m, res in r["methods"].items():
            tpr = list(base_tpr[t])
            fpr = [0.1, 0.2]
            if m == "latent_debias":  # raises the low group's TPR by 10 + s points, lowers the high one's by 4
                tpr[lo_g] += 0.10 + 0.01 * s
                tpr[1 - lo_g] -= 0.04
                fpr[lo_g] += 0.02
            res["rates_by_group"] = {str(a): {"n": 100, "positives": 40, "TPR": tpr[a], "FPR": fpr[a],
                                              "selection_rate": 0.3} for a in (0, 1)}
    md = results_markdown(results)
    section = md.split("## Which group moved")[1].split("\n## ")[0]
    row = next(line for line in section.splitlines() if line.startswith("| latent_debias | 2 |"))
    per_seed_low = [10.0 + s for s in SEEDS]  # the same on both targets, so the target mean is that
    assert row == (f"| latent_debias | 2 | {np.mean(per_seed_low):+.1f} ± {np.std(per_seed_low, ddof=1):.1f} "
                   "| -4.0 ± 0.0 | +2.0 ± 0.0 | +0.0 ± 0.0 |")
    assert "levelling down" in section and "| baseline |" not in section
    rec = results_record(results)
    entry = next(e for e in rec["runs"] if (e["target"], e["seed"], e["method"]) == ("Wavy_Hair", 1, "latent_debias"))
    assert entry["rates_by_group"]["1"]["TPR"] == pytest.approx(0.3 + 0.11)
    # records written before the rates existed: no section at all, rather than a table of dashes
    for r in results["runs"].values():
        for res in r["methods"].values():
            del res["rates_by_group"]
    assert "Which group moved" not in results_markdown(results)


def test_relative_change_is_given_only_against_a_baseline_that_shows_as_nonzero():
    """A baseline KL of 1e-17 nats printed "+22287568439148756 %" beside "0.02" in a run of the test preset: a
    change relative to a baseline that shows as 0.00 is left out, one against 0.10 is given."""
    def run(deo: float, kl: float) -> dict:
        return {k: {"median": v, "lo": v, "hi": v} for k, v in zip(METRICS, (50.0, deo, -10.0, kl, 20.0))}

    runs = {"a/seed0": {"methods": {"baseline": run(10.0, 2e-17), "latent_debias": run(5.0, 0.02)}},
            "b/seed0": {"methods": {"baseline": run(30.0, 0.10), "latent_debias": run(15.0, 0.16)}}}
    one = {"a/seed0": runs["a/seed0"]}
    rows = {m: dict(zip(METRICS, cells)) for m, _, cells in average_rows(one, ["baseline", "latent_debias"])}
    assert rows["latent_debias"]["KL"] == "0.02 (–)" and rows["latent_debias"]["DEO"] == "5.00 (-50 %)"
    rows = {m: dict(zip(METRICS, cells)) for m, _, cells in average_rows(runs, ["baseline", "latent_debias"])}
    assert rows["latent_debias"]["KL"] == "0.09 (+80 %)" and rows["baseline"]["KL"] == "0.05"
