"""`fairlatent demo --fast` end to end: the report's shape, stage caching on a second run, invalidation of
only what a config change touches, the latent-edit invariants measured in the run, and HTML escaping."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from fairlatent.cli.pipeline_commands import _builtin_config
from fairlatent.errors import FairlatentError
from fairlatent.pipeline.run import Pipeline
from fairlatent.report import build_report

METRICS = ("AP", "DEO", "BA", "KL", "DP", "EOdds", "worst_group_acc")


@pytest.fixture(scope="module")
def fast_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("demo") / "fast"
    pipe = Pipeline(_builtin_config("demo_fast"), run_dir, progress=False)
    report = pipe.run()  # writes report.json; report.html is the report layer's, as `fairlatent demo` does it
    build_report(run_dir, console=Console(file=io.StringIO(), width=120))
    return run_dir, pipe, report


def test_report_json_shape_and_intervals(fast_run):
    run_dir, _, report = fast_run
    on_disk = json.loads((run_dir / "report.json").read_text())
    assert on_disk["methods"].keys() == report["methods"].keys() == {"baseline", "reweighting", "latent_debias"}
    assert on_disk["config"]["data"]["target"] == "Wearing_Hat"
    # every interval is recomputed from the scores the evaluate stage saved, with the run's threshold and seed:
    # the report shows exactly what the bootstrap of those scores gives (not merely an ordered triple)
    from fairlatent.metrics.bootstrap import bootstrap_metrics

    ev = _builtin_config("demo_fast").evaluation
    saved = np.load(fast_run[1].stages.results["evaluate"].dir / "scores.npz")
    for method, res in on_disk["methods"].items():
        for split in ("test", "test_balanced", "val"):
            again = bootstrap_metrics(saved[f"_y/{split}"], saved[f"{method}/{split}"],
                                      sensitive_features=saved[f"_g/{split}"], threshold=res["threshold"],
                                      n_boot=ev.n_boot, ci=ev.ci, seed=on_disk["config"]["seed"])
            for m in METRICS:
                for q in ("lo", "median", "hi"):
                    assert res[split][m][q] == pytest.approx(again[m][q], rel=1e-9, abs=1e-9), (method, split, m, q)
            assert res[split]["AP"]["hi"] > res[split]["AP"]["lo"]  # a few hundred test rows do vary
    lat = on_disk["latent"]
    for key in ("h_t_heldout_acc", "h_g_heldout_acc", "cos_theta", "pairs", "flip_rate_g", "keep_rate_t"):
        assert key in lat
    assert lat["pairs"] == 300 and -1 <= lat["cos_theta"] <= 1
    assert set(on_disk["timings_s"]) >= {"data", "gan", "labeler", "latents", "hyperplanes", "pairs",
                                          "train_baseline", "evaluate", "total"}


def test_validation_check_pairs_each_method_with_the_baseline_on_the_validation_split(fast_run):
    """The validation figures are the bootstrap of the saved validation scores at each method's threshold, the
    paired ΔDEO is recomputed from those resamples, and each method's verdict follows its interval."""
    from fairlatent.metrics.bootstrap import bootstrap_metrics, paired_difference

    run_dir, pipe, _ = fast_run
    on_disk = json.loads((run_dir / "report.json").read_text())
    ev, seed = _builtin_config("demo_fast").evaluation, on_disk["config"]["seed"]
    saved = np.load(pipe.stages.results["evaluate"].dir / "scores.npz")
    assert saved["_y/val"].size == on_disk["data"]["cells"]["val"]["n"]
    samples = {m: bootstrap_metrics(saved["_y/val"], saved[f"{m}/val"], sensitive_features=saved["_g/val"],
                                    threshold=on_disk["methods"][m]["threshold"], n_boot=ev.n_boot, ci=ev.ci,
                                    seed=seed, return_samples=True)[1] for m in on_disk["methods"]}
    check = on_disk["validation_check"]
    assert check["methods"].keys() == {"reweighting", "latent_debias"}
    for m, row in check["methods"].items():
        again = paired_difference(samples[m], samples["baseline"], ci=ev.ci)["DEO"]
        assert row["DEO"] == on_disk["methods"][m]["paired_vs_baseline"]["val"]["DEO"]
        for q in ("lo", "median", "hi"):
            assert row["DEO"][q] == pytest.approx(again[q], rel=1e-9, abs=1e-9), (m, q)
        expected = "raised" if again["lo"] > 0 else "lowered" if again["hi"] < 0 else "unchanged"
        assert row["verdict"] == expected
    assert check["raised"] == [m for m, r in check["methods"].items() if r["verdict"] == "raised"]


