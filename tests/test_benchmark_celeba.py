"""``fairlatent benchmark celeba``: target selection, the skew subsampler, and a test-sized run end to end
(on a CelebA-layout fixture built here from ToyFaces, and on ../shared/data/celeba when present)."""

import io
import json
import os
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from fairlatent.benchmark.celeba import (positives_per_group, select_targets, skewed_train_indices)
from fairlatent.benchmark.tasks import machine_description
from fairlatent.benchmark.paper import CATEGORY, PAPER_AVERAGES, PAPER_TARGETS, paper_overall
from fairlatent.cli import main
from fairlatent.data.dataset import load_dataset
from fairlatent.errors import FairlatentError

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "celeba"
# ToyFaces attribute → the CelebA column it plays in the fixture (Eyeglasses plays the protected "Male")
AS_CELEBA = {"Eyeglasses": "Male", "Smiling": "Smiling", "Wearing_Hat": "Wearing_Hat", "Blond_Hair": "Young"}


def make_toy_celeba(root: Path, n: int = 600) -> pd.DataFrame:
    """A CelebA folder (zip of 89×109 JPEGs, attribute file, identity file) whose faces show their labels.

    Each ToyFaces face (64 px) is pasted where the paper crop ``[28:92, 12:76]`` reads it; two images share
    an identity so the identity split has something to keep apart.
    """
    from fairlatent.data.toyfaces import render_toyfaces

    toy = render_toyfaces(n=n, size=64, target="Smiling", protected="Eyeglasses", skew=0.8,
                          split_fractions=(0.8, 0.1, 0.1), seed=3, masks=False)
    root.mkdir(parents=True)
    names = [f"{i:06d}.jpg" for i in range(1, n + 1)]
    with zipfile.ZipFile(root / "celeba_toy_89x109.zip", "w") as zf:
        for name, face in zip(names, toy.images):
            canvas = np.full((109, 89, 3), 90, np.uint8)
            canvas[28:92, 12:76] = face
            buf = io.BytesIO()
            Image.fromarray(canvas).save(buf, format="JPEG", quality=95)
            zf.writestr(f"img_align_celeba_89x109/{name}", buf.getvalue())
    labels = pd.DataFrame({AS_CELEBA[a]: toy.table[a].to_numpy() for a in AS_CELEBA})
    cols = list(labels.columns)
    rows = "".join(f"{name} " + " ".join("1" if v else "-1" for v in labels.iloc[i]) + "\n"
                   for i, name in enumerate(names))
    (root / "list_attr_celeba.txt").write_text(f"{n}\n" + " ".join(cols) + "\n" + rows)
    (root / "identity_CelebA.txt").write_text("".join(f"{name} {i // 2}\n" for i, name in enumerate(names)))
    return labels


# ------------------------------------------------------------------------------------------ pure parts
def test_paper_tables_are_consistent():
    assert len(PAPER_TARGETS) == 26 and set(CATEGORY) == set(PAPER_TARGETS)
    sizes = pd.Series(CATEGORY).value_counts().to_dict()
    assert sizes == {"gender-independent": 14, "inconsistently labeled": 6, "gender-dependent": 6}
    overall = paper_overall()
    for m in ("AP", "DEO", "BA", "KL"):  # a weighted mean lies between the category values
        for i in (0, 1):
            vals = [PAPER_AVERAGES[c][m][i] for c in PAPER_AVERAGES]
            assert min(vals) <= overall[m][i] <= max(vals)
    # DEO: (21.5*6 + 25.7*6 + 16.7*14) / 26
    assert overall["DEO"][0] == pytest.approx((21.5 * 6 + 25.7 * 6 + 16.7 * 14) / 26, abs=0.01)


@pytest.mark.parametrize("seed", [0, 1])
def test_skewed_subsets_have_the_requested_skew_and_one_size(seed):
    rng = np.random.default_rng(seed)
    g = rng.integers(0, 2, 3000)
    t = (rng.random(3000) < np.where(g == 0, 0.55, 0.35)).astype(int)  # target more common in g = 0
    skews = [0.5, 0.7, 0.9]
    subsets = skewed_train_indices(t, g, skews, seed=seed)
    sizes = {len(v) for v in subsets.values()}
    assert len(sizes) == 1  # the same amount of data at every skew
    for s, idx in subsets.items():
        assert len(np.unique(idx)) == len(idx) and idx.min() >= 0 and idx.max() < 3000
        ts, gs = t[idx], g[idx]
        assert ts.mean() == pytest.approx(0.5, abs=1e-9)  # both classes the same size
        n_pos = ts.sum()
        # majority group of positives is g = 0 (where the target is more common in the data)
        assert ((ts == 1) & (gs == 0)).sum() / n_pos == pytest.approx(s, abs=1 / n_pos)
        assert ((ts == 0) & (gs == 1)).sum() / (len(ts) - n_pos) == pytest.approx(s, abs=1 / n_pos)
    # the size is the largest the 0.9 skew can fill: some cell is used up at some skew
    cells = {(a, b): ((t == a) & (g == b)).sum() for a in (0, 1) for b in (0, 1)}
    used = {(a, b): max(((t[i] == a) & (g[i] == b)).sum() for i in subsets.values()) for a, b in cells}
    assert any(cells[c] - used[c] <= 10 for c in cells)


