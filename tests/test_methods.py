"""The method registry (fairlatent.pipeline.methods): every method's training set on a tiny fake run
directory, what each needs upstream, and synthetic_only trained through the pipeline's own stage."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fairlatent.data.dataset import load_dataset, write_dataset
from fairlatent.errors import FairlatentError
from fairlatent.pipeline import methods as registry
from fairlatent.pipeline.config import validate_config
from fairlatent.pipeline.methods import Method, MethodContext, TrainingSets, get_method, method_names
from fairlatent.train.classifier import collect_training_rows

T, G = "Wearing_Hat", "Eyeglasses"
N_PAIRS = 12


@pytest.fixture(scope="module")
def fake_run(tmp_path_factory):
    """A real data set (train/val/test) and a pairs folder shaped like the pairs stage writes it."""
    root = tmp_path_factory.mktemp("fake_run")
    rng = np.random.default_rng(0)
    splits = ["train"] * 40 + ["val"] * 24 + ["test"] * 16
    n = len(splits)
    t = np.tile([0, 1], n // 2)
    g = np.tile([0, 0, 1, 1], n // 4)
    table = pd.DataFrame({"id": [f"r{i:03d}" for i in range(n)], "split": splits, T: t, G: g})
    # a learnable target: brighter images are hats
    images = (rng.integers(0, 60, (n, 16, 16, 3)) + 150 * t[:, None, None, None]).astype(np.uint8)
    data = write_dataset(root / "data" / "dataset", images, table, {"source": "test"})
    pairs = root / "pairs"
    for name, keep in (("complementary", N_PAIRS), ("complementary_filtered", N_PAIRS - 4),
                       ("complementary_verified", N_PAIRS - 8), ("complementary_domain", N_PAIRS),
                       ("multi_protected", N_PAIRS), ("onto_plane", N_PAIRS),
                       ("reflect", N_PAIRS), ("project", N_PAIRS)):
        tz = np.tile([0, 1], keep // 2)
        gz = np.tile([0, 1, 1, 0], keep // 4 + 1)[:keep]
        ptable = pd.DataFrame({"id": [f"z{i:06d}" for i in range(keep)] + [f"zp{i:06d}" for i in range(keep)],
                               "split": "train", "group_id": np.concatenate([np.arange(keep)] * 2).astype(str),
                               T: np.concatenate([tz, tz]), G: np.concatenate([gz, 1 - gz])})
        pimg = (rng.integers(0, 60, (2 * keep, 16, 16, 3)) + 150 * np.concatenate([tz, tz])[:, None, None, None])
        write_dataset(pairs / name, pimg.astype(np.uint8), ptable, {"source": "latent_pairs"},
                      latents=rng.normal(size=(2 * keep, 8)).astype(np.float32))
    # what the translations stage writes: each real training image in the other protected group
    tr = np.flatnonzero(np.array(splits) == "train")
    ttable = pd.DataFrame({"id": [f"tx_r{i:03d}" for i in tr], "split": "train", T: t[tr], G: 1 - g[tr]})
    write_dataset(root / "translations" / "dataset", images[tr], ttable, {"source": "cyclegan_translations"})
    # what the oversample stage writes: decoded images of the rare cells, each with its cell's labels
    otable = pd.DataFrame({"id": [f"rae_t0_g1_{i:06d}" for i in range(6)] + [f"rae_t1_g0_{i:06d}" for i in range(6)],
                           "split": "train", T: [0] * 6 + [1] * 6, G: [1] * 6 + [0] * 6})
    write_dataset(root / "oversample" / "dataset", images[:12], otable, {"source": "rae_oversampling"})
    return data, pairs


def _ctx(fake_run) -> MethodContext:
    data, pairs = fake_run
    return MethodContext(data_path=str(data), pairs_dir=pairs, target=T, protected=G, load_dataset=load_dataset,
                         translations=str(pairs.parent / "translations" / "dataset"),
                         oversampled=str(pairs.parent / "oversample" / "dataset"))


def test_registry_lists_every_method_once_and_names_unknown_ones():
    names = method_names()
    assert names[:3] == ("baseline", "reweighting", "latent_debias")
    assert {"latent_debias_filtered", "synthetic_only", "real_plus_gz"} <= set(names)
    assert all(get_method(n).name == n and get_method(n).description for n in names)
    with pytest.raises(FairlatentError, match="unknown method 'magic'; methods are: baseline, reweighting"):
        get_method("magic")
    with pytest.raises(ValueError, match="already registered"):
        registry.register_method(Method("baseline", "again", lambda ctx, m: TrainingSets([ctx.data_path])))
    with pytest.raises(ValueError, match="unknown edit 'sideways'"):
        Method("x", "x", lambda ctx, m: TrainingSets([]), edit="sideways")
    with pytest.raises(ValueError, match="unknown pair_filter 'some'; filters are all, agree, verified"):
        Method("x", "x", lambda ctx, m: TrainingSets([]), edit="complementary", pair_filter="some")
    with pytest.raises(ValueError, match="pair_filter 'verified' needs an edit"):
        Method("x", "x", lambda ctx, m: TrainingSets([]), pair_filter="verified")
    with pytest.raises(ValueError, match="unknown domain_heads 'shared'; they are independent, discriminative"):
        Method("x", "x", lambda ctx, m: TrainingSets([]), domain_heads="shared")


@pytest.mark.parametrize("name", method_names())
def test_every_method_builds_a_training_set_the_trainer_accepts(fake_run, name):
    data, pairs = fake_run
    m = validate_config({}).method(name)  # latent_debias's pair filter resolved to the default
    ts = m.training_sets(_ctx(fake_run))
    assert (ts.weights is not None) == m.sample_weights
    datasets = [load_dataset(p) for p in ts.sets]
    rows = collect_training_rows(datasets, [T], "train", ts.weights, None)  # what train_classifier checks first
    n_real = 40
    if m.needs_pairs:
        assert str(pairs / m.pair_set) in ts.sets
        assert (str(data) in ts.sets) == (name != "synthetic_only")
    elif m.translated or m.oversampled:
        assert ts.sets[0] == str(data) and m.pair_set is None
    else:
        assert ts.sets == [str(data)] and m.pair_set is None
    expected_rows = sum(len(d.split_indices("train")) for d in datasets)
    assert len(rows) == expected_rows
    if name == "synthetic_only":
        assert len(rows) == 2 * N_PAIRS  # G(z) ∪ G(z'), no real image
    if name == "latent_debias_filtered":
        assert ts.sets[1].endswith("complementary_filtered")
    if name in ("latent_debias_verified", "latent_debias"):  # latent_debias: the default filter is 'verified'
        assert ts.sets[1].endswith("complementary_verified") and len(rows) == n_real + 2 * (N_PAIRS - 8)
    if name == "cyclegan_augment":  # real + every real training image translated
        assert ts.sets[1].endswith("translations/dataset") and len(rows) == 2 * n_real
        assert rows.labels[n_real:, 0].tolist() == rows.labels[:n_real, 0].tolist()
    if name == "latent_oversample":  # real + the decoded rare-cell images, with their cells' labels
        assert ts.sets[1].endswith("oversample/dataset") and len(rows) == n_real + 12
        assert rows.labels[n_real:, 0].tolist() == [0] * 6 + [1] * 6
    if name == "real_plus_gz":  # G(z) kept, its partner G(z') weighted out
        w = rows.weights[n_real:]
        assert w[:N_PAIRS].tolist() == [1.0] * N_PAIRS and w[N_PAIRS:].tolist() == [0.0] * N_PAIRS
    if name == "reweighting":
        # w(t,g) = N_t / (2·N_tg): the protected groups weigh the same within each class
        t, g, w = rows.labels[:, 0], load_dataset(data).labels(G, load_dataset(data).split_indices("train")), rows.weights
        for c in (0, 1):
            assert w[(t == c) & (g == 0)].sum() == pytest.approx(w[(t == c) & (g == 1)].sum())


@pytest.mark.parametrize("pair_filter, folder", [("all", "complementary"), ("agree", "complementary_filtered"),
                                                  ("verified", "complementary_verified")])
def test_latent_debias_trains_on_the_pairs_latent_pair_filter_keeps(fake_run, pair_filter, folder):
    cfg = validate_config({"methods": ["latent_debias", "latent_debias_filtered"],
                           "latent": {"pair_filter": pair_filter}})
    assert cfg.method("latent_debias").pair_set == folder
    assert cfg.method("latent_debias").training_sets(_ctx(fake_run)).sets[1].endswith(folder)
    # a method with a fixed filter ignores the setting
    assert cfg.method("latent_debias_filtered").pair_set == "complementary_filtered"


def test_latent_debias_defaults_to_verified_pairs_and_refuses_an_unresolved_filter():
    assert validate_config({}).latent.pair_filter == "verified"
    with pytest.raises(AssertionError, match="resolve its pair filter"):
        _ = get_method("latent_debias").pair_set
    with pytest.raises(FairlatentError, match="latent.pair_filter"):
        validate_config({"latent": {"pair_filter": "some"}})


def test_upstream_needs_follow_the_registry():
    cfg = validate_config({"methods": ["baseline", "reweighting"]})
    assert not cfg.needs_pairs() and cfg.edits_needed() == []
    cfg = validate_config({"methods": ["synthetic_only"]})
    assert cfg.needs_pairs() and cfg.edits_needed() == ["complementary"]
    cfg = validate_config({"methods": ["baseline", "latent_debias_reflect", "real_plus_gz", "latent_debias_filtered"]})
    assert cfg.edits_needed() == ["complementary", "reflect"]
    assert all(get_method(m).balanced_val for m in method_names() if get_method(m).needs_pairs)


def test_a_registered_method_is_accepted_by_the_config(monkeypatch):
    monkeypatch.setitem(registry._REGISTRY, "latent_debias_twice",
                        Method("latent_debias_twice", "pairs set given twice",
                               lambda ctx, m: TrainingSets([ctx.data_path, ctx.pairs(m.pair_set)] * 2),
                               edit="project", balanced_val=True))
    cfg = validate_config({"methods": ["latent_debias_twice"]})
    assert cfg.edits_needed() == ["project"]
    with pytest.raises(FairlatentError, match="pairs stage has not run"):
        get_method("latent_debias_twice").training_sets(MethodContext("d", None, T, G))


def test_synthetic_only_trains_on_pairs_and_selects_on_balanced_real_val(fake_run, tmp_path):
    """Through Pipeline.stage_train, as a run would: before the registry this name passed validation and
    failed with 'unknown method' after the GAN, labeler and pairs stages had run."""
    from fairlatent.models.classifier import read_classifier_config
    from fairlatent.pipeline.run import Pipeline
    from fairlatent.pipeline.stages import StageResult

    data, pairs = fake_run
    cfg = validate_config({"data": {"source": "path", "path": str(data), "target": T, "protected": G},
                           "classifier": {"epochs": 1, "width": 4, "stages": 1, "batch_size": 8},
                           "methods": ["synthetic_only"], "device": "cpu"})
    pipe = Pipeline(cfg, tmp_path / "run", progress=False)
    pipe.stages.results["data"] = StageResult("data", data.parent, "k-data", {"path": str(data)}, 0.0, True)
    pipe.stages.results["pairs"] = StageResult("pairs", pairs, "k-pairs", {}, 0.0, True)
    pipe.stage_train("synthetic_only")
    saved = read_classifier_config(pipe.stages.results["train_synthetic_only"].outputs["path"])
    assert saved["train_sets"] == [str(pairs / "complementary")]
    assert saved["train_rows"] == 2 * N_PAIRS
    assert saved["val_set"] == str(data) and saved["val_weighted"] is True


def test_latent_oversample_needs_its_stage_and_trains_on_real_only_when_nothing_was_decoded(fake_run, tmp_path):
    data, _ = fake_run
    m = get_method("latent_oversample")
    assert m.oversampled and m.balanced_val and not m.needs_pairs and not m.translated
    with pytest.raises(FairlatentError, match="the oversample stage has not run"):
        m.training_sets(MethodContext(str(data), None, T, G))
    with pytest.raises(ValueError, match="not on pairs or translations"):
        Method("x", "x", lambda ctx, m: TrainingSets([]), edit="complementary", oversampled=True)
    with pytest.raises(ValueError, match="trains nothing"):
        Method("x", "x", lambda ctx, m: TrainingSets([]), oversampled=True, post_process="equalized_odds")
    # every cell already at the target count: the stage wrote an empty set, and the method trains on real data
    empty = write_dataset(tmp_path / "empty", np.zeros((0, 16, 16, 3), np.uint8),
                          pd.DataFrame({"id": [], "split": [], T: [], G: []}), {"source": "rae_oversampling"})
    ts = m.training_sets(MethodContext(str(data), None, T, G, oversampled=str(empty)))
    assert ts.sets == [str(data)]