def test_edit_kept_the_target_score_and_synthetic_set_is_paired(fast_run):
    run_dir, _, report = fast_run
    # measured inside the run on the float64 latents: |w_t·(z' - z)| must vanish
    assert report["latent"]["edits"]["complementary"]["latent_target_score_change"] < 1e-4
    from fairlatent.data.dataset import load_dataset

    pairs = load_dataset(run_dir / "pairs" / "complementary")
    n = len(pairs) // 2
    t = pairs.labels("Wearing_Hat")
    g = pairs.labels("Eyeglasses")
    assert np.array_equal(t[:n], t[n:])  # G(z) and G(z') share z's target label
    assert np.array_equal(g[:n], 1 - g[n:])  # and carry opposite protected labels
    assert pairs.latents is not None and pairs.latents.shape == (2 * n, 128)


def test_second_run_skips_everything_and_a_change_reruns_only_downstream(fast_run):
    run_dir, _, report = fast_run
    again = Pipeline(_builtin_config("demo_fast"), run_dir, progress=False)
    again.run()
    assert all(r.skipped for r in again.stages.results.values())
    cfg = _builtin_config("demo_fast")
    cfg.evaluation.n_boot = 40
    changed = Pipeline(cfg, run_dir, progress=False)
    changed.run()
    ran = {name for name, r in changed.stages.results.items() if not r.skipped}
    assert ran == {"evaluate"}


def test_latent_pair_filter_retrains_latent_debias_on_the_pairs_it_names(fast_run, tmp_path):
    """latent_debias trains on the verified pairs by default; latent.pair_filter = "all" (the paper) retrains
    it, and only it, on every pair: the stage's key names the pair set, not only the method."""
    import shutil

    from fairlatent.data.dataset import load_dataset

    run_dir, pipe, _ = fast_run
    assert pipe.cfg.latent.pair_filter == "verified" and "latent_debias" in pipe.cfg.methods
    assert (run_dir / "pairs" / "complementary_verified").is_dir()  # written because latent_debias trains on it
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    cfg = _builtin_config("demo_fast")
    cfg.latent.pair_filter = "all"
    again = Pipeline(cfg, copy, progress=False)
    again.run()
    ran = {name for name, r in again.stages.results.items() if not r.skipped}
    assert "train_latent_debias" in ran and not ran & {"gan", "labeler", "latents", "hyperplanes", "train_baseline",
                                                       "train_reweighting"}
    n_all = len(load_dataset(copy / "pairs" / "complementary"))
    n_verified = len(load_dataset(run_dir / "pairs" / "complementary_verified"))
    assert n_verified < n_all  # the two settings train on different sets
    assert again.cfg.method("latent_debias").pair_set == "complementary"


def test_verified_pairs_are_the_agreeing_pairs_whose_protected_label_flipped(fast_run, tmp_path):
    """Listing latent_debias_verified writes complementary_verified: exactly the pairs on which f_t held and
    f_g flipped, re-read here from the labels the latents stage and the pairs stage gave the images."""
    import shutil

    from fairlatent.data.dataset import load_dataset

    run_dir, _, _ = fast_run
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    cfg = _builtin_config("demo_fast")
    cfg.methods = [*cfg.methods, "latent_debias_verified", "domain_independent", "domain_discriminative",
                   "threshold_optimizer_tpr", "latent_debias_domain"]
    pipe = Pipeline(cfg, copy, progress=False)
    report = pipe.run()
    ran = {name for name, r in pipe.stages.results.items() if not r.skipped}
    assert {"pairs", "train_latent_debias_verified"} <= ran and "gan" not in ran and "train_baseline" not in ran
    stats = pipe.stages.results["pairs"].outputs["complementary"]
    everything = load_dataset(copy / "pairs" / "complementary")
    agreeing = load_dataset(copy / "pairs" / "complementary_filtered")
    verified = load_dataset(copy / "pairs" / "complementary_verified")
    assert 0 < len(verified) // 2 == stats["verified_kept"] <= stats["agreement_kept"] == len(agreeing) // 2
    assert set(verified.ids) <= set(agreeing.ids)
    # the labelers' reading of each pair's two images, recomputed from the labeler on the stored images
    labelers = pipe._labelers()
    n = len(everything) // 2
    t_all, g_all = pipe._label(pipe._score(np.asarray(everything.images), labelers), labelers)
    want = np.flatnonzero((t_all[:n] == t_all[n:]) & (g_all[:n] != g_all[n:]))
    got = sorted(int(i[1:]) for i in verified.ids if i.startswith("z") and not i.startswith("zp"))
    assert got == want.tolist()
    assert "latent_debias_verified" in report["methods"]
    # domain-dependent target planes (one per protected group), and an edit that holds each latent's target
    # score on its new group's plane
    hp = pipe.stages.results["hyperplanes"].outputs
    assert set(hp["h_t_by_group"]) == {"0", "1"}
    dom = pipe.stages.results["pairs"].outputs["complementary_domain"]
    assert dom["latent_target_score_change"] < 1e-3 and 0 <= dom["flip_rate_g"] <= 1
    dpairs = load_dataset(copy / "pairs" / "complementary_domain")
    half = len(dpairs) // 2
    np.testing.assert_array_equal(dpairs.labels("Eyeglasses")[:half], 1 - dpairs.labels("Eyeglasses")[half:])
    assert "latent_debias_domain" in report["methods"]
    # domain-independent training through the pipeline: two heads, one per protected group
    from fairlatent.models.classifier import load_classifier

    di = load_classifier(pipe.stages.results["train_domain_independent"].outputs["path"])
    assert di.module.domains == 2 and di.config["domain_attribute"] == "Eyeglasses"
    assert "paired_vs_baseline" in report["methods"]["domain_independent"]
    dd = load_classifier(pipe.stages.results["train_domain_discriminative"].outputs["path"])
    assert dd.module.discriminative and dd.config["domain_head"] == "discriminative" and dd.config["sample_weighted"]
    assert "paired_vs_baseline" in report["methods"]["domain_discriminative"]
    # post-processing: decisions from the baseline's scores; AP and KL absent, not made up
    to = report["methods"]["threshold_optimizer_tpr"]
    assert to["post_processing"]["constraints"] == "true_positive_rate_parity"
    assert "AP" not in to["test"] and "KL" not in to["test"] and "DEO" in to["test"]
    assert set(to["paired_vs_baseline"]["test"]) >= {"DEO", "BA"} and "AP" not in to["paired_vs_baseline"]["test"]
    buf = io.StringIO()
    build_report(copy, console=Console(file=buf, width=200))
    html = (copy / "report.html").read_text()
    assert "threshold_optimizer_tpr" in html
    # the rates by group are what the report's gaps are spreads of, at each method's own threshold (scores)
    # or as decided (post-processing): on the whole split, DEO = |TPR gap| and DP = |selection gap|, in points
    from fairlatent.pipeline.summary import group_rates

    rates, why = group_rates(report, copy)
    assert why is None and set(rates) == {"test", "test_balanced"}
    for split, by_method in rates.items():
        assert set(by_method) == set(report["methods"])
        for m, by_group in by_method.items():
            assert set(by_group) == {0, 1}
            for metric, key in (("DEO", "TPR"), ("DP", "selection_rate")):
                gap = abs(by_group[0][key] - by_group[1][key]) * 100
                assert gap == pytest.approx(report["methods"][m][split][metric]["full"], abs=1e-9), (split, m, metric)
    assert "rates by group at each method's threshold" in buf.getvalue()
    assert "<th>P(ŷ=1) Eyeglasses=1</th>" in html and html.count("<th>TPR Eyeglasses=0</th>") == 2  # both splits


