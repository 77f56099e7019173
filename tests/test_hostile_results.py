"""Hostile inputs to the result side of fairlatent: reports, metrics and evaluation splits, at the CLI.

Each case is something a user can produce without trying: a run whose synthetic set has no f_g = 0 image,
a report.json from an older run with bare NaN, attribute names with ``$``/``%``/``{``/``\\``/``_^``, a run
folder whose figures' inputs were moved, ``.npy`` files that are truncated, pickled, not arrays at all,
degenerate train/test splits. The contract: a user error exits 2 with one line naming the culprit, never a
traceback; a result that can still be given is given, with "n/a" and the reason where a number is missing,
and every JSON written is strict JSON.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

METHODS = ("baseline", "reweighting")
HEADLINE = ("AP", "DEO", "BA", "KL", "DP", "EOdds", "acc", "worst_group_acc")


def _strict_json(path: Path):
    """Parse ``path`` as strict JSON: bare NaN / Infinity are refused, as every other JSON reader does."""
    def refuse(token):
        raise AssertionError(f"{path}: non-standard JSON constant {token}")

    return json.loads(Path(path).read_text(encoding="utf-8"), parse_constant=refuse)


def _stats(median):
    return {"median": median, "lo": median, "hi": median, "std": 0.0, "full": median}


def make_run(run_dir: Path, data_path: Path, *, target="Wearing_Hat", protected="Eyeglasses", latent=True,
             nan_metric: str | None = None, none_metric: str | None = None, scores=True) -> Path:
    """A finished run folder as the pipeline leaves it (report.json + evaluation scores), built by hand.

    ``latent`` adds the latent section with P(f_t = 1 | f_g = 0) = None: the case where no generated image
    got f_g = 0. ``nan_metric`` writes that metric's median as a bare NaN (as report.json files written
    before strict JSON have it); ``none_metric`` as null.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    n = 40
    y, g = np.tile([0, 1], n // 2), np.repeat([0, 1], n // 2)
    methods = {}
    arrays = {"_y/test": y, "_g/test": g}
    for k, m in enumerate(METHODS):
        res = {"threshold": 0.5, "test": {metric: _stats(10.0 + k + i) for i, metric in enumerate(HEADLINE)}}
        if nan_metric:
            res["test"][nan_metric] = _stats(float("nan"))
        if none_metric:
            res["test"][none_metric] = {"median": None, "lo": None, "hi": None, "std": None, "full": None}
        if m != "baseline":
            res["paired_vs_baseline"] = {"test": {metric: {"median": 1.0, "lo": -1.0, "hi": 2.0, "p_better": 0.5}
                                                  for metric in ("AP", "DEO", "BA", "EOdds")}}
            if nan_metric in ("AP", "DEO", "BA", "EOdds"):
                res["paired_vs_baseline"]["test"][nan_metric] = dict.fromkeys(
                    ("median", "lo", "hi", "p_better"), float("nan"))
        methods[m] = res
        arrays[f"{m}/test"] = rng.random(n)
    report = {
        "config": {"seed": 0, "evaluation": {"n_boot": 50, "ci": 0.95}},
        "target": target, "protected": protected,
        "data": {"path": str(data_path), "cells": {"test": {"n": n, "P(g=t)": 0.5, "t0_g0": 10, "t0_g1": 10,
                                                            "t1_g0": 10, "t1_g1": 10}}},
        "methods": methods,
        "timings_s": {"evaluate": 1.0, "total": 2.0},
        "files": {"scores": "evaluate/scores.npz"},
    }
    if latent:
        report["latent"] = {"h_t_heldout_acc": 0.9, "h_g_heldout_acc": 0.8, "h_t_fit_acc": 0.95,
                            "h_g_fit_acc": 0.85, "cos_theta": 0.3, "angle_deg": 72.5, "pairs": 300,
                            "flip_rate_g": 0.0, "keep_rate_t": 0.9, "p_ft1_given_fg": {"g0": None, "g1": 0.98},
                            "agreement_dropped": 3, "labeler_weights": "balanced"}
    if scores:
        (run_dir / "evaluate").mkdir(exist_ok=True)
        np.savez(run_dir / "evaluate" / "scores.npz", **arrays)
    # json.dumps writes NaN as the bare token, exactly as the old writer did
    (run_dir / "report.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    return run_dir


def _html(run_dir: Path) -> str:
    return (run_dir / "report.html").read_text(encoding="utf-8")


# ---------------------------------------------------------------------------------------------- item 4: report
def test_report_without_fg0_pairs_renders_na_with_reason(cli, tmp_path, toyfaces_small):
    run = make_run(tmp_path / "run", toyfaces_small)
    res = cli(["report", run])
    assert res.code == 0, res
    html = _html(run)
    assert "n/a" in html and "no generated image has f_g = 0" in html
    assert "0.980" in html  # the defined half of the pair is still shown


@pytest.mark.parametrize("metric", ["AP", "EOdds"])
def test_report_with_bare_nan_metric_renders_na(cli, tmp_path, toyfaces_small, metric):
    run = make_run(tmp_path / "run", toyfaces_small, nan_metric=metric)
    res = cli(["report", run])
    assert res.code == 0, res
    html = _html(run)
    assert not re.search(r">\s*nan\b", html, re.IGNORECASE)  # no "nan [nan, nan]" cell
    assert "n/a" in html
    assert "n/a" in res.out  # the terminal table too


def test_report_with_null_metric_renders_na(cli, tmp_path, toyfaces_small):
    run = make_run(tmp_path / "run", toyfaces_small, none_metric="DEO")
    res = cli(["report", run])
    assert res.code == 0, res
    assert "n/a" in _html(run) and "n/a" in res.out


def test_report_missing_scores_file_gives_na_figure_with_reason(cli, tmp_path, toyfaces_small):
    run = make_run(tmp_path / "run", toyfaces_small, scores=False)
    res = cli(["report", run])
    assert res.code == 0, res
    html = _html(run)
    assert "n/a" in html and "scores.npz" in html


def test_report_moved_dataset_gives_na_figure_with_reason(cli, tmp_path):
    run = make_run(tmp_path / "run", tmp_path / "moved_away")
    res = cli(["report", run])
    assert res.code == 0, res
    html = _html(run)
    assert "n/a" in html and "moved_away" in html


def test_report_of_a_folder_without_report_json(cli, tmp_path):
    (tmp_path / "empty").mkdir()
    cli.user_error(["report", tmp_path / "empty"], "report.json")


def test_run_dir_with_rich_markup_in_its_name(cli, tmp_path, toyfaces_small):
    run = make_run(tmp_path / "run[/bold]x", toyfaces_small)
    res = cli(["report", run])
    assert res.code == 0, res
    assert "run[/bold]x" in " ".join(res.out.split()).replace(" ", "") or "run[/bold]x" in res.out.replace("\n", "")


# ------------------------------------------------------------------------------------ item 5: plain-text labels
HOSTILE_NAMES = ["income_$50k_to_$100k", "100%_sure", "{brace}", "back\\slash", "_^hat", "$x$"]


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_report_with_hostile_attribute_name(cli, tmp_path, toyfaces_small, name):
    run = make_run(tmp_path / "run", toyfaces_small, target=name, protected=name + "_g")
    res = cli(["report", run])
    assert res.code == 0, res
    html = _html(run)
    import html as html_mod

    assert html_mod.escape(name, quote=False) in html
    assert "score histograms test" in html  # the figure was drawn, not replaced by n/a


# ------------------------------------------------------------------------------------------ item 13: bad .npy
def _bad_npy(kind: str, path: Path) -> Path:
    good = np.zeros((8, 4, 4, 3), np.uint8)
    if kind == "truncated":
        np.save(path, good)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) - 100])
    elif kind == "object":
        np.save(path, np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    elif kind == "text":
        path.write_text("id,label\n1,0\n", encoding="utf-8")
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "3d_float":
        np.save(path, np.zeros((8, 4, 4), np.float32))
    elif kind == "structured":
        np.save(path, np.zeros(8, dtype=[("a", "f4"), ("b", "i4")]))
    elif kind == "header_only":
        np.save(path, good)
        data = path.read_bytes()
        path.write_bytes(data[:128])
    return path


BAD_NPY = {"truncated": "truncated", "object": "object", "text": "not a .npy", "empty": "empty",
           "3d_float": "float32", "structured": "expected", "header_only": "truncated"}


@pytest.mark.parametrize("kind", sorted(BAD_NPY))
def test_metrics_on_bad_npy_is_a_user_error(cli, tmp_path, kind):
    bad = _bad_npy(kind, tmp_path / f"bad_{kind}.npy")
    good = tmp_path / "good.npy"
    np.save(good, np.random.default_rng(0).integers(0, 255, (16, 4, 4, 3), dtype=np.uint8))
    cli.user_error(["metrics", good, bad, "--fid", "--features", "pixels", "--no-cache"], bad.name, BAD_NPY[kind])


def test_metrics_on_precomputed_features_needs_no_classifier(cli, tmp_path):
    rng = np.random.default_rng(0)
    a, b = tmp_path / "a.npy", tmp_path / "b.npy"
    np.save(a, rng.normal(size=(50, 4)))
    np.save(b, rng.normal(size=(50, 4)) + 1.0)
    res = cli(["metrics", a, b, "--fid", "--no-cache", "--json", tmp_path / "out.json"])
    assert res.code == 0, res
    out = _strict_json(tmp_path / "out.json")
    assert out["fid"] > 0


def test_metrics_fid_of_a_set_with_itself_is_zero_not_negative(cli, tmp_path, toyfaces_small):
    res = cli(["metrics", toyfaces_small, toyfaces_small, "--fid", "--features", "pixels", "--no-cache",
               "--json", tmp_path / "out.json"])
    assert res.code == 0, res
    fid = _strict_json(tmp_path / "out.json")["fid"]
    assert 0.0 <= fid <= 1e-6, fid


def test_metrics_kid_prints_notes_not_raw_warnings(cli, tmp_path):
    rng = np.random.default_rng(0)
    a, b = tmp_path / "a.npy", tmp_path / "b.npy"
    np.save(a, rng.normal(size=(10, 32)))  # fewer samples than dimensions: FID warns
    np.save(b, rng.normal(size=(10, 32)))
    res = cli(["metrics", a, b, "--fid", "--kid", "--no-cache"])
    assert res.code == 0, res
    assert "UserWarning" not in res.text and "warnings.warn" not in res.text
    assert "note:" in res.text.lower() and "10 samples" in res.text


# --------------------------------------------------------------------------------------- item 6: degenerate splits
def _copy_with(src: Path, dst: Path, split: str, column: str, value: int) -> Path:
    shutil.copytree(src, dst)
    table = pd.read_csv(dst / "attributes.csv", dtype={"id": str, "split": str})
    table.loc[table["split"] == split, column] = value
    table.to_csv(dst / "attributes.csv", index=False)
    return dst


def test_train_classifier_on_one_class_train_split_is_refused(cli, tmp_path, toyfaces_small):
    data = _copy_with(toyfaces_small, tmp_path / "allhats", "train", "Wearing_Hat", 1)
    cli.user_error(["train-classifier", "--data", data, "--attributes", "Wearing_Hat", "--out", tmp_path / "m",
                    "--epochs", "1"], "allhats", "'train'", "Wearing_Hat", "one class")


@pytest.mark.parametrize("column", ["Wearing_Hat", "Eyeglasses"])
def test_pipeline_on_one_class_test_split_is_refused(cli, tmp_path, toyfaces_small, column):
    data = _copy_with(toyfaces_small, tmp_path / "onlypos", "test", column, 1)
    cfg = tmp_path / "cfg.toml"
    cfg.write_text(f'seed = 0\nmethods = ["baseline"]\n[data]\nsource = "path"\npath = "{data}"\n'
                   'target = "Wearing_Hat"\nprotected = "Eyeglasses"\n[classifier]\nepochs = 1\n'
                   '[evaluation]\nn_boot = 10\n', encoding="utf-8")
    cli.user_error(["run", cfg, "--out", tmp_path / "run", "--quiet"], "onlypos", "'test'", column, "one class")
    assert not (tmp_path / "run" / "report.json").exists()


# ------------------------------------------------------------------------ item 18: given models by content hash
@pytest.mark.parametrize("weights", ["model.safetensors", "generator.safetensors"])
def test_replaced_weights_with_same_size_and_mtime_change_the_stage_key(tmp_path, weights):
    import os

    from fairlatent.pipeline.run import _model_fingerprint

    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text('{"attributes": ["Eyeglasses"]}', encoding="utf-8")
    f = model / weights
    f.write_bytes(b"\x01" * 4096)
    before = _model_fingerprint(model)
    st = f.stat()
    with open(f, "r+b") as fh:  # retrained in place: same size...
        fh.write(b"\x02" * 4096)
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))  # ...and the old mtime restored
    assert f.stat().st_size == st.st_size and f.stat().st_mtime_ns == st.st_mtime_ns
    after = _model_fingerprint(model)
    assert after[weights] != before[weights]
    assert after != before