def test_skewed_subsets_refuse_when_a_cell_is_nearly_empty():
    t = np.array([1] * 50 + [0] * 50)
    g = np.array([0] * 50 + [1] * 49 + [0])  # no positive in g = 1: skew < 1 cannot be built
    with pytest.raises(FairlatentError, match="too few images"):
        skewed_train_indices(t, g, [0.5, 0.9], seed=0)


def test_target_selection_counts_positives_per_group(toyfaces_small):
    ds = load_dataset(toyfaces_small)
    attrs = [a for a in ds.attribute_names if a != "Eyeglasses"]
    counts = positives_per_group(ds, attrs, "Eyeglasses")
    tab = ds.table[ds.table["split"] == "train"]
    for a in attrs:  # oracle: pandas group-by
        by = tab.groupby("Eyeglasses")[a].sum()
        assert counts[a] == {"g0": int(by.get(0, 0)), "g1": int(by.get(1, 0))}
    k = sorted(min(c.values()) for c in counts.values())[len(counts) // 2]
    chosen = select_targets(counts, k)
    assert chosen and all(min(counts[a].values()) >= k for a in chosen)
    assert all(min(counts[a].values()) < k for a in attrs if a not in chosen)


# ------------------------------------------------------------------------------------------ end to end
def _run(root: Path, out: Path, *extra: str) -> int:
    try:
        main(["benchmark", "celeba", "--root", str(root), "--out", str(out), "--preset", "test", "--quiet", *extra])
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def test_benchmark_end_to_end_on_fixture_resumes_and_reports(tmp_path):
    root = tmp_path / "celeba"
    make_toy_celeba(root)
    out = tmp_path / "bench"
    assert _run(root, out, "--skew-target", "Smiling", "--set", "gan.steps=1200") == 0
    res = json.loads((out / "results.json").read_text())
    # targets: the paper's targets present in the data (Smiling, Wearing_Hat, Young), Male excluded
    assert set(res["targets"]["counts"]) == {"Smiling", "Wearing_Hat", "Young"}
    # identity split: no identity in two splits
    ds = load_dataset(out / "shared" / "seed0" / "data" / "dataset")
    by = ds.table.groupby("split")["group_id"].apply(set)
    assert not (by["train"] & by["val"]) and not (by["train"] & by["test"]) and not (by["val"] & by["test"])
    assert ds.image_size == 32 and len(ds) == 600
    # every chosen target finished with all four methods
    chosen = res["targets"]["chosen"]
    assert not res["failed"], res["failed"]
    assert set(chosen) == {k.split("/")[0] for k in res["runs"]}
    assert "Smiling/seed0" in res["runs"], res["failed"]
    run = res["runs"]["Smiling/seed0"]
    assert set(run["methods"]) == {"baseline", "reweighting", "latent_debias", "latent_debias_filtered"}
    # the benchmark's table holds exactly what the run's own report measured on its test split
    report = json.loads((out / "targets" / "Smiling" / "seed0" / "report.json").read_text())
    for m, r in run["methods"].items():
        test = report["methods"][m]["test"]
        for k in ("AP", "DEO", "BA", "KL"):
            assert r[k] == {q: test[k][q] for q in ("median", "lo", "hi")}, (m, k)
        assert r["AP"]["hi"] > r["AP"]["lo"]  # resampling a test split of ~90 rows does vary AP
        if m != "baseline":
            assert set(r["vs_baseline"]) >= {"AP", "DEO", "BA"}
    assert 0.5 <= run["latent"]["h_g_heldout_acc"] <= 1
    # each method's rates by group, read from the run's scores at its threshold; their TPR gap is its DEO
    for m, r in run["methods"].items():
        rates = r["rates_by_group"]
        assert set(rates) == {"0", "1"}
        assert abs(rates["0"]["TPR"] - rates["1"]["TPR"]) * 100 == pytest.approx(
            report["methods"][m]["test"]["DEO"]["full"], abs=1e-9), m
    # each run says which CPU computed it (bits are reproducible per kind of CPU), and the page counts them
    here = machine_description()
    assert (run["machine"]["cpu"], run["machine"]["torch"]) == (here["cpu"], here["torch"]) and here["cpu"]
    assert run["machine"]["cpu_capability"] == here["cpu_capability"] and here["cpu_capability"]
    n_runs = len(res["runs"]) + len(res["skew"])
    assert f"Runs by CPU: {here['cpu']} ({here['cpu_capability']}) {n_runs}." in (out / "results.md").read_text()
    names = [row["name"] for row in run["generative"]]
    assert "G(z) · all" in names and "G(z) · Smiling=1, Male=0" in names
    # skew sweep: one run per skew, on training subsets of one size
    assert set(res["skew"]) == {"Smiling/skew0.5", "Smiling/skew0.7"}
    sizes = set()
    for s in (0.5, 0.7):
        sds = load_dataset(out / "shared" / "seed0" / "skew_data_Smiling" / f"skew_{s:g}")
        tr = sds.split_indices("train")
        t, g = sds.labels("Smiling", tr), sds.labels("Male", tr)
        sizes.add(len(tr))
        assert max(((t == 1) & (g == a)).sum() for a in (0, 1)) / t.sum() == pytest.approx(s, abs=1 / t.sum())
    assert len(sizes) == 1
    md = (out / "results.md").read_text()
    assert "| Smiling/seed0 | latent_debias |" in md and "all 26 (size-weighted)" in md
    assert "## Which group moved" in md and "| reweighting | 1 |" in md.split("## Which group moved")[1]
    assert "Controlled skew" in md and "Wall time per stage" in md
    # a restart redoes nothing and gives the same numbers
    assert 'seed_scope = "all"' in md and "Per target across seeds" in md
    before = {p: p.stat().st_mtime_ns for p in (out / "targets").rglob("stage.json")}
    done = {p.name: p.read_text() for p in (out / "done").glob("*.json")}
    assert len(done) == len(chosen) + 2  # one record per (target, seed) run and per skew run
    # the machine-readable record and the figure beside results.md, with the tables' numbers
    rec = json.loads((out / "celeba.json").read_text())
    assert rec["command"].startswith("fairlatent benchmark celeba --root ")
    entry = next(e for e in rec["runs"] if (e["target"], e["seed"], e["method"]) == ("Smiling", 0, "baseline"))
    assert entry["split"] == "test" and entry["metrics"]["DEO"] == run["methods"]["baseline"]["DEO"]
    assert entry["rates_by_group"] == run["methods"]["baseline"]["rates_by_group"]
    assert entry["metrics"]["EOdds"] == {q: report["methods"]["baseline"]["test"]["EOdds"][q]
                                         for q in ("median", "lo", "hi")}
    assert (out / "ap_vs_deo.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and "](ap_vs_deo.png)" in md
    docs = tmp_path / "docs"
    assert _run(root, out, "--skew-target", "Smiling", "--set", "gan.steps=1200", "--doc-dir", str(docs)) == 0
    assert {p.name for p in docs.iterdir()} == {"celeba.md", "celeba.json", "celeba_ap_vs_deo.png"}
    assert "](celeba_ap_vs_deo.png)" in (docs / "celeba.md").read_text()
    assert json.loads((docs / "celeba.json").read_text())["runs"] == rec["runs"]
    after = {p: p.stat().st_mtime_ns for p in (out / "targets").rglob("stage.json")}
    assert before == after
    assert {p.name: p.read_text() for p in (out / "done").glob("*.json")} == done
    res2 = json.loads((out / "results.json").read_text())
    assert res2["runs"]["Smiling/seed0"]["methods"] == run["methods"]
    assert not (out / "benchmark.pid").exists()  # the lock is released

    # --run-nothing reads the shared stages as they were finished, even under a key an older version gave
    # them (a normal run would train this GAN again), trains nothing, and keeps the command that ran the runs
    gan_record = out / "shared" / "seed0" / "gan" / "stage.json"
    old = json.loads(gan_record.read_text())
    gan_record.write_text(json.dumps({**old, "key": "0" * 16}))
    stages = {p: p.stat().st_mtime_ns for p in out.rglob("stage.json")}
    assert _run(root, out, "--skew-target", "Smiling", "--set", "gan.steps=1200", "--run-nothing") == 0
    assert {p: p.stat().st_mtime_ns for p in out.rglob("stage.json")} == stages
    res3 = json.loads((out / "results.json").read_text())
    assert res3["runs"] == res2["runs"] and res3["skew"] == res2["skew"]
    assert res3["command"] == res2["command"] and "--run-nothing" in res3["rewritten_by"]
    assert "## In plain words" in (out / "results.md").read_text()
    gan_record.unlink()  # an unfinished shared stage: named, nothing run
    assert _run(root, out, "--skew-target", "Smiling", "--set", "gan.steps=1200", "--run-nothing") == 2
    assert not (out / "shared" / "seed0" / "gan" / "stage.json").exists()


def test_benchmark_bad_input_and_lock(tmp_path, capsys):
    assert _run(tmp_path / "nowhere", tmp_path / "b1") == 2
    assert "no such CelebA folder" in capsys.readouterr().err
    root = tmp_path / "celeba"
    make_toy_celeba(root, n=60)
    assert _run(root, tmp_path / "b2", "--targets", "Smiling,Nope") == 2
    assert "Nope" in capsys.readouterr().err
    assert _run(root, tmp_path / "b3", "--skews", "0.4,0.9") == 2
    assert "skews" in capsys.readouterr().err
    assert _run(root, tmp_path / "b4", "--set", "gan.stepz=3") == 2  # misspelt key named
    assert "stepz" in capsys.readouterr().err
    # a running benchmark in the same folder is refused (this process is alive and holds the lock)
    (tmp_path / "b5").mkdir()
    (tmp_path / "b5" / "benchmark.pid").write_text(str(os.getppid()))
    assert _run(root, tmp_path / "b5") == 2
    assert "another benchmark" in capsys.readouterr().err


@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/data/celeba not present")
def test_benchmark_on_shared_celeba_subset(tmp_path):
    out = tmp_path / "bench"
    assert _run(SHARED, out, "--targets", "Smiling", "--skew-target", "none") == 0
    res = json.loads((out / "results.json").read_text())
    ds = load_dataset(out / "shared" / "seed0" / "data" / "dataset")
    assert len(ds) == 600 and ds.attribute_names[:3] == ["5_o_Clock_Shadow", "Arched_Eyebrows", "Attractive"]
    by = ds.table.groupby("split")["group_id"].apply(set)
    assert not (by["train"] & by["val"]) and not (by["train"] & by["test"]) and not (by["val"] & by["test"])
    assert res["targets"]["chosen"] == ["Smiling"]
    assert not res["failed"], res["failed"]
    assert set(res["runs"]) == {"Smiling/seed0"}


def test_benchmark_config_sections_are_typed_and_laid_over_the_defaults():
    from fairlatent.benchmark.celeba import CelebABenchmarkConfig
    from fairlatent.errors import FairlatentError
    from fairlatent.train.classifier import ClassifierConfig
    from fairlatent.train.gan import GANConfig
    from fairlatent.utils.settings import validate_settings

    cfg = CelebABenchmarkConfig(root="x", seeds=[3], device="cpu")
    # the old untyped merging: {"seed": seeds[0], "device": device, **defaults}
    assert cfg.gan_spec() == GANConfig(seed=3, device="cpu", arch="dcgan", width=32, steps=6000, batch_size=64)
    assert cfg.classifier_spec() == ClassifierConfig(seed=3, device="cpu", width=16, epochs=8)
    assert cfg.model_dump()["classifier"] == {"width": 16, "epochs": 8}
    cfg = CelebABenchmarkConfig.model_validate({"root": "x", "classifier": {"lr": 0.01, "seed": 1},
                                                "latent": {"n_pairs": 50}})
    assert (cfg.classifier_spec().epochs, cfg.classifier_spec().lr, cfg.classifier_spec().seed) == (8, 0.01, 1)
    assert (cfg.latent.n_pairs, cfg.latent.n_fit) == (50, 10000)
    for raw, key in (({"gan": {"stepz": 1}}, "gan.stepz"), ({"latent": {"nfit": 1}}, "latent.nfit"),
                     ({"evaluation": {"nboot": 1}}, "evaluation.nboot")):
        with pytest.raises(FairlatentError, match=rf"^bench: {key}: unknown key$"):
            validate_settings(CelebABenchmarkConfig, {"root": "x", **raw}, "bench")
    with pytest.raises(FairlatentError, match="unknown method.*latent_debias_filtered"):
        validate_settings(CelebABenchmarkConfig, {"root": "x", "methods": ["nope"]}, "bench")


# ------------------------------------------------------------------------------------------ seeds and ranks
def _generator_weights(gan_dir: Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    return load_file(str(gan_dir / "generator.safetensors"))


def _bench_config(root: Path, **kw):
    from fairlatent.benchmark.celeba import CelebABenchmarkConfig
    from fairlatent.benchmark.presets import preset

    raw = preset("test")
    raw["gan"].update(steps=60, checkpoint_every=60, sample_every=60)
    raw["classifier"].update(epochs=2)
    return CelebABenchmarkConfig.model_validate({**raw, "root": str(root), "targets": ["Smiling"],
                                                 "skew_target": None, "seeds": [0, 1], **kw})


@pytest.mark.parametrize("scope", ["all", "pipeline"])
def test_seed_scope_draws_split_gan_and_protected_per_seed_or_shares_them(tmp_path, scope):
    from rich.console import Console

    from fairlatent.benchmark.celeba import CelebABenchmark

    root = tmp_path / "celeba"
    make_toy_celeba(root, n=300)
    out = tmp_path / "bench"
    bench = CelebABenchmark(_bench_config(root, seed_scope=scope), out, console=Console(quiet=True), progress=False)
    assert bench.prepare() == ["Smiling"]
    specs = {s.seed: s for s in bench.run_specs(["Smiling"])}
    assert set(specs) == {0, 1}
    splits = {s: load_dataset(specs[s].data_path).table.set_index("id")["split"] for s in (0, 1)}
    gans = {s: _generator_weights(Path(specs[s].gan)) for s in (0, 1)}
    assert gans[0].keys() == gans[1].keys()
    same_gan = all(np.array_equal(gans[0][k], gans[1][k]) for k in gans[0])
    if scope == "all":
        assert {s: Path(specs[s].gan) for s in (0, 1)} == {s: out / "shared" / f"seed{s}" / "gan" / "model"
                                                            for s in (0, 1)}
        assert not same_gan  # two GAN draws
        assert (splits[0] != splits[1].loc[splits[0].index]).any()  # two identity splits
        assert specs[0].protected != specs[1].protected
        for s in (0, 1):  # each split identity-disjoint
            tab = load_dataset(specs[s].data_path).table
            by = tab.groupby("split")["group_id"].apply(set)
            assert not (by["train"] & by["test"]) and not (by["train"] & by["val"])
        assert not (out / "shared" / "gan").exists()
    else:
        assert specs[0].gan == specs[1].gan == str((out / "shared" / "gan" / "model").resolve())
        assert same_gan and specs[0].data_path == specs[1].data_path and specs[0].protected == specs[1].protected
        assert not (out / "shared" / "seed1").exists()
    assert bench.results["targets"]["counts_by_seed"].keys() == ({"0", "1"} if scope == "all" else {"0"})
    assert json.loads((out / "benchmark_layout.json").read_text()) == {"seed_scope": scope}


def test_folder_of_another_seed_scope_is_refused(tmp_path, capsys):
    root = tmp_path / "celeba"
    make_toy_celeba(root, n=60)
    old = tmp_path / "old"  # a folder of an earlier version: shared/data, no layout file
    (old / "shared" / "data").mkdir(parents=True)
    assert _run(root, old) == 2
    err = capsys.readouterr().err
    assert "seed_scope 'pipeline'" in err and "--seed-scope pipeline" in err
    new = tmp_path / "new"
    new.mkdir()
    (new / "benchmark_layout.json").write_text('{"seed_scope": "all"}')
    assert _run(root, new, "--seed-scope", "pipeline") == 2
    assert "--seed-scope all" in capsys.readouterr().err
    assert _run(root, new, "--seed-scope", "everything") == 2
    assert "seed_scope" in capsys.readouterr().err


def test_fixed_model_seed_conflicts_with_per_seed_models():
    from fairlatent.benchmark.celeba import CelebABenchmarkConfig
    from fairlatent.utils.settings import validate_settings

    with pytest.raises(FairlatentError, match="gan.seed would give every seed the same shared models"):
        validate_settings(CelebABenchmarkConfig, {"root": "x", "seeds": [0, 1], "gan": {"seed": 5}}, "bench")
    cfg = validate_settings(CelebABenchmarkConfig, {"root": "x", "seeds": [0, 1], "gan": {"seed": 5},
                                                    "seed_scope": "pipeline"}, "bench")
    assert cfg.gan_spec(1).seed == 5 and cfg.shared_seeds() == [0]
    cfg = CelebABenchmarkConfig(root="x", seeds=[4, 7])
    assert (cfg.gan_spec(7).seed, cfg.classifier_spec(7).seed, cfg.shared_seeds()) == (7, 7, [4, 7])


def test_seed_aggregates_and_seed_behaviour_in_markdown():
    from fairlatent.benchmark.markdown import results_markdown, seed_aggregates

    def run(t, s, deo):
        return {"target": t, "seed": s, "category": None, "cells": {},
                "methods": {"baseline": {k: {"median": deo if k == "DEO" else 50.0, "lo": 0.0, "hi": 99.0}
                                         for k in ("AP", "DEO", "BA", "KL")}}}

    runs = {"A/seed0": run("A", 0, 10.0), "A/seed1": run("A", 1, 14.0), "B/seed0": run("B", 0, 3.0)}
    agg = seed_aggregates(runs, ["baseline"])
    assert agg["A"]["baseline"]["DEO"] == {"mean": 12.0, "sd": pytest.approx(np.sqrt(8.0)), "n": 2}
    assert agg["B"]["baseline"]["DEO"] == {"mean": 3.0, "sd": None, "n": 1}
    md = results_markdown({"config": {"methods": ["baseline"], "seeds": [0, 1], "seed_scope": "all"}, "runs": runs})
    assert 'seed_scope = "all"' in md and "its own GAN" in md
    assert "| A | baseline | 2 | 50.0 ± 0.0 | 12.0 ± 2.8 |" in md
    assert "| B | baseline | 1 of 2 | 50.0 ± – | 3.0 ± – |" in md
    old = results_markdown({"config": {"methods": ["baseline"], "seeds": [0, 1]}, "runs": runs})
    assert 'seed_scope = "pipeline"' in old and "leaves out the split and the GAN draw" in old


def test_benchmark_on_two_ranks_shards_runs_merges_and_a_rerun_runs_nothing(tmp_path):
    import subprocess
    import sys

    root = tmp_path / "celeba"
    make_toy_celeba(root, n=300)
    out = tmp_path / "bench"
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[1] / "src"),
                                          os.environ.get("PYTHONPATH", "")])}
    args = [sys.executable, "-m", "fairlatent.cli", "benchmark", "celeba", "--root", str(root), "--out", str(out),
            "--preset", "test", "--quiet", "--seeds", "0,1", "--targets", "Smiling", "--skew-target", "Smiling",
            "--skews", "0.5", "--set", "classifier.epochs=2", "--set", "gan.steps=1200"]
    first = subprocess.run([*args, "--nproc", "2"], env=env, capture_output=True, text=True, timeout=900)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    res = json.loads((out / "results.json").read_text())
    expected = {"runs": {"Smiling/seed0", "Smiling/seed1"}, "skew": {"Smiling/skew0.5"}}
    assert not res["failed"], res["failed"]
    for bucket, keys in expected.items():  # every (target, seed) and skew run finished and is merged
        assert set(res[bucket]) == keys
    assert res["config"]["seed_scope"] == "all" and res["machine"]["ranks"] == 2
    # the recorded command is the one typed, --nproc 2 included (torchrun's re-launch strips it)
    assert res["command"].startswith("fairlatent benchmark celeba --root ") and res["command"].endswith(" --nproc 2")
    records = {p.name: json.loads(p.read_text()) for p in (out / "done").glob("*.json")}
    assert len(records) == 3
    # claimed by the ranks: both ranks ran at least one run
    assert {r["rank"] for r in records.values()} == {0, 1} and all(r["world"] == 2 for r in records.values())
    for key in res["runs"]:
        assert res["runs"][key]["rank"] == records[f"runs__{key.replace('/', '__')}.json"]["rank"]
    # each run's report hook ran (on the rank that ran it): report.html beside every finished run
    for key, r in res["runs"].items():
        assert (out / "targets" / "Smiling" / f"seed{r['seed']}" / "report.html").is_file()
    # per-seed shared sets, GANs trained data-parallel on both ranks, and two different draws
    gans = [out / "shared" / f"seed{s}" / "gan" / "model" for s in (0, 1)]
    assert all(json.loads((g / "config.json").read_text())["world_size"] == 2 for g in gans)
    w0, w1 = (_generator_weights(g) for g in gans)
    assert any(not np.array_equal(w0[k], w1[k]) for k in w0)
    md = (out / "results.md").read_text()
    assert 'seed_scope = "all"' in md and "Per target across seeds" in md
    assert "| Smiling | baseline | 2 |" in md
    assert not (out / "benchmark.pid").exists()

    # a rerun on one process finds every run finished and runs nothing again
    stages = {p: p.stat().st_mtime_ns for p in out.rglob("stage.json")}
    done = {p: p.read_text() for p in (out / "done").glob("*.json")}
    second = subprocess.run([*args, "--nproc", "1"], env=env, capture_output=True, text=True, timeout=900)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert "3 runs: 3 finished earlier, 0 to run" in second.stdout
    assert {p: p.stat().st_mtime_ns for p in out.rglob("stage.json")} == stages
    assert {p: p.read_text() for p in (out / "done").glob("*.json")} == done
    res2 = json.loads((out / "results.json").read_text())
    assert res2["runs"] == res["runs"] and res2["machine"]["ranks"] == 1


