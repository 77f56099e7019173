"""The on-disk data set format (fairlatent.data.dataset): round trip, validation errors, atomic writes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fairlatent.data.dataset import load_dataset, write_dataset
from fairlatent.errors import FairlatentError


def _example(n=12, h=8, w=10, seed=0):
    r = np.random.default_rng(seed)
    images = r.integers(0, 256, size=(n, h, w, 3), dtype=np.uint8)
    table = pd.DataFrame(
        {
            "id": [f"img{i:03d}" for i in range(n)],
            "split": (["train", "val", "test", "test_balanced"] * n)[:n],
            "group_id": r.integers(0, 3, n),
            "Smiling": r.integers(0, 2, n),
            "Male": r.integers(0, 2, n),
        }
    )
    masks = r.random((n, 3, h, w)) < 0.3
    latents = r.standard_normal((n, 5)).astype(np.float32)
    return images, table, masks, latents


def test_round_trip_preserves_everything(tmp_path):
    images, table, masks, latents = _example()
    out = write_dataset(tmp_path / "ds", images, table, {"source": "unit", "seed": 3}, masks=masks,
                        part_names=["a", "b", "c"], latents=latents)
    ds = load_dataset(out)
    np.testing.assert_array_equal(np.asarray(ds.images), images)
    assert isinstance(ds.images, np.memmap)
    np.testing.assert_array_equal(ds.masks(), masks)  # bit-packing along W with W=10 (not a multiple of 8)
    np.testing.assert_array_equal(ds.masks(np.array([3, 5])), masks[[3, 5]])
    np.testing.assert_array_equal(np.asarray(ds.latents), latents)
    assert ds.attribute_names == ["Smiling", "Male"]
    assert ds.part_names == ["a", "b", "c"]
    assert ds.image_size == 8
    assert list(ds.ids) == list(table["id"])
    np.testing.assert_array_equal(ds.labels("Male"), table["Male"].to_numpy())
    np.testing.assert_array_equal(ds.split_indices("val"), np.flatnonzero(table["split"] == "val"))
    assert ds.meta["source"] == "unit" and ds.meta["seed"] == 3
    assert ds.meta["n"] == 12 and ds.meta["splits"] == {"train": 3, "val": 3, "test": 3, "test_balanced": 3}
    # the packed file really is packed: ceil(10 / 8) = 2 bytes per mask row
    assert np.load(out / "masks.npy").shape == (12, 3, 8, 2)


def test_dataset_accessors_raise_user_errors(tmp_path):
    images, table, _, _ = _example()
    ds = load_dataset(write_dataset(tmp_path / "ds", images, table, {}))
    with pytest.raises(FairlatentError, match="'Bald'.*attributes are: Smiling, Male"):
        ds.labels("Bald")
    with pytest.raises(FairlatentError, match="unknown split 'dev'"):
        ds.split_indices("dev")
    with pytest.raises(FairlatentError, match="no part masks"):
        ds.masks()
    small = table[table["split"] != "val"].reset_index(drop=True)
    ds2 = load_dataset(write_dataset(tmp_path / "ds2", images[: len(small)], small, {}))
    with pytest.raises(FairlatentError, match="split 'val' is empty"):
        ds2.split_indices("val")
    assert ds2.split_indices("val", required=False).size == 0


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda t: t.assign(id=["dup"] * 2 + list(t["id"][2:])), r"duplicate id 'dup' \(row 3\)"),
        (lambda t: t.assign(Smiling=[0, 0, 0, 2] + list(t["Smiling"][4:])), r"row 5, column 'Smiling': value 2"),
        (lambda t: t.assign(split=list(t["split"][:6]) + ["training"] + list(t["split"][7:])),
         r"row 8: split 'training' is not one of"),
        (lambda t: t.iloc[:-1], r"11 rows but 12 images"),
        (lambda t: t.drop(columns=["split"]), r"missing column 'split'"),
        (lambda t: t[["id", "split"]], r"no attribute columns"),
    ],
)
def test_write_rejects_bad_tables(tmp_path, edit, message):
    images, table, _, _ = _example()
    with pytest.raises(FairlatentError, match=message):
        write_dataset(tmp_path / "ds", images, edit(table), {})
    assert not (tmp_path / "ds").exists()


def test_write_rejects_bad_arrays(tmp_path):
    images, table, masks, latents = _example()
    with pytest.raises(FairlatentError, match="uint8"):
        write_dataset(tmp_path / "a", images.astype(np.float32), table, {})
    with pytest.raises(FairlatentError, match="masks must be"):
        write_dataset(tmp_path / "b", images, table, {}, masks=masks[:, :, :4], part_names=["a", "b", "c"])
    with pytest.raises(FairlatentError, match="need 3 part names"):
        write_dataset(tmp_path / "c", images, table, {}, masks=masks, part_names=["a"])
    with pytest.raises(FairlatentError, match="11 latents for 12 images"):
        write_dataset(tmp_path / "d", images, table, {}, latents=latents[:-1])
    assert not any(tmp_path.iterdir())


def test_load_validates_edited_files(tmp_path):
    """A data set edited by hand after writing is re-validated on load, naming the row and column."""
    images, table, _, _ = _example()
    out = write_dataset(tmp_path / "ds", images, table, {})
    text = (out / "attributes.csv").read_text().splitlines()
    cells = text[4].split(",")
    cells[-1] = "2"
    (out / "attributes.csv").write_text("\n".join(text[:4] + [",".join(cells)] + text[5:]) + "\n")
    with pytest.raises(FairlatentError, match=r"attributes.csv: row 5, column 'Male': value 2"):
        load_dataset(out)


@pytest.mark.parametrize("missing", ["meta.json", "images.npy", "attributes.csv"])
def test_load_reports_missing_files(tmp_path, missing):
    images, table, _, _ = _example()
    out = write_dataset(tmp_path / "ds", images, table, {})
    (out / missing).unlink()
    with pytest.raises(FairlatentError, match=f"missing {missing}"):
        load_dataset(out)


def test_load_reports_truncated_and_foreign_files(tmp_path):
    images, table, _, _ = _example()
    out = write_dataset(tmp_path / "ds", images, table, {})
    data = (out / "images.npy").read_bytes()
    (out / "images.npy").write_bytes(data[: len(data) // 2])
    with pytest.raises(FairlatentError, match="images.npy: unreadable or truncated"):
        load_dataset(out)
    with pytest.raises(FairlatentError, match="no such directory"):
        load_dataset(tmp_path / "nowhere")
    out2 = write_dataset(tmp_path / "ds2", images, table, {})
    (out2 / "meta.json").write_text('{"format": "something-else"}')
    with pytest.raises(FairlatentError, match="not a fairlatent data set"):
        load_dataset(out2)
    (out2 / "meta.json").write_text("{not json")
    with pytest.raises(FairlatentError, match="not valid JSON"):
        load_dataset(out2)


def test_existing_destination_needs_overwrite(tmp_path):
    images, table, _, _ = _example()
    out = write_dataset(tmp_path / "ds", images, table, {"version_of_test": 1})
    with pytest.raises(FairlatentError, match="already exists"):
        write_dataset(out, images, table, {})
    write_dataset(out, images[::-1].copy(), table, {"version_of_test": 2}, overwrite=True)
    ds = load_dataset(out)
    assert ds.meta["version_of_test"] == 2
    np.testing.assert_array_equal(np.asarray(ds.images), images[::-1])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]  # nothing left beside it


def test_exception_during_write_leaves_nothing(tmp_path, monkeypatch):
    """An error after images.npy is already written leaves no directory (and no temporary) behind."""
    import fairlatent.data.dataset as dataset_module

    images, table, masks, _ = _example()

    def failing_write_json(*args, **kwargs):
        raise RuntimeError("disk full (simulated)")

    monkeypatch.setattr(dataset_module, "write_json", failing_write_json)
    with pytest.raises(RuntimeError, match="simulated"):
        write_dataset(tmp_path / "ds", images, table, {}, masks=masks, part_names=["a", "b", "c"])
    assert list(tmp_path.iterdir()) == []


_KILLED_WRITER = textwrap.dedent(
    """
    import sys, time
    import numpy as np, pandas as pd
    import fairlatent.data.dataset as d

    def stall(*args, **kwargs):  # images, table and masks are on disk; meta.json is next
        print("READY", flush=True)
        time.sleep(600)

    d.write_json = stall
    n = 50
    images = np.full((n, 16, 16, 3), int(sys.argv[2]), np.uint8)
    table = pd.DataFrame({"id": [str(i) for i in range(n)], "split": ["train"] * n, "A": [0, 1] * (n // 2)})
    d.write_dataset(sys.argv[1], images, table, {}, overwrite=True)
    """
)


@pytest.mark.parametrize("existing", [False, True])
def test_killed_writer_leaves_no_loadable_partial_data_set(tmp_path, existing):
    """SIGKILL in the middle of write_dataset: the destination is absent, or still the old complete set."""
    dest = tmp_path / "ds"
    if existing:
        images, table, _, _ = _example()
        write_dataset(dest, images, table, {"generation": "old"})
    proc = subprocess.Popen([sys.executable, "-c", _KILLED_WRITER, str(dest), "7"], stdout=subprocess.PIPE,
                            text=True)
    try:
        line = proc.stdout.readline()
        assert line.strip() == "READY", "writer subprocess did not reach the stall point"
        partial = [p for p in tmp_path.iterdir() if p.name != "ds"]
        assert len(partial) == 1 and (partial[0] / "images.npy").is_file()  # it really was mid-write
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
        proc.stdout.close()
    if existing:
        ds = load_dataset(dest)
        assert ds.meta["generation"] == "old" and len(ds) == 12
    else:
        assert not dest.exists()
        with pytest.raises(FairlatentError):
            load_dataset(dest)
    # what the killed writer left is a hidden temporary beside the destination, never the destination
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "ds"]
    assert leftovers and all(name.startswith(".ds.tmp-") for name in leftovers)
