"""latent_oversample through the pipeline (fairlatent.pipeline.latent_oversample): a tiny RAE fitted on a few
hundred ToyFaces with the four (target, protected) cells as classes; the decoded set's per-cell counts and
labels, the stage's reuse and resumption, a changed target count, the report's section, and the refusals."""

from __future__ import annotations

import io
import shutil

import numpy as np
import pytest
from rich.console import Console

from fairlatent.data.dataset import load_dataset, write_dataset
from fairlatent.errors import FairlatentError
from fairlatent.pipeline.config import validate_config
from fairlatent.pipeline.latent_oversample import CELL_KEYS, check_cells, decode_counts
from fairlatent.pipeline.run import Pipeline
from fairlatent.report import build_report

T, G = "Wearing_Hat", "Eyeglasses"
TINY_RAE = dict(z_dim=4, width=4, hidden=16, mixer_hidden=16, mixer_layers=2, batch_size=4, n_critic=2, period=2,
                steps=6, checkpoint_every=3, log_every=1)


def _raw(**over):
    raw = {"seed": 0, "name": "os", "device": "cpu",
           "data": {"source": "toyfaces", "target": T, "protected": G, "n": 400, "size": 32, "skew": 0.8},
           "classifier": {"epochs": 1, "width": 4, "stages": 1, "batch_size": 16},
           "oversample": dict(TINY_RAE),
           "methods": ["baseline", "latent_oversample"],
           "evaluation": {"n_boot": 20, "generative_metrics": False}}
    raw.update(over)
    return raw


def _train_cells(data_path):
    ds = load_dataset(data_path)
    tr = ds.split_indices("train")
    t, g = ds.labels(T, tr), ds.labels(G, tr)
    return {c: int(((t == int(c[1])) & (g == int(c[4]))).sum()) for c in CELL_KEYS}


def _decoded_cells(path):
    ds = load_dataset(path)
    t, g = ds.labels(T), ds.labels(G)
    return {c: int(((t == int(c[1])) & (g == int(c[4]))).sum()) for c in CELL_KEYS}


@pytest.fixture(scope="module")
def os_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("oversample") / "run"
    pipe = Pipeline(validate_config(_raw()), run_dir, progress=False)
    report = pipe.run()
    build_report(run_dir, console=Console(file=io.StringIO(), width=120))
    return run_dir, pipe, report


def test_decoded_cells_fill_every_cell_up_to_the_largest_with_the_cells_labels(os_run):
    run_dir, pipe, report = os_run
    real = _train_cells(pipe.stages.results["data"].outputs["path"])
    largest = max(real.values())
    assert min(real.values()) < largest  # a skewed train split: there is something to fill
    decoded = _decoded_cells(run_dir / "oversample" / "dataset")
    assert decoded == {c: largest - n for c, n in real.items()}
    assert {c: real[c] + decoded[c] for c in CELL_KEYS} == {c: largest for c in CELL_KEYS}
    out = report["oversample"]
    assert out["train_cells"] == real and out["decoded"] == decoded and out["target_count"] == largest
    assert out["rule"] == "largest cell" and out["images"] == sum(decoded.values())
    ds = load_dataset(run_dir / "oversample" / "dataset")
    assert (ds.split_indices("train") == np.arange(len(ds))).all()
    assert ds.images.shape[1:] == (32, 32, 3) and ds.images.dtype == np.uint8
    # each id names its cell, and the labels are that cell's
    for i, t, g in zip(ds.ids, ds.labels(T), ds.labels(G)):
        assert i.startswith(f"rae_t{t}_g{g}_")
    # the classifier trained on real + decoded, with the epoch chosen on group-balanced real val
    from fairlatent.models.classifier import read_classifier_config

    saved = read_classifier_config(pipe.stages.results["train_latent_oversample"].outputs["path"])
    assert saved["train_rows"] == sum(real.values()) + sum(decoded.values())
    assert saved["val_weighted"] is True
    assert "paired_vs_baseline" in report["methods"]["latent_oversample"]
    assert report["files"]["oversampled"] == "oversample/dataset"