def test_cyclegan_augment_trains_on_every_real_image_translated_to_the_other_group(fast_run, tmp_path):
    import shutil

    from fairlatent.data.dataset import load_dataset
    from fairlatent.models.classifier import load_classifier

    run_dir, _, _ = fast_run
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    cfg = _builtin_config("demo_fast")
    cfg.methods = [*cfg.methods, "cyclegan_augment"]
    cfg.translator = cfg.translator.model_validate({"steps": 40, "width": 4, "n_blocks": 1, "checkpoint_every": 20})
    pipe = Pipeline(cfg, copy, progress=False)
    report = pipe.run()
    ran = {name for name, r in pipe.stages.results.items() if not r.skipped}
    assert {"translator", "translations", "train_cyclegan_augment", "evaluate"} <= ran
    assert not ran & {"gan", "labeler", "train_baseline", "pairs"}
    real = load_dataset(pipe.stages.results["data"].outputs["path"])
    tr = real.split_indices("train")
    tx = load_dataset(copy / "translations" / "dataset")
    # every real training image, its target label kept, its protected label the other group's
    assert len(tx) == len(tr) and (tx.split_indices("train") == np.arange(len(tr))).all()
    np.testing.assert_array_equal(tx.labels("Wearing_Hat"), real.labels("Wearing_Hat", tr))
    np.testing.assert_array_equal(tx.labels("Eyeglasses"), 1 - real.labels("Eyeglasses", tr))
    # the rates the stage reports, recomputed from the labelers on the stored images
    labelers = pipe._labelers()
    t_x, g_x = pipe._label(pipe._score(np.asarray(real.images[tr]), labelers), labelers)
    t_tx, g_tx = pipe._label(pipe._score(np.asarray(tx.images), labelers), labelers)
    stats = report["translations"]
    assert stats["flip_rate_g"] == pytest.approx(float((g_tx != g_x).mean()))
    assert stats["keep_rate_t"] == pytest.approx(float((t_tx == t_x).mean()))
    assert [r["name"] for r in stats["quality"]] == ["T(x) into Eyeglasses=0", "T(x) into Eyeglasses=1"]
    clf = load_classifier(pipe.stages.results["train_cyclegan_augment"].outputs["path"])
    assert clf.config["train_rows"] == 2 * len(tr)
    assert "paired_vs_baseline" in report["methods"]["cyclegan_augment"]
    assert report["files"]["translations"] == "translations/dataset"
    build_report(copy, console=Console(file=io.StringIO(), width=120))
    html = (copy / "report.html").read_text()
    assert "Image-space counterfactuals (CycleGAN)" in html and 'alt="CycleGAN translations"' in html