def test_lock_is_taken_by_rank_zero_only_under_torchrun(tmp_path, monkeypatch):
    from fairlatent.benchmark.lock import LOCK_NAME, benchmark_lock

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    with benchmark_lock(tmp_path / "b") as lock:
        assert lock is None and not (tmp_path / "b" / LOCK_NAME).exists()
    monkeypatch.setenv("RANK", "0")
    with benchmark_lock(tmp_path / "b") as lock:
        assert lock == tmp_path / "b" / LOCK_NAME and lock.read_text().splitlines()[0] == str(os.getpid())
    assert not (tmp_path / "b" / LOCK_NAME).exists()


def test_one_translator_per_seed_serves_every_target_and_a_wrong_one_is_refused(tmp_path):
    """cyclegan_augment in the benchmark: the seed's translator is trained once, by the first run that needs
    it, and every target's run uses that very translator (its stage records it as given, with its hash);
    a translator of another protected attribute is refused by name."""
    from rich.console import Console

    from fairlatent.benchmark.celeba import CelebABenchmark
    from fairlatent.pipeline.config import validate_config
    from fairlatent.pipeline.run import run_pipeline

    root = tmp_path / "celeba"
    make_toy_celeba(root, n=300)
    out = tmp_path / "bench"
    cfg = _bench_config(root, seeds=[0], targets=["Smiling", "Wearing_Hat"], min_positives=1,
                        methods=["baseline", "cyclegan_augment"],
                        translator={"width": 4, "n_blocks": 1, "steps": 4, "checkpoint_every": 2})
    results = CelebABenchmark(cfg, out, console=Console(quiet=True), progress=False).run()
    assert not results["failed"], results["failed"]
    assert set(results["runs"]) == {"Smiling/seed0", "Wearing_Hat/seed0"}
    shared = out / "shared" / "seed0" / "translator" / "model"
    rec = json.loads((shared / "translator.json").read_text())
    assert rec["done"] and rec["protected"] == "Male" and rec["step"] == 4
    stage = json.loads((out / "shared" / "seed0" / "translator" / "stage.json").read_text())
    for target in ("Smiling", "Wearing_Hat"):
        run_dir = out / "targets" / target / "seed0"
        given = json.loads((run_dir / "translator" / "stage.json").read_text())
        assert given["outputs"] == {"path": str(shared.resolve()), "given": True}
        assert not (run_dir / "translator" / "model").exists()  # nothing trained in the run
        assert "cyclegan_augment" in json.loads((run_dir / "report.json").read_text())["methods"]
    # a rerun trains no translator again
    CelebABenchmark(cfg, out, console=Console(quiet=True), progress=False).run()
    assert json.loads((out / "shared" / "seed0" / "translator" / "stage.json").read_text()) == stage
    # the same translator given to a run whose protected attribute is another one
    data = out / "shared" / "seed0" / "data" / "dataset"
    bad = validate_config({"seed": 0, "name": "bad", "data": {"source": "path", "path": str(data),
                                                              "target": "Smiling", "protected": "Young"},
                           "methods": ["baseline", "cyclegan_augment"], "translator_path": str(shared),
                           "classifier": {"width": 4, "epochs": 1}}, where="test")
    with pytest.raises(FairlatentError, match=r"translator_path .*'Male'.*'Young'"):
        run_pipeline(bad, tmp_path / "bad", console=Console(quiet=True), progress=False)