def test_report_shows_the_decoded_grid_per_cell_and_the_counts(os_run):
    run_dir, _, report = os_run
    html = (run_dir / "report.html").read_text()
    assert "Latent oversampling (class-preserving autoencoder)" in html
    for c, n in report["oversample"]["decoded"].items():
        alt = f'alt="decoded {T}={c[1]}, {G}={c[4]}"'
        assert (alt in html) == (n > 0), c
    largest = max(report["oversample"]["train_cells"], key=report["oversample"]["train_cells"].get)
    assert report["oversample"]["decoded"][largest] == 0
    assert "none decoded: the cell already holds the target count" in html


def test_the_labelers_read_the_decoded_cells_and_the_report_shows_it(os_run, tmp_path, benchmark_script):
    """Beside a method that trains on latent pairs the labelers f_t, f_g exist, and the oversample_check stage
    reads the decoded images with them (the yardstick of the pairs and the translations), after the
    autoencoder and without refitting it. Checked against the labelers' own scores at their saved thresholds,
    cell by cell; then the report's table and terminal line."""
    import json

    from fairlatent.models.classifier import load_classifier
    from fairlatent.pipeline.latent_oversample import stage_oversample, stage_oversample_check

    run_dir, _, _ = os_run
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    pipe = Pipeline(validate_config(_raw(methods=["baseline", "latent_debias", "latent_oversample"],
                                         labeler={"epochs": 2})), copy, progress=False)
    pipe.stage_data()
    pipe.stage_labeler()  # the stages a latent method runs before the oversample stage (no GAN needed for them)
    stage_oversample(pipe)
    stage_oversample_check(pipe)
    assert pipe.stages.results["oversample"].skipped and not pipe.stages.results["oversample_check"].skipped
    check = pipe.stages.results["oversample_check"].outputs
    out = pipe.stages.results["labeler"].outputs
    f_t, f_g = load_classifier(out["t"]), load_classifier(out["g"])
    th = pipe.cfg.latent.threshold
    assert check["threshold"] == th

    def read(images):
        t_hat = f_t.predict_scores(images)[:, f_t.attributes.index(T)] > f_t.thresholds[T][th]
        g_hat = f_g.predict_scores(images)[:, f_g.attributes.index(G)] > f_g.thresholds[G][th]
        return t_hat, g_hat

    ods = load_dataset(copy / "oversample" / "dataset")
    ds = load_dataset(pipe.stages.results["data"].outputs["path"])
    tr = ds.split_indices("train")
    decoded = [c for c, n in pipe.stages.results["oversample"].outputs["decoded"].items() if n]
    cells = pipe.stages.results["oversample"].outputs["train_cells"]
    assert decoded == [c for c in CELL_KEYS if cells[c] < max(cells.values())] and decoded  # the rarer cells
    for source, images, t, g in (("decoded", np.asarray(ods.images), ods.labels(T), ods.labels(G)),
                                 ("real", np.asarray(ds.images[tr]), ds.labels(T, tr), ds.labels(G, tr))):
        t_hat, g_hat = read(images)
        assert list(check[source]) == decoded, source  # only the cells that got decoded images
        for c in decoded:
            rows = (t == int(c[1])) & (g == int(c[4]))
            got = check[source][c]
            assert got["images"] == int(rows.sum()) > 0
            assert got["t_agree"] == pytest.approx((t_hat[rows] == int(c[1])).mean())
            assert got["g_agree"] == pytest.approx((g_hat[rows] == int(c[4])).mean())
            assert got["in_cell"] == pytest.approx(((t_hat[rows] == int(c[1])) & (g_hat[rows] == int(c[4]))).mean())
    # the post-hoc script for runs made before the stage: the same figures, recorded under the same key
    stage_json = copy / "oversample_check" / "stage.json"
    original = json.loads(stage_json.read_text())
    shutil.rmtree(copy / "oversample_check")
    posthoc = benchmark_script("oversample_check_posthoc")
    (copy / "config.json").write_text(json.dumps(pipe.cfg.model_dump(mode="json")))
    posthoc.main([str(copy), "--write"])
    written = json.loads(stage_json.read_text())
    assert written["key"] == original["key"] and written["outputs"] == original["outputs"]
    # the report: a table column and a terminal line (the run's report.json with the stage's figures in it)
    report = json.loads((copy / "report.json").read_text())
    assert "oversample_check" not in report  # the fixture's run has no labelers
    (copy / "report.json").write_text(json.dumps({**report, "oversample_check": check}))
    terminal = io.StringIO()
    build_report(copy, console=Console(file=terminal, width=200))
    assert "in cell (f_t, f_g): decoded" in (copy / "report.html").read_text()
    c = decoded[0]
    assert f"{c} {check['decoded'][c]['in_cell']:.0%} (real {check['real'][c]['in_cell']:.0%})" in terminal.getvalue()
    # and a benchmark's run record keeps the in-cell shares
    from fairlatent.benchmark.tasks import summarize_report

    kept = summarize_report(json.loads((copy / "report.json").read_text()))["oversample_check"]
    assert kept == {side: {c: check[side][c]["in_cell"] for c in decoded} for side in ("decoded", "real")}