def test_report_html_is_self_contained_and_escapes_user_strings(fast_run):
    run_dir, _, report = fast_run
    html = (run_dir / "report.html").read_text()
    assert "data:image/png;base64," in html
    assert not re.search(r"""(src|href)=["'](?!data:)""", html)  # nothing loaded from outside the file
    from fairlatent.report.build import render_html

    evil = json.loads(json.dumps(report))
    evil["target"] = "<script>alert(1)</script>"
    out = render_html(evil, {"real_samples": ""}, run_dir="<b>dir</b>")
    assert "<script>alert(1)</script>" not in out and "&lt;script&gt;alert(1)&lt;/script&gt;" in out
    assert "<b>dir</b>" not in out


def test_report_html_states_a_subsampled_split(fast_run):
    from fairlatent.report.build import render_html

    _, _, report = fast_run
    assert "skew" not in report["data"]  # ToyFaces is rendered at its skew, not subsampled
    rep = json.loads(json.dumps(report))
    rep["data"]["subsampled_from"] = "/data/<celeba>"
    rep["data"]["skew"] = {"train": {"requested": 0.9, "available": 7001, "n": 3892, "direction": 0,
                                     "skew": 1751 / 1946}}
    out = render_html(rep, {"real_samples": ""}, run_dir="r")
    assert "train requested 0.9, achieved 0.900 (a = 0) on 3892 of 7001 images" in out
    assert "/data/&lt;celeba&gt;" in out
    assert "Subsampled" not in render_html(report, {"real_samples": ""}, run_dir="r")


def test_report_is_rebuilt_from_the_run_folder_alone(fast_run, tmp_path):
    """build_report needs report.json and the run's files, no pipeline: a re-render prints the same tables
    and writes the same page; a folder without report.json is refused by name."""
    run_dir, _, report = fast_run  # an earlier test may have rerun the pipeline: compare with the files
    build_report(run_dir, console=Console(file=io.StringIO()))
    first = (run_dir / "report.html").read_text()
    buf = io.StringIO()
    again = build_report(run_dir, console=Console(file=buf, width=200))
    assert again == json.loads((run_dir / "report.json").read_text())
    assert (run_dir / "report.html").read_text() == first
    out = buf.getvalue()
    for title in ("test: median [95% bootstrap interval]", "test_balanced: median",
                  "test: method − baseline on the same resamples", "latent: h_t held-out acc", "pre-flight: ",
                  "report: "):
        assert title in out, title
    assert set(report["files"]) == {"scores", "pairs", "gan_samples", "cell_samples"}
    # the pre-flight section: its checks recomputed from the run's figures, a table and one G(z) grid per cell
    from fairlatent.latent.preflight import labeler_checks, preflight_checks
    from fairlatent.pipeline.config import LatentConfig

    lat, pre = report["latent"], report["preflight"]
    bounds = LatentConfig().preflight_bounds()
    geometry = preflight_checks(
        bounds=bounds, generated_cells=lat["generated_label_rates"]["cells"],
        real_cells=report["data"]["cells"]["train"], heldout_acc_t=lat["h_t_heldout_acc"],
        heldout_acc_g=lat["h_g_heldout_acc"], cos_theta=lat["cos_theta"])
    lab = lat["labeler_check"]
    assert lab["counts"] == {c: report["data"]["cells"]["val"][c] for c in lab["counts"]} and len(lab["counts"]) == 4
    comp = lat["edits"]["complementary"]
    again_checks = geometry + labeler_checks(lab["accuracy"], lab["counts"], bounds=bounds) + preflight_checks(
        bounds=bounds, flip_rate_g=lat["flip_rate_g"], keep_rate_t=lat["keep_rate_t"],
        verified_rate=comp["verified_kept"] / comp["pairs"])
    # latent_debias at its default trains on the verified pairs: what blocks it is recomputed here too
    from fairlatent.latent.preflight import blocks

    uses = [("complementary", "verified")]
    assert pre["checks"] == [{**c.to_dict(), "blocks": blocks(c, uses)} for c in again_checks]
    assert pre["passed"] == (not any(not c.passed and blocks(c, uses) for c in again_checks))
    assert pre["by_method"] == {"latent_debias": pre["passed"]} and pre["strict"] is False
    html = first
    assert 'id="preflight"' in html and html.count('alt="G(z) labelled ') == 4
    assert html.count('<tr class="failed">') == sum(not c.passed and blocks(c, uses) for c in again_checks)
    assert html.count('<tr class="caution">') == sum(not c.passed and not blocks(c, uses) for c in again_checks)
    samples = np.load(run_dir / report["files"]["gan_samples"])
    assert samples.dtype == np.uint8 and samples.shape[0] == 64
    from fairlatent.errors import FairlatentError

    with pytest.raises(FairlatentError, match="no report.json"):
        build_report(tmp_path)