def test_protected_extra_and_the_shared_translator_reach_the_runs_only_when_asked(tmp_path):
    """data.protected_extra and translator_path go into a run's pipeline config only when the benchmark asks
    for them, so the keys of runs finished before they existed stay as they were."""
    from rich.console import Console

    from fairlatent.benchmark.celeba import CelebABenchmark, CelebABenchmarkConfig
    from fairlatent.benchmark.tasks import RunSpec

    spec = RunSpec("runs", "Smiling/seed0", "Smiling", 0, "/data", tmp_path / "run", "/gan", "/protected")
    plain = CelebABenchmark(CelebABenchmarkConfig(root="x"), tmp_path / "a", console=Console(quiet=True))
    dump = plain.pipeline_config(spec).model_dump(mode="json")
    assert "protected_extra" not in dump["data"] and "translator_path" not in dump and "oversample" not in dump
    asked = CelebABenchmark(CelebABenchmarkConfig(root="x", protected_extra=["Young"],
                                                  methods=["baseline", "latent_debias_multi", "cyclegan_augment"]),
                            tmp_path / "b", console=Console(quiet=True))
    cfg = asked.pipeline_config(spec)
    assert cfg.data.protected_extra == ["Young"]
    assert cfg.translator_path == str((tmp_path / "b" / "shared" / "seed0" / "translator" / "model").resolve())
    assert asked.run_key(spec) != plain.run_key(spec)
    with pytest.raises(FairlatentError, match="latent_debias_multi.*protected_extra"):
        CelebABenchmark(CelebABenchmarkConfig(root="x", methods=["baseline", "latent_debias_multi"]),
                        tmp_path / "c", console=Console(quiet=True)).pipeline_config(spec)


