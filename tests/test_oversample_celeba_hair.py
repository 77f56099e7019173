"""The CelebA hair-colour profile of the imbalance benchmark (``celeba_hair_split``, ``--benchmark celeba-hair``).

A tiny fairlatent data set is written in each test: 64 px faces whose pixel (0, 0) encodes the row they come
from, so a split can be traced back to the rows (and their identities and attributes) it used.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fairlatent.data.dataset import write_dataset
from fairlatent.errors import FairlatentError
from fairlatent.oversample.data import CELEBA_HAIR_CLASSES, celeba_hair_split

HAIR = [a for _, a in CELEBA_HAIR_CLASSES]
NAMES = [n for n, _ in CELEBA_HAIR_CLASSES]
COLOURS = [(20, 20, 20), (110, 70, 30), (230, 200, 120), (160, 160, 160), (220, 180, 150)]


def make_hair_dataset(path: Path, per_class=(20, 16, 12, 9, 8), *, multi=((0, 1), (2, 3), (3, 4)), none=5,
                      drop: str | None = None, identities=True, mixed=True, size=64, seed=0) -> pd.DataFrame:
    """Single-label faces ``per_class[c]`` of each class, two-colour faces ``multi`` and ``none`` faces with no hair
    attribute; identities of 1–3 faces cut from a shuffled order (so some mix classes, and some hold a
    two-colour face too; ``mixed=False`` sorts that order by class first, as in CelebA, where most people keep
    one hair colour); the rows cycle through train/val/test. Returns the table written."""
    r = np.random.default_rng(seed)
    hair = [np.eye(5, dtype=int)[c] for c, n in enumerate(per_class) for _ in range(n)]
    hair += [np.eye(5, dtype=int)[a] + np.eye(5, dtype=int)[b] for a, b in multi]
    hair += [np.zeros(5, dtype=int)] * none
    hair = np.array(hair)
    n = len(hair)
    order, group, g = r.permutation(n), np.empty(n, dtype=np.int64), 0
    if not mixed:
        key = np.where(hair.sum(1) == 1, hair.argmax(1), 5)
        order = order[np.argsort(key[order], kind="stable")]
    i = 0
    while i < n:
        k = int(r.integers(1, 4))
        group[order[i : i + k]] = 1000 + g
        i, g = i + k, g + 1
    images = r.integers(60, 120, size=(n, size, size, 3)).astype(np.uint8)
    for row in range(n):
        on = np.flatnonzero(hair[row])
        colour = np.mean([COLOURS[c] for c in on], axis=0) if len(on) else (90, 90, 90)
        images[row, : size // 4] = np.asarray(colour, dtype=np.uint8)
        images[row, 0, 0] = (row // 256, row % 256, 255)  # the row this face came from
    table = pd.DataFrame({"id": [f"{i:06d}.jpg" for i in range(n)], "split": [("train", "val", "test")[i % 3] for i in range(n)]})
    if identities:
        table["group_id"] = group
    for j, a in enumerate(HAIR):
        if a != drop:
            table[a] = hair[:, j]
    table["Smiling"] = r.integers(0, 2, n)
    write_dataset(path, images, table, {"source": "test"})
    return table


def rows_of(images: np.ndarray) -> np.ndarray:
    assert np.all(images[:, 0, 0, 2] == 255)
    return images[:, 0, 0, 0].astype(int) * 256 + images[:, 0, 0, 1]


def test_split_is_single_label_identity_disjoint_balanced_and_keeps_the_natural_counts(tmp_path):
    table = make_hair_dataset(tmp_path / "d")
    hair = table[HAIR].to_numpy()
    single = np.flatnonzero(hair.sum(1) == 1)
    group = table["group_id"].to_numpy()
    s = celeba_hair_split(tmp_path / "d", seed=0, test_per_class=3)
    assert s.class_names == NAMES
    assert s.train_images.shape[1:] == (64, 64, 3) and s.train_images.dtype == np.uint8
    tr, te = rows_of(s.train_images), rows_of(s.test_images)
    # only single-label faces, each labelled with its one hair attribute, none used twice
    assert set(tr) | set(te) <= set(single) and len(set(tr) | set(te)) == len(tr) + len(te)
    assert np.array_equal(hair[tr].argmax(1), s.train_labels) and np.array_equal(hair[te].argmax(1), s.test_labels)
    # identity-disjoint: no person on both sides
    test_ids = set(group[te])
    assert not test_ids & set(group[tr])
    # balanced test set of exactly test_per_class faces per class
    assert np.bincount(s.test_labels, minlength=5).tolist() == [3] * 5
    # training keeps every single-label face of every other identity, whatever the data set's own split
    expected = single[~np.isin(group[single], list(test_ids))]
    assert sorted(tr) == sorted(expected)
    assert set(table["split"].to_numpy()[tr]) == {"train", "val", "test"}
    assert s.train_counts() == np.bincount(hair[expected].argmax(1), minlength=5).tolist() == s.profile["counts"]
    assert s.profile["single_label_counts"] == [20, 16, 12, 9, 8]
    assert s.profile["multi_label_faces"] == 3 and s.profile["no_hair_label_faces"] == 5
    # the faces of test identities not drawn for the test set are the surplus the profile reports
    assert sum(s.profile["held_out_unused"]) == np.isin(group[single], list(test_ids)).sum() - 15


def test_the_seed_fixes_the_split(tmp_path):
    make_hair_dataset(tmp_path / "d")
    a, b = celeba_hair_split(tmp_path / "d", seed=0, test_per_class=3), celeba_hair_split(tmp_path / "d", seed=0, test_per_class=3)
    assert np.array_equal(a.train_images, b.train_images) and np.array_equal(a.test_images, b.test_images)
    assert np.array_equal(a.test_labels, b.test_labels)
    c = celeba_hair_split(tmp_path / "d", seed=1, test_per_class=3)
    assert set(rows_of(c.test_images)) != set(rows_of(a.test_images))


def test_a_missing_hair_attribute_is_named(tmp_path):
    make_hair_dataset(tmp_path / "d", drop="Gray_Hair")
    with pytest.raises(FairlatentError, match=r"no attribute column 'Gray_Hair'; the CelebA hair-colour profile needs"):
        celeba_hair_split(tmp_path / "d", seed=0, test_per_class=3)


def test_a_missing_identity_column_is_named(tmp_path):
    make_hair_dataset(tmp_path / "d", identities=False)
    with pytest.raises(FairlatentError, match=r"no identity column 'group_id'"):
        celeba_hair_split(tmp_path / "d", seed=0, test_per_class=3)


def test_a_class_with_too_few_faces_for_the_test_count_is_named(tmp_path):
    # 5 faces have Bald = 1 but one of them also has Gray_Hair: only the 4 single-label ones count
    make_hair_dataset(tmp_path / "d", per_class=(20, 16, 12, 9, 4))
    with pytest.raises(FairlatentError, match=r"class 'Bald' \(Bald\) has 4 single-label faces, too few for 3 test "
                                              r"images per class plus 2 for training"):
        celeba_hair_split(tmp_path / "d", seed=0, test_per_class=3)
    assert len(celeba_hair_split(tmp_path / "d", seed=0, test_per_class=2).test_labels) == 10


# --- the benchmark end to end (tiny networks, 2 steps) ------------------------------------------------------


def test_cli_benchmark_celeba_hair_writes_its_own_json_markdown_and_grid(cli, tmp_path, monkeypatch):
    from fairlatent.oversample import benchmark
    from fairlatent.utils.io import read_json

    make_hair_dataset(tmp_path / "d", per_class=(56, 52, 50, 49, 48), multi=((0, 1),), none=2, mixed=False)
    tiny = {"rae": dict(z_dim=4, width=2, hidden=8, mixer_hidden=8, mixer_layers=1, batch_size=4, adversarial=False,
                        decoder_recon_weight=1.0, steps=2, checkpoint_every=2, log_every=1),
            "cnn": dict(width=2, hidden=8, z_dim=4, steps=2, batch_size=8)}
    monkeypatch.setitem(benchmark.PROFILES, "cpu", tiny)
    res = cli(["benchmark", "imbalance", "--benchmark", "celeba-hair", "--celeba", tmp_path / "d",
               "--work", tmp_path / "w", "--out-dir", tmp_path / "o", "--seeds", "0", "--methods", "ce,ros,rae"])
    assert res.code == 0, res
    rec = json.loads((tmp_path / "o" / "imbalance_celeba_hair.json").read_text())
    assert list(rec["benchmarks"]) == ["celeba-hair"]
    b = rec["benchmarks"]["celeba-hair"]
    assert set(b["results"]) == {"ce", "ros", "rae"}
    assert b["split"]["class_names"] == NAMES and b["split"]["test_per_class"] == 40
    assert b["split"]["train_counts"] == b["split"]["train_counts_by_seed"]["0"]
    for m in b["results"].values():
        s = m["0"]
        assert len(s["recall"]) == 5 and s["acsa"] == pytest.approx(np.mean(s["recall"]))
    # the autoencoder was fitted on 64 px RGB faces, under work/celeba-hair/
    fitted = read_json(tmp_path / "w" / "celeba-hair" / "seed0" / "rae" / "config.json")
    assert fitted["run"]["shape"] == [64, 64, 3] and fitted["class_names"] == NAMES and fitted["done"] is True
    md = (tmp_path / "o" / "imbalance_celeba_hair.md").read_text()
    assert "## CelebA hair colour" in md and "## Long-tailed MNIST" not in md
    assert "| method | Black | Brown | Blond | Gray | Bald |" in md
    assert "imbalance_celeba_hair_samples.png" in md and (tmp_path / "o" / "imbalance_celeba_hair_samples.png").is_file()
    assert not (tmp_path / "o" / "imbalance.md").exists()  # the MNIST page's name is left alone
    cli.user_error(["benchmark", "imbalance", "--benchmark", "celeba-hair", "--work", tmp_path / "w"],
                   "benchmark 'celeba-hair' needs", "--celeba DATASET_DIR")
    cli.user_error(["benchmark", "imbalance", "--work", tmp_path / "w"], "benchmark 'mnist-lt' needs", "--mnist")
    cli.user_error(["benchmark", "imbalance", "--benchmark", "cifar", "--work", tmp_path / "w"], "'cifar'",
                   "mnist-lt, celeba-hair")


def test_markdown_of_a_record_holding_both_benchmarks_has_both_sections(tmp_path):
    from fairlatent.oversample.benchmark import notes_for, summarise, write_markdown

    def entry(k):
        r = {"ce": {"0": {"acsa": 0.5, "gm": 0.4, "macro_f1": 0.45, "recall": [0.5] * k, "train_seconds": 1.0,
                          "ci95": {"acsa": [0.4, 0.6], "gm": [0.3, 0.5], "macro_f1": [0.35, 0.55]}}}}
        return {"seeds": [0], "results": r, "summary": summarise(r)}

    mnist = {**entry(10), "split": {"train_counts": [8, 4], "test_per_class": 150, "imbalance_ratio": 100.0}}
    hair = {**entry(5), "split": {"train_counts": [9, 7, 5, 3, 2], "test_per_class": 40, "imbalance_ratio": 4.5,
                                  "class_names": NAMES, "attributes": HAIR, "data": "d", "image_size": 64,
                                  "single_label_counts": [10, 8, 6, 4, 3], "train_counts_by_seed": {"0": [9, 7, 5, 3, 2]}}}
    rec = {"profile": "cpu", "benchmarks": {"celeba-hair": hair, "mnist-lt": mnist}}
    write_markdown(rec, tmp_path / "both.md", command="x", notes=notes_for(rec))
    md = (tmp_path / "both.md").read_text()
    assert md.index("## Long-tailed MNIST") < md.index("## CelebA hair colour")
    assert md.count("| method | ACSA | GM | macro-F1 | train s |") == 2
    assert "| method | 0 | 1 | 2 | 3 | 4 | 5 | 6 | 7 | 8 | 9 |" in md and "| `ce` | 50 | 50 | 50 | 50 | 50 |\n" in md
    assert "long-tailed MNIST ACSA could not be checked" in md and "Paper figures (CelebA)" in md
    with pytest.raises(FairlatentError, match="holds no benchmark"):
        write_markdown({"profile": "cpu", "benchmarks": {}}, tmp_path / "none.md", command="x")