def test_run_command_config_errors_exit_2(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[data]\ntarget = "Wearing_Hat"\nprotected = "Eyeglasses"\nskew = 2\n')
    r = subprocess.run([sys.executable, "-m", "fairlatent.cli", "run", str(bad), "--out", str(tmp_path / "r")],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "data.skew" in r.stderr
    bad.write_text('[data]\nsource = "toyfaces"\ntarget = "Wearing_Hatt"\n')
    r = subprocess.run([sys.executable, "-m", "fairlatent.cli", "run", str(bad), "--out", str(tmp_path / "r")],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "Wearing_Hatt" in r.stderr and "Wearing_Hat" in r.stderr.replace("Wearing_Hatt", "")


def test_given_torchscript_generator_shared_protected_labeler_and_baseline_as_f_t(fast_run, tmp_path):
    """The options the CelebA benchmark relies on: nothing is retrained that was handed in, and the given
    models are the ones that label G(z)."""
    import torch

    from fairlatent.models.classifier import load_classifier
    from fairlatent.models.generator import load_generator

    run_dir, pipe, _ = fast_run
    gen = load_generator(run_dir / "gan" / "model")
    traced = torch.jit.trace(gen.module.cpu().eval(), torch.zeros(2, gen.latent_dim))
    ts = tmp_path / "g.pt"
    traced.save(str(ts))
    labeler_dir = run_dir / "labeler" / "model"  # predicts Wearing_Hat and Eyeglasses: used here as f_g
    cfg = _builtin_config("demo_fast").model_copy(deep=True)
    raw = cfg.model_dump()
    raw["data"] = {"source": "path", "path": pipe.stages.results["data"].outputs["path"],
                   "target": cfg.data.target, "protected": cfg.data.protected}
    raw["generator"] = {"path": str(ts), "latent_dim": gen.latent_dim, "output_range": "[-1,1]"}
    raw["latent"].update({"protected_labeler": str(labeler_dir), "target_labeler": "baseline"})
    raw["evaluation"]["generative_metrics"] = False
    from fairlatent.pipeline.config import validate_config

    other = Pipeline(validate_config(raw), tmp_path / "given", progress=False)
    other.run()
    st = other.stages.results
    assert st["gan"].outputs["given"] is True and not (tmp_path / "given" / "gan" / "model").exists()
    assert st["labeler"].outputs["t"] == st["train_baseline"].outputs["path"]
    assert st["labeler"].outputs["g"] == str(labeler_dir.resolve())
    assert not (tmp_path / "given" / "labeler" / "model").exists()  # nothing left to train
    # the stored scores are those of the given models on the TorchScript generator's images
    z = np.load(st["latents"].dir / "z.npy")[:64]
    scores = np.load(st["latents"].dir / "scores.npy")[:64]
    imgs = load_generator(ts, latent_dim=gen.latent_dim, output_range="[-1,1]").render(z)
    f_t, f_g = load_classifier(st["labeler"].outputs["t"]), load_classifier(labeler_dir)
    np.testing.assert_allclose(scores[:, 0], f_t.predict_scores(imgs)[:, 0], atol=1e-5)
    np.testing.assert_allclose(scores[:, 1], f_g.predict_scores(imgs)[:, f_g.attributes.index(cfg.data.protected)],
                               atol=1e-5)
    # a protected labeler that does not predict the protected attribute is refused by name
    raw["latent"]["protected_labeler"] = str(st["train_baseline"].outputs["path"])
    with pytest.raises(FairlatentError, match="not the protected attribute"):
        Pipeline(validate_config(raw), tmp_path / "bad", progress=False).run()


# ------------------------------------------------------------------------------------------------------
# The optional audit stage (pipeline/audit.py) on a copy of the demo_fast run
# ------------------------------------------------------------------------------------------------------

AUDIT_PROBE = 700  # of the run's 2,000 + test_balanced images: the probe is subsampled to this


@pytest.fixture(scope="module")
def audited_run(fast_run, tmp_path_factory):
    """The fast run copied and rerun with ``audit.enabled``: only the audit stage has anything to do."""
    import shutil

    run_dir, _, _ = fast_run
    copy = tmp_path_factory.mktemp("audited") / "run"
    shutil.copytree(run_dir, copy)
    # an earlier test may have left the fast run at other settings: bring the copy back to demo_fast first
    Pipeline(_builtin_config("demo_fast"), copy, progress=False).run()
    cfg = _builtin_config("demo_fast")
    cfg.audit.enabled = True
    cfg.audit.max_images = AUDIT_PROBE
    pipe = Pipeline(cfg, copy, progress=False)
    report = pipe.run()
    buf = io.StringIO()
    build_report(copy, console=Console(file=buf, width=200))
    return copy, pipe, report, buf.getvalue()


def test_audit_stage_runs_alone_and_audits_every_trained_classifier(audited_run):
    import pandas as pd

    copy, pipe, report, _ = audited_run
    ran = {name for name, r in pipe.stages.results.items() if not r.skipped}
    assert ran == {"audit"}  # the copy's other stages were done and their keys are unchanged
    out = copy / "audit" / "explain"
    summary = json.loads((out / "summary.json").read_text())
    units = pd.read_csv(out / "units.csv")
    trained = ["baseline", "reweighting", "latent_debias"]
    assert list(summary["models"]) == trained == list(dict.fromkeys(units["model"]))
    # each model is the copy's own classifier, not the original run's
    for m in trained:
        assert summary["models"][m]["model"] == str(copy / f"train_{m}" / "model")
    assert summary["target"] == "Wearing_Hat" and summary["protected"] == "Eyeglasses"
    assert summary["settings"]["probe_images"] == AUDIT_PROBE
    assert summary["settings"]["n_boot"] == pipe.cfg.evaluation.n_boot  # unset in [audit]: the evaluation's
    for m, s in summary["models"].items():
        rows = units[units.model == m]
        assert len(rows) == s["units"]
        assert sorted(rows.loc[rows.protected_unit, "unit"]) == s["protected_units"]
        assert s["explained_units"] == int(rows["explained"].sum())
        by_len = [s["mean_iou_by_length"][k] for k in ("1", "2", "3")]
        assert by_len == sorted(by_len)  # a longer formula never explains less
        assert by_len[-1] == pytest.approx(rows["iou"].mean(), rel=1e-5)  # the dissection's own formulas
        assert by_len[0] == pytest.approx(rows["concept_iou"].mean(), rel=1e-5)  # length 1: best single concept
    section = (copy / "audit" / "section.html").read_text()
    assert section.count("data:image/png;base64,") >= len(trained)


def test_audit_summary_is_in_report_json(audited_run):
    from fairlatent.pipeline.audit import audit_summary

    copy, _, report, _ = audited_run
    on_disk = json.loads((copy / "report.json").read_text())
    summary = json.loads((copy / "audit" / "explain" / "summary.json").read_text())
    assert on_disk["audit"] == json.loads(json.dumps(audit_summary(summary)))
    assert on_disk["files"]["audit_section"] == "audit/section.html" and on_disk["files"]["audit"] == "audit/explain"
    for m in ("baseline", "reweighting", "latent_debias"):
        got = on_disk["audit"]["models"][m]
        assert got["protected_units"] == summary["models"][m]["protected_units"]
        assert set(got["metrics"]) == {"intact", "ablated"} | ({"control"} if got["protected_units"] else set())
    assert "audit" in on_disk["timings_s"]


def test_report_html_and_terminal_show_the_audit(audited_run, fast_run):
    copy, _, report, terminal = audited_run
    html = (copy / "report.html").read_text()
    assert 'id="audit"' in html and 'class="fl-explain"' in html
    start = html.index('id="audit"')
    table = html[start:html.index("</table>", start)]
    for m, s in report["audit"]["models"].items():
        assert f"<td>{m}</td>" in table
        assert f"<td class=\"nowrap\">{s['explained_units']} / {s['units']}</td>" in table
    section = (copy / "audit" / "section.html").read_text()
    assert section in html  # the stage's section, pictures and all, embedded as written
    for m, s in report["audit"]["models"].items():
        assert f"  {m}: layer {s['layer']}, {s['explained_units']}/{s['units']} units explained" in terminal
    assert "audit: units detecting Eyeglasses" in terminal
    # the plain fast run (audit off) shows none
    assert 'id="audit"' not in (fast_run[0] / "report.html").read_text() and "audit" not in fast_run[2]


def test_audit_stage_key_follows_its_settings_and_the_evaluations_n_boot(audited_run, tmp_path):
    import shutil

    copy, _, _, _ = audited_run
    again = tmp_path / "run"
    shutil.copytree(copy, again)
    cfg = _builtin_config("demo_fast")
    cfg.audit.enabled, cfg.audit.max_images = True, AUDIT_PROBE
    pipe = Pipeline(cfg, again, progress=False)
    pipe.run()
    assert all(r.skipped for r in pipe.stages.results.values())
    cfg.audit.quantile, cfg.audit.max_images = 0.02, 300
    pipe = Pipeline(cfg, again, progress=False)
    report = pipe.run()
    assert {n for n, r in pipe.stages.results.items() if not r.skipped} == {"audit"}
    assert report["audit"]["settings"]["quantile"] == 0.02 and report["audit"]["settings"]["probe_images"] == 300
    cfg.audit.enabled = False  # off: the stage is not run and the report says nothing of it
    pipe = Pipeline(cfg, again, progress=False)
    report = pipe.run()
    assert "audit" not in pipe.stages.results and "audit" not in report and "audit_section" not in report["files"]


def test_report_refuses_a_tampered_audit_section(audited_run, tmp_path):
    import shutil

    copy, _, _, _ = audited_run
    bad = tmp_path / "run"
    shutil.copytree(copy, bad)
    (bad / "audit" / "section.html").write_text("<section><script>alert(1)</script></section>")
    build_report(bad, console=Console(file=io.StringIO()))
    html = (bad / "report.html").read_text()
    assert "<script>" not in html and "holds a script" in html
    (bad / "audit" / "section.html").unlink()
    build_report(bad, console=Console(file=io.StringIO()))
    html = (bad / "report.html").read_text()
    assert "Per-unit tables and pictures: n/a" in html and "section.html: no such file" in html


def test_explain_run_finds_the_runs_classifiers_data_and_attributes(audited_run, cli, tmp_path):
    from fairlatent.pipeline.audit import run_inputs

    copy, pipe, _, _ = audited_run
    inputs = run_inputs(copy)
    assert inputs.models == {m: copy / f"train_{m}" / "model" for m in ("baseline", "reweighting", "latent_debias")}
    assert inputs.data == Path(pipe.stages.results["data"].outputs["path"])
    assert (inputs.target, inputs.protected) == ("Wearing_Hat", "Eyeglasses") and inputs.skipped == {}
    out = tmp_path / "explain"
    res = cli(["explain", "--run", copy, "--out", out, "--split", "test", "--n-boot", "10"])
    assert res.code == 0, res
    summary = json.loads((out / "summary.json").read_text())
    assert list(summary["models"]) == ["baseline", "reweighting", "latent_debias"]
    assert summary["target"] == "Wearing_Hat" and summary["protected"] == "Eyeglasses"
    assert summary["data"] == str(inputs.data)
    # an unfinished training stage is left out with the reason; a folder that is no run is refused by name
    (copy / "train_reweighting" / "stage.json").rename(tmp_path / "stage.json")
    try:
        part = run_inputs(copy)
    finally:
        (tmp_path / "stage.json").rename(copy / "train_reweighting" / "stage.json")
    assert list(part.models) == ["baseline", "latent_debias"] and "did not finish" in part.skipped["reweighting"]
    cli.user_error(["explain", "--run", tmp_path, "--out", tmp_path / "x"], "not a pipeline run folder")
    cli.user_error(["explain", "--out", tmp_path / "y"], "--run")


def test_report_with_audit_in_a_real_browser(audited_run, tmp_path):
    """report.html with the audit in headless Chromium: no console error, every image decodes, the audit's
    unit pictures (outlined in yellow) are drawn, the screenshot is not blank. Skipped without Chromium."""
    import shutil

    from PIL import Image

    from test_explain_browser import CHROMIUM, FLAGS, PROBE

    if CHROMIUM is None:
        pytest.skip("no chromium/chromium-browser/google-chrome on PATH (apt-get install -y chromium)")
    copy, _, _, _ = audited_run
    html = (copy / "report.html").read_text()
    assert "<script" not in html
    probe = tmp_path / "probe.html"
    probe.write_text(html.replace("<head>", "<head>" + PROBE, 1))

    def chromium(*args):
        return subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", *args],
                              capture_output=True, text=True, timeout=120)

    res = chromium("--virtual-time-budget=5000", "--dump-dom", probe.as_uri())
    found = re.search(r'<pre id="probe">(.*?)</pre>', res.stdout, re.S)
    assert found, res.stderr[-2000:]
    seen = json.loads(found.group(1).replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">"))
    assert seen["errors"] == []
    assert len(seen["images"]) == html.count("data:image/png;base64,") > html.count('class="fl-explain"')
    assert all(s.startswith("true:") and not s.startswith("true:0x") for s in seen["images"]), seen["images"]
    assert not re.search(r"CONSOLE.*(Uncaught|Error)", res.stderr)
    # a screenshot of the audit section alone (the page from the audit's heading on), kept for a person to look at
    start = html.index('<h2 id="audit">')
    end = html.index("<h2>", html.index("</section>", start))
    head = html[:html.index("<body>") + len("<body>")]
    only = tmp_path / "audit.html"
    only.write_text(head + html[start:end] + "</body></html>")
    shot = tmp_path / "shot.png"
    res = chromium("--window-size=1300,2400", f"--screenshot={shot}", only.as_uri())
    assert shot.is_file(), res.stderr[-2000:]
    keep = Path(__file__).parent.parent / ".pytest_cache" / "report_audit.png"
    keep.parent.mkdir(exist_ok=True)
    shutil.copy(shot, keep)
    pixels = np.asarray(Image.open(shot).convert("RGB"), dtype=np.float32)
    non_white = (pixels < 245).any(axis=2).mean()
    assert non_white > 0.05 and pixels.std() > 20, (non_white, pixels.std())
    outline = ((pixels[..., 0] > 200) & (pixels[..., 1] > 170) & (pixels[..., 2] < 90)).sum()
    assert outline > 200, outline  # the units' masks, outlined in yellow


def test_validation_check_names_a_method_that_raised_dEO_on_validation_in_the_page_and_the_terminal(fast_run):
    """Planted paired differences: one interval above 0 (raised), one below (lowered), one across 0, one
    undefined; a post-processing method (no validation figures) and the baseline get no row. A raised method
    is named in the page's heading and row, and on the terminal; with none raised both say so."""
    import copy

    from fairlatent.pipeline.summary import validation_check
    from fairlatent.report.build import print_summary, render_html

    def paired(lo, hi):
        return {"val": {"DEO": {"median": (lo + hi) / 2, "lo": lo, "hi": hi, "p_better": 0.5},
                        "AP": {"median": 0.0, "lo": -1.0, "hi": 1.0, "p_better": 0.5}}}

    evaluation = {"baseline": {"val": {"DEO": {"median": 4.0, "lo": 2.0, "hi": 6.0}, "AP": {"median": 80.0}}},
                  "up": {"paired_vs_baseline": paired(0.5, 3.0)},
                  "down": {"paired_vs_baseline": paired(-3.0, -0.5)},
                  "across": {"paired_vs_baseline": paired(-1.0, 1.0)},
                  "nan": {"paired_vs_baseline": paired(float("nan"), float("nan"))},
                  "post": {"paired_vs_baseline": {"test": {"DEO": {"median": -1.0, "lo": -2.0, "hi": -0.5}}}}}
    check = validation_check(evaluation)
    assert {m: r["verdict"] for m, r in check["methods"].items()} == {
        "up": "raised", "down": "lowered", "across": "unchanged", "nan": "undefined"}
    assert check["raised"] == ["up"] and check["baseline"]["DEO"]["median"] == 4.0
    assert validation_check({"baseline": {}, "post": evaluation["post"]}) is None

    run_dir, _, report = fast_run
    rep = copy.deepcopy(report)
    rep["validation_check"] = validation_check({**rep["methods"], "latent_debias": {
        "paired_vs_baseline": paired(1.25, 4.5)}})
    html = render_html(rep, {"real_samples": ""}, run_dir="r")
    assert "Validation check: DEO RAISED by latent_debias" in html
    assert re.search(r'<tr class="failed"><td>latent_debias</td><td class="nowrap">\+2\.9 \[\+1\.2, \+4\.5\]', html)
    out = io.StringIO()
    print_summary(rep, run_dir, Console(file=out, width=200), rates={})
    said = "validation check: latent_debias RAISED DEO on the validation split, ΔDEO +2.9 [+1.2, +4.5]"
    assert said in out.getvalue()
    rep["validation_check"] = validation_check({"baseline": rep["methods"]["baseline"],
                                                "reweighting": {"paired_vs_baseline": paired(-2.0, -1.0)}})
    assert "Validation check: no method raised DEO" in render_html(rep, {"real_samples": ""}, run_dir="r")
    out = io.StringIO()
    print_summary(rep, run_dir, Console(file=out, width=200), rates={})
    said = "validation check: no method raised DEO on the validation split (1 compared with the baseline)"
    assert said in out.getvalue()
    assert rep["validation_check"]["little_to_remove"] is False and "little to remove" not in out.getvalue().lower()


def test_validation_check_says_when_the_baseline_has_almost_nothing_to_remove(fast_run):
    """The baseline's validation DEO median under LITTLE_TO_REMOVE_DEO points flags the run, at or above it (or
    undefined) does not; a flagged run says so on the terminal and in the page, beside any raised method."""
    import copy

    from fairlatent.pipeline.summary import LITTLE_TO_REMOVE_DEO, validation_check
    from fairlatent.report.build import print_summary, render_html

    def check(base_deo, lo=-1.0, hi=1.0):
        base = {"val": {"DEO": {"median": base_deo, "lo": 0.0, "hi": 2 * LITTLE_TO_REMOVE_DEO}, "AP": {"median": 90.0}}}
        other = {"paired_vs_baseline": {"val": {"DEO": {"median": (lo + hi) / 2, "lo": lo, "hi": hi}}}}
        return validation_check({"baseline": base, "latent_debias": other})

    assert check(LITTLE_TO_REMOVE_DEO - 0.01)["little_to_remove"] is True
    assert check(0.0)["little_to_remove"] is True
    assert check(LITTLE_TO_REMOVE_DEO)["little_to_remove"] is False
    assert check(float("nan"))["little_to_remove"] is False
    assert check(None)["little_to_remove"] is False

    run_dir, _, report = fast_run
    rep = copy.deepcopy(report)
    rep["validation_check"] = check(1.25, lo=0.5, hi=2.0)
    out = io.StringIO()
    print_summary(rep, run_dir, Console(file=out, width=250), rates={})
    text = out.getvalue()
    assert "latent_debias RAISED DEO on the validation split" in text
    said = f"the baseline's DEO on the validation split is only 1.2 [0.0, {2 * LITTLE_TO_REMOVE_DEO:.1f}] points"
    assert said in text
    html = render_html(rep, {"real_samples": ""}, run_dir="r")
    assert "Validation check: DEO RAISED by latent_debias; little to remove</h2>" in html
    assert re.search(r'<p class="alert" id="little-to-remove">Little to remove: the baseline\'s DEO on the validation '
                     r"split is only 1\.2 \[0\.0, 4\.0\] points", html)
    rep["validation_check"] = check(3.0)
    assert 'id="little-to-remove"' not in render_html(rep, {"real_samples": ""}, run_dir="r")