_HOLD_TRANSLATOR_LOCK = r"""
import fcntl, json, sys, time
from pathlib import Path
lock, out, targets, seen = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3].split(","), Path(sys.argv[4])
lock.parent.mkdir(parents=True, exist_ok=True)
fh = open(lock, "a+b")
fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
seen.with_suffix(".held").write_text("held")
reports = [out / "targets" / t / "seed0" / "report.json" for t in targets]
deadline = time.time() + 600
while not all(r.is_file() for r in reports) and time.time() < deadline:
    time.sleep(0.2)
time.sleep(0.5)  # the report is renamed into place whole; let the partial run finish its last writes
snap = {t: {"methods": sorted(json.loads(r.read_text())["methods"]),
            "baseline_stage": (r.parent / "train_baseline" / "stage.json").read_text()}
        for t, r in zip(targets, reports) if r.is_file()}
seen.write_text(json.dumps(snap))
fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
"""


def test_runs_train_their_other_methods_while_another_process_trains_the_translator(tmp_path):
    """While another process holds the seed's translator lock (another rank training it), each run first
    trains the methods that do not need it, without a record; after the lock is released the runs finish
    whole, reusing those stages, and their figures equal those of runs made in one go. A run is claimed by
    exactly one taker, and the claims are gone when the benchmark ends."""
    import subprocess
    import sys
    import time

    from rich.console import Console

    from fairlatent.benchmark.celeba import CelebABenchmark
    from fairlatent.benchmark.lock import read_claim
    from fairlatent.benchmark.tasks import claim_name

    root = tmp_path / "celeba"
    make_toy_celeba(root, n=300)
    targets = ["Smiling", "Wearing_Hat"]
    cfg = _bench_config(root, seeds=[0], targets=targets, min_positives=1, methods=["baseline", "cyclegan_augment"],
                        translator={"width": 4, "n_blocks": 1, "steps": 4, "checkpoint_every": 2})
    out, seen = tmp_path / "bench", tmp_path / "seen.json"
    holder = subprocess.Popen([sys.executable, "-c", _HOLD_TRANSLATOR_LOCK,
                               str(out / "shared" / "seed0" / "translator.lock"), str(out), ",".join(targets),
                               str(seen)])
    try:
        while not seen.with_suffix(".held").is_file():
            assert holder.poll() is None, "the lock holder died"
            time.sleep(0.1)
        bench = CelebABenchmark(cfg, out, console=Console(quiet=True), progress=False)
        results = bench.run()
    finally:
        holder.wait(timeout=600)
    snap = json.loads(seen.read_text())
    assert set(snap) == set(targets)
    for t in targets:  # while the lock was held: the other method only
        assert snap[t]["methods"] == ["baseline"]
        run_dir = out / "targets" / t / "seed0"
        assert (run_dir / "train_baseline" / "stage.json").read_text() == snap[t]["baseline_stage"]  # not redone
        assert sorted(json.loads((run_dir / "report.json").read_text())["methods"]) == ["baseline",
                                                                                         "cyclegan_augment"]
    assert not results["failed"] and set(results["runs"]) == {f"{t}/seed0" for t in targets}
    assert not list((out / "done").glob("*.claim"))
    # the same benchmark in one go: the same figures, method by method
    direct = CelebABenchmark(cfg, tmp_path / "direct", console=Console(quiet=True), progress=False).run()
    for key, run in results["runs"].items():
        assert run["methods"] == direct["runs"][key]["methods"], key
    # one taker per run; an invocation clears the claims an earlier one left
    spec = bench.specs[0]
    assert bench._claim(spec) and not bench._claim(spec)
    assert read_claim(out / "done" / claim_name(spec)) == {"rank": 0, "pid": os.getpid()}  # what status reads
    CelebABenchmark(cfg, out, console=Console(quiet=True), progress=False).run()
    assert not (out / "done" / claim_name(spec)).exists()