def test_the_probe_scored_method_is_the_autoencoder_itself_and_trains_nothing(os_run, tmp_path):
    """latent_oversample_probe: the oversample stage's encoder + probe score P(target = 1) as the probability of
    the two target-positive cells; listing it reruns only the evaluation (no classifier, no new autoencoder)."""
    import torch

    from fairlatent.metrics.fairness import calibrated_threshold
    from fairlatent.oversample.rae import images_to_tensor, load_rae
    from fairlatent.pipeline.methods import Method, get_method

    run_dir, _, _ = os_run
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    pipe = Pipeline(validate_config(_raw(methods=["baseline", "latent_oversample", "latent_oversample_probe"])),
                    copy, progress=False)
    report = pipe.run()
    ran = {name for name, r in pipe.stages.results.items() if not r.skipped}
    assert ran == {"evaluate"} and "train_latent_oversample_probe" not in pipe.stages.results
    model = load_rae(copy / "oversample" / "model")
    ds = load_dataset(pipe.stages.results["data"].outputs["path"])

    def by_hand(idx):  # softmax of the probe on the encoder's latents, cells t1_g0 (2) + t1_g1 (3)
        with torch.no_grad():
            logits = model.probe(model.encoder(images_to_tensor(np.asarray(ds.images[idx]))))
        return torch.softmax(logits, 1)[:, 2:].sum(1).numpy()

    saved = np.load(copy / "evaluate" / "scores.npz")
    te, va = ds.split_indices("test"), ds.split_indices("val")
    np.testing.assert_allclose(saved["latent_oversample_probe/test"], by_hand(te), atol=1e-6)
    assert saved["latent_oversample_probe/test"].dtype == np.float64
    assert 0 <= saved["latent_oversample_probe/test"].min() and saved["latent_oversample_probe/test"].max() <= 1
    # logits whose float32 softmax sums past 1: the score stays a probability
    from fairlatent.pipeline.latent_oversample import probe_target_scores

    class Fixed:
        def predict_logits(self, images):
            return np.array([[-30.0, -30.0, 20.0, 20.0], [0.0, 0.0, 0.0, 0.0], [5.0, -5.0, 0.0, 1.0]], np.float32)

    got = probe_target_scores(Fixed(), None)
    e = np.exp(np.array([[-30.0, -30.0, 20.0, 20.0], [0.0, 0.0, 0.0, 0.0], [5.0, -5.0, 0.0, 1.0]]))
    np.testing.assert_allclose(got, e[:, 2:].sum(1) / e.sum(1), rtol=1e-12)
    assert got.max() <= 1.0
    res = report["methods"]["latent_oversample_probe"]
    assert res["threshold"] == pytest.approx(calibrated_threshold(ds.labels(T, va), by_hand(va)))
    assert {"AP", "DEO", "KL"} <= set(res["test"]) and "DEO" in res["paired_vs_baseline"]["test"]
    # the classifier trained on decoded images is a different model with different scores
    assert not np.allclose(saved["latent_oversample/test"], saved["latent_oversample_probe/test"])
    build_report(copy, console=Console(file=io.StringIO(), width=120))  # the report takes it as any method
    assert "latent_oversample_probe" in (copy / "report.html").read_text()
    assert get_method("latent_oversample_probe").scores and not get_method("latent_oversample_probe").trains
    # it needs no baseline (it post-processes nothing), and it is the autoencoder or nothing
    assert validate_config(_raw(methods=["latent_oversample_probe"])).methods == ["latent_oversample_probe"]
    with pytest.raises(ValueError, match="a probe-scored method is the oversample stage's autoencoder"):
        Method("x", "x", lambda ctx, m: None, probe_scored=True)


