"""Subsampling a split to a chosen skew (fairlatent.data.skew) and ``data.skew`` for a data set read from a path."""

from __future__ import annotations

import numpy as np
import pytest

from fairlatent.data.skew import (max_per_class, skew_cell_counts, skew_direction, skew_summary, skewed_indices)
from fairlatent.errors import FairlatentError


def planted(cells: dict[tuple[int, int], int], seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(t, g) arrays with exactly these (t, g) cell counts, rows shuffled."""
    t = np.concatenate([np.full(n, c) for (c, b), n in cells.items()])
    g = np.concatenate([np.full(n, b) for (c, b), n in cells.items()])
    perm = np.random.default_rng(seed).permutation(len(t))
    return t[perm], g[perm]


# target more common in g = 1: P(t=1 | g=1) = 100/160, P(t=1 | g=0) = 40/160
CELLS = {(1, 1): 100, (1, 0): 40, (0, 0): 120, (0, 1): 60}


def counts(t, g):
    return {(c, b): int(((t == c) & (g == b)).sum()) for c in (0, 1) for b in (0, 1)}


def test_largest_size_and_exact_cells_on_a_planted_case():
    t, g = planted(CELLS)
    assert skew_direction(t, g) == 1
    # N = floor(min(100 / 0.8, 40 / 0.2, 120 / 0.8, 60 / 0.2)) = floor(min(125, 200, 150, 300)) = 125
    assert max_per_class(CELLS, [0.8], 1) == 125
    idx = skewed_indices(t, g, [0.8], seed=3)[0.8]
    assert len(idx) == 250 and len(np.unique(idx)) == 250
    # round(0.8 * 125) = 100 in each majority cell, 25 in each minority cell: P = 100/125 = 0.8 exactly
    assert counts(t[idx], g[idx]) == {(1, 1): 100, (1, 0): 25, (0, 0): 100, (0, 1): 25}
    summary = skew_summary(t[idx], g[idx], 1)
    assert summary["P(g=a|t=1)"] == 0.8 and summary["P(g=1-a|t=0)"] == 0.8 and summary["skew"] == 0.8
    assert summary["P(g=t)"] == 0.8 and summary["n"] == 250  # a = 1: the skew is P(g = t), as in ToyFaces
    assert summary["cells"] == {"t0_g0": 100, "t0_g1": 25, "t1_g0": 25, "t1_g1": 100}


def test_fixed_size_rounds_the_majority_cells():
    t, g = planted(CELLS)
    idx = skewed_indices(t, g, [0.7, 0.55], seed=0, per_class=51)
    # round(0.7 * 51) = round(35.7) = 36; round(0.55 * 51) = round(28.05) = 28
    assert counts(t[idx[0.7]], g[idx[0.7]]) == {(1, 1): 36, (1, 0): 15, (0, 0): 36, (0, 1): 15}
    assert counts(t[idx[0.55]], g[idx[0.55]]) == {(1, 1): 28, (1, 0): 23, (0, 0): 28, (0, 1): 23}
    assert skew_cell_counts(51, 0.7, 1) == {(1, 1): 36, (0, 0): 36, (1, 0): 15, (0, 1): 15}


def test_direction_follows_the_data_and_a_tie_gives_p_g_equals_t():
    # target more common in g = 0: the majority cells are (t=1, g=0) and (t=0, g=1)
    rev = {(1, 0): 100, (1, 1): 40, (0, 1): 120, (0, 0): 60}
    t, g = planted(rev)
    assert skew_direction(t, g) == 0
    idx = skewed_indices(t, g, [0.9], seed=1)[0.9]
    # N = floor(min(100/0.9, 40/0.1, 120/0.9, 60/0.1)) = floor(111.1) = 111; round(0.9 * 111) = 100
    assert counts(t[idx], g[idx]) == {(1, 0): 100, (1, 1): 11, (0, 1): 100, (0, 0): 11}
    assert skew_summary(t[idx], g[idx], 0)["P(g=t)"] == pytest.approx(22 / 222)
    tie_t, tie_g = planted({(1, 1): 50, (1, 0): 50, (0, 0): 50, (0, 1): 50})
    assert skew_direction(tie_t, tie_g) == 1


def test_extreme_skews_leave_the_unused_cells_out_of_the_bound():
    t, g = planted(CELLS)
    one = skewed_indices(t, g, [1.0], seed=0)[1.0]  # N = min(100, 120): only the majority cells count
    assert counts(t[one], g[one]) == {(1, 1): 100, (1, 0): 0, (0, 0): 100, (0, 1): 0}
    zero = skewed_indices(t, g, [0.0], seed=0)[0.0]  # N = min(40, 60): only the minority cells count
    assert counts(t[zero], g[zero]) == {(1, 1): 0, (1, 0): 40, (0, 0): 0, (0, 1): 40}


def test_seeded_and_one_cell_order_for_every_skew():
    t, g = planted(CELLS)
    a = skewed_indices(t, g, [0.6, 0.8], seed=5)
    b = skewed_indices(t, g, [0.6, 0.8], seed=5)
    c = skewed_indices(t, g, [0.6, 0.8], seed=6)
    assert all(np.array_equal(a[s], b[s]) for s in a)
    assert not np.array_equal(a[0.8], c[0.8])
    # a generator works as the seed; the same stream gives the same subset
    g1 = skewed_indices(t, g, [0.6, 0.8], np.random.default_rng(5))
    assert all(np.array_equal(g1[s], a[s]) for s in a)
    # one size for the sweep: N = floor(min(100/0.8, 40/0.4, 120/0.8, 60/0.4)) = 100, set by 0.6
    assert {len(v) for v in a.values()} == {200}
    # the 0.8 subset's majority cells contain the 0.6 subset's (one seeded order per cell, taken from the front)
    maj = lambda idx: set(idx[((t[idx] == 1) & (g[idx] == 1)) | ((t[idx] == 0) & (g[idx] == 0))])  # noqa: E731
    assert maj(a[0.6]) <= maj(a[0.8])


def test_too_large_a_size_is_refused_naming_the_numbers():
    t, g = planted(CELLS)
    with pytest.raises(FairlatentError) as err:
        skewed_indices(t, g, [0.8], seed=0, per_class=130, what="data.skew = 0.8", names=("Smiling", "Male"))
    msg = str(err.value)
    # round(0.8 * 130) = 104 > 100 images with Smiling = 1, Male = 1
    assert msg.startswith("data.skew = 0.8: skew 0.8 at 260 images (130 per Smiling class)")
    assert "needs 104 images with Smiling = 1, Male = 1 but there are only 100" in msg
    assert "the largest size this skew allows is 250 (125 per class" in msg
    # the largest size itself is accepted
    assert len(skewed_indices(t, g, [0.8], seed=0, per_class=125)[0.8]) == 250


def test_a_nearly_empty_cell_is_refused_at_the_default_size():
    t, g = planted({(1, 1): 100, (1, 0): 1, (0, 0): 100, (0, 1): 100})
    # skew 0.9: N <= 1 / 0.1 = 10, fine; skew 0.95: N <= 1 / 0.05 = 20; skew 0.5: N <= 2 < 10
    assert max_per_class(counts(t, g), [0.9], 1) == 10
    with pytest.raises(FairlatentError, match=r"too few images .*\(each class could hold only 2 images; cells .*t=1/g=0: 1,"):
        skewed_indices(t, g, [0.5], seed=0)


# --------------------------------------------------------------------------------- the pipeline's data.skew
from fairlatent.pipeline.config import validate_config  # noqa: E402


def path_data(**data):
    return {"data": {"source": "path", "path": "/nowhere/ds", "target": "Wearing_Hat", "protected": "Eyeglasses",
                     **data}}


@pytest.mark.parametrize("data, fragments", [
    ({"skew": 1.5}, ["data.skew", "less than or equal to 1"]),
    ({"test_skew": -0.1}, ["data.test_skew", "greater than or equal to 0"]),
    ({"skew": 0.9, "train_size": 301}, ["data.train_size = 301 must be even"]),
    ({"train_size": 400}, ["data.train_size = 400", "set data.skew too"]),
    ({"skew": 0.9, "train_size": 10}, ["data.train_size", "greater than or equal to 20"]),
])
def test_path_skew_keys_are_validated_at_load(data, fragments):
    with pytest.raises(FairlatentError) as err:
        validate_config(path_data(**data))
    for f in fragments:
        assert f in str(err.value)


def test_train_size_is_refused_for_toyfaces_and_toyfaces_keeps_its_default_skew():
    with pytest.raises(FairlatentError, match=r"data\.train_size = 400 subsamples a data set read from data\.path"):
        validate_config({"data": {"skew": 0.9, "train_size": 400}})
    assert validate_config({}).data.skew == 0.9  # ToyFaces renders at 0.9 unless told
    path = validate_config(path_data())
    assert path.data.skew is None and path.data.subsampling() == {}  # a data set read as it is
    cfg = validate_config(path_data(skew=0.7, test_skew=0.5, train_size=200))
    assert cfg.data.subsampling() == {"train": 0.7, "test": 0.5}
    # the dump validates back to the same config; an unset train_size is left out of it
    assert validate_config(cfg.model_dump()).data == cfg.data
    assert "train_size" not in path.model_dump()["data"] and cfg.model_dump()["data"]["train_size"] == 200


def test_run_command_refuses_a_bad_train_size_with_exit_2(tmp_path, cli):
    f = tmp_path / "c.toml"
    f.write_text(f'[data]\nsource = "path"\npath = "{tmp_path}"\nskew = 0.9\ntrain_size = 301\n')
    cli.user_error(["run", f, "--out", tmp_path / "run"], "data.train_size = 301 must be even")
    assert not (tmp_path / "run").exists()


@pytest.fixture(scope="module")
def toy_independent(tmp_path_factory):
    """ToyFaces rendered at skew 0.5: Wearing_Hat and Eyeglasses independent (105 images per train cell)."""
    from fairlatent.data.toyfaces import make_toyfaces

    return make_toyfaces(tmp_path_factory.mktemp("toy05") / "toy", n=600, size=32, seed=0, skew=0.5,
                         progress=False)


def data_stage(cfg_raw, run_dir):
    from fairlatent.pipeline.run import Pipeline

    pipe = Pipeline(validate_config(cfg_raw), run_dir, progress=False)
    pipe.stage_data()
    return pipe


def test_path_data_set_is_subsampled_to_the_requested_skew_and_size(toy_independent, tmp_path):
    from fairlatent.data.dataset import load_dataset

    src = load_dataset(toy_independent)
    tr = src.split_indices("train")
    assert counts(src.labels("Wearing_Hat", tr), src.labels("Eyeglasses", tr)) == {
        (0, 0): 105, (0, 1): 105, (1, 0): 105, (1, 1): 105}
    raw = path_data(path=str(toy_independent), skew=0.9, train_size=200)
    pipe = data_stage(raw, tmp_path / "run")
    out = pipe.stages.results["data"].outputs
    ds = load_dataset(out["path"])
    assert ds.path.parent == tmp_path / "run" / "data"  # derived data set in the run folder
    t, g = ds.labels("Wearing_Hat", ds.split_indices("train")), ds.labels("Eyeglasses", ds.split_indices("train"))
    # independent data: a tie, so a = 1 and the skew is P(Eyeglasses = Wearing_Hat), as ToyFaces renders it
    assert counts(t, g) == {(1, 1): 90, (0, 0): 90, (1, 0): 10, (0, 1): 10}
    assert out["direction"] == 1
    rec = out["skew"]["train"]
    assert rec["requested"] == 0.9 and rec["skew"] == 0.9 and rec["P(g=t)"] == 0.9 and rec["n"] == 200
    assert rec["available"] == 420 and rec["cells"] == {"t0_g0": 90, "t0_g1": 10, "t1_g0": 10, "t1_g1": 90}
    assert set(out["skew"]) == {"train"}
    # val, test and test_balanced untouched: the same rows and pixels as the source
    for split in ("val", "test", "test_balanced"):
        a, b = src.split_indices(split), ds.split_indices(split)
        assert list(src.table["id"].to_numpy()[a]) == list(ds.table["id"].to_numpy()[b])
        assert np.array_equal(np.asarray(src.images[a]), np.asarray(ds.images[b]))
    # the train rows are source rows with their own pixels and labels
    by_id = {i: k for k, i in enumerate(src.table["id"])}
    rows = np.array([by_id[i] for i in ds.table["id"].to_numpy()[ds.split_indices("train")]])
    assert np.array_equal(np.asarray(src.images[rows]), np.asarray(ds.images[ds.split_indices("train")]))
    assert np.array_equal(src.labels("Wearing_Hat", rows), t)
    # seeded: a second run folder draws the same rows; another seed other rows
    again = load_dataset(data_stage(raw, tmp_path / "again").stages.results["data"].outputs["path"])
    assert list(again.table["id"]) == list(ds.table["id"])
    other = load_dataset(data_stage({**raw, "seed": 1}, tmp_path / "other").stages.results["data"].outputs["path"])
    assert list(other.table["id"]) != list(ds.table["id"])


def test_default_size_and_test_skew_leave_test_balanced_alone(toy_independent, tmp_path):
    from fairlatent.data.dataset import load_dataset

    src = load_dataset(toy_independent)
    out = data_stage(path_data(path=str(toy_independent), skew=0.8, test_skew=0.7),
                     tmp_path / "run").stages.results["data"].outputs
    ds = load_dataset(out["path"])
    # train: N = floor(min(105/0.8, 105/0.2)) = 131 per class, round(0.8 * 131) = 105
    assert out["skew"]["train"]["n"] == 262 and len(ds.split_indices("train")) == 262
    assert out["skew"]["train"]["cells"] == {"t0_g0": 105, "t0_g1": 26, "t1_g0": 26, "t1_g1": 105}
    te = src.split_indices("test")
    c = counts(src.labels("Wearing_Hat", te), src.labels("Eyeglasses", te))
    n = int(np.floor(min(min(c[1, 1], c[0, 0]) / 0.7, min(c[1, 0], c[0, 1]) / 0.3)))
    k = round(0.7 * n)
    assert out["skew"]["test"]["cells"] == {"t0_g0": k, "t0_g1": n - k, "t1_g0": n - k, "t1_g1": k}
    assert len(ds.split_indices("test")) == 2 * n < len(te)
    assert len(ds.split_indices("test_balanced")) == len(src.split_indices("test_balanced"))
    assert len(ds.split_indices("val")) == len(src.split_indices("val"))


def test_an_unreachable_size_is_refused_before_anything_is_written(toy_independent, tmp_path):
    raw = path_data(path=str(toy_independent), skew=0.9, train_size=400)
    with pytest.raises(FairlatentError) as err:
        data_stage(raw, tmp_path / "run")
    msg = str(err.value)
    assert msg.startswith("data.skew = 0.9 at data.train_size = 400")
    # round(0.9 * 200) = 180 images needed in a cell of 105; the largest at 0.9: floor(105/0.9) = 116 per class
    assert "needs 180 images with Wearing_Hat = 0, Eyeglasses = 0 but there are only 105" in msg
    assert "the largest size this skew allows is 232" in msg
    assert not (tmp_path / "run" / "data" / "dataset").exists()
