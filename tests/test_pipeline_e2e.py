"""`fairlatent demo --fast` end to end: the report's shape, stage caching on a second run, invalidation of
only what a config change touches, the latent-edit invariants measured in the run, and HTML escaping."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys

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
        for split in ("test", "test_balanced"):
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


def test_verified_pairs_are_the_agreeing_pairs_whose_protected_label_flipped(fast_run, tmp_path):
    """Listing latent_debias_verified writes complementary_verified: exactly the pairs on which f_t held and
    f_g flipped, re-read here from the labels the latents stage and the pairs stage gave the images."""
    import shutil

    from fairlatent.data.dataset import load_dataset

    run_dir, _, _ = fast_run
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    cfg = _builtin_config("demo_fast")
    cfg.methods = [*cfg.methods, "latent_debias_verified", "domain_independent", "threshold_optimizer_tpr",
                   "latent_debias_domain"]
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
    # post-processing: decisions from the baseline's scores; AP and KL absent, not made up
    to = report["methods"]["threshold_optimizer_tpr"]
    assert to["post_processing"]["constraints"] == "true_positive_rate_parity"
    assert "AP" not in to["test"] and "KL" not in to["test"] and "DEO" in to["test"]
    assert set(to["paired_vs_baseline"]["test"]) >= {"DEO", "BA"} and "AP" not in to["paired_vs_baseline"]["test"]
    build_report(copy, console=Console(file=io.StringIO(), width=120))
    assert "threshold_optimizer_tpr" in (copy / "report.html").read_text()


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
    from fairlatent.latent.preflight import preflight_checks
    from fairlatent.pipeline.config import LatentConfig

    lat, pre = report["latent"], report["preflight"]
    again_checks = preflight_checks(
        bounds=LatentConfig().preflight_bounds(), generated_cells=lat["generated_label_rates"]["cells"],
        real_cells=report["data"]["cells"]["train"], heldout_acc_t=lat["h_t_heldout_acc"],
        heldout_acc_g=lat["h_g_heldout_acc"], cos_theta=lat["cos_theta"], flip_rate_g=lat["flip_rate_g"],
        keep_rate_t=lat["keep_rate_t"])
    assert pre["checks"] == [c.to_dict() for c in again_checks]
    assert pre["passed"] == all(c.passed for c in again_checks) and pre["strict"] is False
    html = first
    assert 'id="preflight"' in html and html.count('alt="G(z) labelled ') == 4
    assert html.count('<tr class="failed">') == sum(not c.passed for c in again_checks)
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