def test_the_control_fits_the_same_autoencoder_on_the_target_alone_and_decodes_nothing(os_run, tmp_path):
    """oversample.classes = 'target' (+ natural class sampling, no mixing): the control for the probe. In a copy of
    the cells run only the oversample stage and the evaluation rerun (the data and the baseline are the same);
    the model has the target's two classes, the probe's score is its class-1 softmax, nothing is decoded, and
    the report has no decoded-cell grids to miss. latent_oversample, which trains on decoded cells, is refused."""
    import torch

    from fairlatent.oversample.rae import images_to_tensor, load_rae

    run_dir, _, _ = os_run
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    control = {**TINY_RAE, "classes": "target", "class_sampling": "natural", "mixer": "none"}
    pipe = Pipeline(validate_config(_raw(methods=["baseline", "latent_oversample_probe"], oversample=control)),
                    copy, progress=False)
    report = pipe.run()
    ran = {name for name, r in pipe.stages.results.items() if not r.skipped}
    assert ran == {"oversample", "evaluate"}
    model = load_rae(copy / "oversample" / "model")
    assert model.n_classes == 2 and model.class_names == [f"{T}=0", f"{T}=1"]
    assert (model.config.class_sampling, model.config.mixer) == ("natural", "none") and model.mixer is None
    ds = load_dataset(pipe.stages.results["data"].outputs["path"])
    tr, te = ds.split_indices("train"), ds.split_indices("test")
    np.testing.assert_array_equal(model.latent_labels.numpy(), ds.labels(T, tr))  # the target, not the cells
    with torch.no_grad():
        logits = model.probe(model.encoder(images_to_tensor(np.asarray(ds.images[te]))))
    saved = np.load(copy / "evaluate" / "scores.npz")
    np.testing.assert_allclose(saved["latent_oversample_probe/test"], torch.softmax(logits, 1)[:, 1].numpy(), atol=1e-6)
    np.testing.assert_array_equal(saved["baseline/test"], np.load(run_dir / "evaluate" / "scores.npz")["baseline/test"])
    out = report["oversample"]
    assert out["classes"] == "target" and "decoded" not in out and not (copy / "oversample" / "dataset").exists()
    assert out["train_cells"] == _train_cells(pipe.stages.results["data"].outputs["path"])
    terminal = io.StringIO()
    build_report(copy, console=Console(file=terminal, width=200))
    assert f"the control, an autoencoder on {T} alone (class sampling natural, mixer none)" in terminal.getvalue()
    html = (copy / "report.html").read_text()
    assert "the control (class-preserving autoencoder on the target alone)" in html
    assert "latent_oversample_probe" in html and "no decoded image of this cell" not in html
    with pytest.raises(FairlatentError, match=r"classes = 'target'.*'latent_oversample' trains on decoded cells"):
        validate_config(_raw(oversample=control))


def test_a_second_run_reuses_everything_and_an_interrupted_stage_resumes_without_retraining(os_run, tmp_path):
    run_dir, _, _ = os_run
    again = Pipeline(validate_config(_raw()), run_dir, progress=False)
    again.run()
    assert all(r.skipped for r in again.stages.results.values())
    # interrupted after the RAE finished, before the decoded set and the stage record were written
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    before = load_dataset(copy / "oversample" / "dataset")
    images_before, ids_before = np.asarray(before.images).copy(), list(before.ids)
    model = copy / "oversample" / "model" / "model.safetensors"
    stamp = (model.stat().st_mtime_ns, (copy / "oversample" / "model" / "log.csv").read_text())
    (copy / "oversample" / "stage.json").unlink()
    shutil.rmtree(copy / "oversample" / "dataset")
    resumed = Pipeline(validate_config(_raw()), copy, progress=False)
    resumed.run()
    ran = {name for name, r in resumed.stages.results.items() if not r.skipped}
    assert ran == {"oversample"}  # same key: the classifier trained on it and the evaluation are reused
    assert (model.stat().st_mtime_ns, (copy / "oversample" / "model" / "log.csv").read_text()) == stamp
    after = load_dataset(copy / "oversample" / "dataset")
    assert list(after.ids) == ids_before
    np.testing.assert_array_equal(np.asarray(after.images), images_before)  # decoding is seeded