def test_report_json_is_strict_with_reasons_for_undefined_values():
    from fairlatent.pipeline.summary import strict_report

    report = {"methods": {"baseline": {"test": {"EOdds": {"median": float("nan"), "lo": 1.0}}}},
              "latent": {"p_ft1_given_fg": {"g0": None, "g1": 0.5}}}
    clean = strict_report(report)
    text = json.dumps(clean, allow_nan=False)  # raises ValueError on any NaN left
    assert json.loads(text)["methods"]["baseline"]["test"]["EOdds"]["median"] is None
    reason = clean["nulls"]["methods.baseline.test.EOdds.median"]
    assert "EOdds" in reason and "test" in reason


def test_every_json_writer_writes_strict_json(tmp_path):
    """``utils.io.write_json`` (every JSON file fairlatent writes) never emits the bare NaN/Infinity tokens."""
    from fairlatent.utils.io import write_json

    write_json(tmp_path / "x.json", {"a": float("nan"), "b": [np.float32("inf"), 1.5], "c": np.array([np.nan, 2.0])})
    text = (tmp_path / "x.json").read_text()
    strict = json.loads(text, parse_constant=lambda tok: pytest.fail(f"bare {tok} in {text}"))
    assert strict == {"a": None, "b": [None, 1.5], "c": [None, 2.0]}