def test_a_target_count_reruns_the_stage_and_fills_cells_up_to_it(os_run, tmp_path):
    run_dir, pipe, _ = os_run
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    real = _train_cells(pipe.stages.results["data"].outputs["path"])
    target = sorted(real.values())[1] + 3  # above the two small cells, below the two large ones
    changed = Pipeline(validate_config(_raw(oversample={**TINY_RAE, "target_count": target})), copy, progress=False)
    report = changed.run()
    ran = {name for name, r in changed.stages.results.items() if not r.skipped}
    assert ran == {"oversample", "train_latent_oversample", "evaluate"}
    decoded = _decoded_cells(copy / "oversample" / "dataset")
    assert decoded == {c: max(0, target - n) for c, n in real.items()}
    assert sum(v == 0 for v in decoded.values()) == 2  # nothing is removed from the cells above it
    assert report["oversample"]["rule"] == "oversample.target_count" and report["oversample"]["target_count"] == target


def test_a_cell_with_one_training_image_is_refused_by_name(toyfaces_small, tmp_path):
    ds = load_dataset(toyfaces_small)
    split = ds.table["split"].to_numpy()
    t, g = ds.labels(T), ds.labels(G)
    rare = np.flatnonzero((split == "train") & (t == 0) & (g == 1))
    assert rare.size > 1
    keep = np.setdiff1d(np.arange(len(ds)), rare[1:])  # one training image left in (t = 0, g = 1)
    data = write_dataset(tmp_path / "data", np.asarray(ds.images[keep]), ds.table.iloc[keep].reset_index(drop=True),
                         {"source": "test"})
    raw = _raw(data={"source": "path", "path": str(data), "target": T, "protected": G})
    pipe = Pipeline(validate_config(raw), tmp_path / "run", progress=False)
    with pytest.raises(FairlatentError, match=r"the cell \(Wearing_Hat = 0, Eyeglasses = 1\) has 1 training "
                                              r"image;.*at least 2"):
        pipe.run()
    assert not (tmp_path / "run" / "oversample" / "model").exists()  # refused before any training


def test_rule_and_refusal_by_hand():
    assert decode_counts({"t0_g0": 10, "t0_g1": 2, "t1_g0": 3, "t1_g1": 9}, None) == (
        10, {"t0_g0": 0, "t0_g1": 8, "t1_g0": 7, "t1_g1": 1})
    assert decode_counts({"t0_g0": 10, "t0_g1": 2, "t1_g0": 3, "t1_g1": 9}, 5) == (
        5, {"t0_g0": 0, "t0_g1": 3, "t1_g0": 2, "t1_g1": 0})
    with pytest.raises(FairlatentError, match=r"the cell \(t = 1, g = 0\) has 0 training images; the cell "
                                              r"\(t = 1, g = 1\) has 1 training image;"):
        check_cells({"t0_g0": 4, "t0_g1": 2, "t1_g0": 0, "t1_g1": 1}, "t", "g", "here")
    check_cells({"t0_g0": 4, "t0_g1": 2, "t1_g0": 2, "t1_g1": 2}, "t", "g", "here")  # 2 is enough


def test_oversample_section_is_validated_and_left_out_of_the_dump_when_unset():
    with pytest.raises(FairlatentError, match=r"oversample\.steps"):
        validate_config({"oversample": {"steps": 0}})
    with pytest.raises(FairlatentError, match=r"oversample\.target_count"):
        validate_config({"oversample": {"target_count": 0}})
    with pytest.raises(FairlatentError, match=r"oversample\.stepz: unknown key"):
        validate_config({"oversample": {"stepz": 5}})
    plain = validate_config({"methods": ["baseline"]})
    assert "oversample" not in plain.model_dump() and not plain.needs_oversample()
    cfg = validate_config({"seed": 7, "methods": ["latent_oversample"], "oversample": {"steps": 9}})
    assert cfg.needs_oversample() and not cfg.needs_pairs() and not cfg.needs_translations()
    assert cfg.model_dump()["oversample"] == {"steps": 9}
    spec = cfg.oversample.rae_spec(cfg.seed)
    assert (spec.seed, spec.steps, spec.width, spec.adversarial) == (7, 9, 16, False)  # run seed, section defaults
    again = validate_config(cfg.model_dump())
    assert again.oversample.rae_spec(again.seed) == spec
    assert validate_config({"oversample": {"seed": 3}}).oversample.rae_spec(7).seed == 3
