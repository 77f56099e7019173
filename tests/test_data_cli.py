"""``fairlatent data toyfaces`` and ``fairlatent data show`` end to end, and their error exits."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from sklearn.metrics import matthews_corrcoef

from fairlatent.cli import main
from fairlatent.data.dataset import load_dataset, write_dataset
from fairlatent.data.show import attribute_rates, contingency_tables, grid_scale, sample_grid


def _run(argv):
    """Run the CLI in-process; return its exit code (0 when it returns normally)."""
    try:
        main(argv)
    except SystemExit as exc:
        return exc.code
    return 0


def test_toyfaces_command_writes_requested_data_set(tmp_path, capsys):
    out = tmp_path / "tf"
    code = _run(["data", "toyfaces", "--out", str(out), "--n", "200", "--size", "64", "--target", "Smiling",
                 "--protected", "Pale_Skin", "--skew", "0.8", "--test-skew", "0.3", "--label-noise", "0.1",
                 "--seed", "4"])
    assert code == 0
    ds = load_dataset(out)
    assert ds.image_size == 64 and len(ds) == 230
    assert ds.meta["params"]["label_noise"]["Bangs"] == 0.1 and ds.meta["seed"] == 4
    assert {s: v["skew_clean"] for s, v in ds.meta["skew"].items()} == {
        "train": 0.8, "val": 0.8, "test": 0.3, "test_balanced": 0.5}
    printed = capsys.readouterr().out
    assert "wrote" in printed and "230 images 64×64" in printed
    # same options, same seed → the same bytes
    again = tmp_path / "tf2"
    _run(["data", "toyfaces", "--out", str(again), "--n", "200", "--size", "64", "--target", "Smiling",
          "--protected", "Pale_Skin", "--skew", "0.8", "--test-skew", "0.3", "--label-noise", "0.1", "--seed", "4"])
    assert (again / "images.npy").read_bytes() == (out / "images.npy").read_bytes()


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--target", "Bald"], "unknown target attribute 'Bald'; ToyFaces attributes are: Wearing_Hat"),
        (["--protected", "Wearing_Hat"], "must differ"),
        (["--skew", "1.5"], "Invalid value for '--skew': Input should be less than or equal to 1"),
        (["--val-skew", "-0.2"], "Invalid value for '--val-skew': Input should be greater than or equal to 0"),
    ],
)
def test_toyfaces_command_bad_options_exit_2(tmp_path, capsys, extra, message):
    code = _run(["data", "toyfaces", "--out", str(tmp_path / "x"), "--n", "20", *extra])
    assert code == 2
    assert message in " ".join(capsys.readouterr().err.split())
    assert not (tmp_path / "x").exists()


def test_toyfaces_command_refuses_to_overwrite(tmp_path, toyfaces_small, capsys):
    out = tmp_path / "copy"
    shutil.copytree(toyfaces_small, out)
    assert _run(["data", "toyfaces", "--out", str(out), "--n", "30"]) == 2
    assert "already exists" in capsys.readouterr().err
    assert _run(["data", "toyfaces", "--out", str(out), "--n", "30", "--overwrite"]) == 0
    assert len(load_dataset(out)) == 30 + 5


def test_console_script_exit_code_for_bad_attribute(tmp_path):
    exe = Path(sys.executable).with_name("fairlatent")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-c", "from fairlatent.cli import main; main()"]
    proc = subprocess.run([*cmd, "data", "toyfaces", "--out", str(tmp_path / "x"), "--target", "Nope"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "unknown target attribute 'Nope'" in proc.stderr and "Traceback" not in proc.stderr


def test_show_prints_tables_and_writes_grid(toyfaces_small, tmp_path, capsys):
    png = tmp_path / "grid.png"
    assert _run(["data", "show", str(toyfaces_small), "--out", str(png), "--per-cell", "10"]) == 0
    text = capsys.readouterr().out
    for expected in ("Attribute rates per split", "Wearing_Hat (t) × Eyeglasses (g)", "test_balanced",
                     "+0.800", "0.900", "row 1: Wearing_Hat=1, Eyeglasses=1 (n=189)",
                     "row 4: Wearing_Hat=0, Eyeglasses=0 (n=189)"):
        assert expected in text, expected
    img = np.asarray(Image.open(png))
    scale = grid_scale(32)
    assert scale == 3
    assert img.shape == (scale * (4 * 34 + 2), scale * (10 * 34 + 2), 3)
    # the top-left face of the grid is a real image of the (1, 1) cell, upscaled by nearest neighbour
    ds = load_dataset(toyfaces_small)
    grid, labels = sample_grid(ds, "Wearing_Hat", "Eyeglasses", per_cell=10)
    np.testing.assert_array_equal(img[::scale, ::scale], grid)
    face = grid[2:34, 2:34]
    match = [i for i in ds.split_indices("train") if np.array_equal(ds.images[i], face)]
    assert len(match) == 1
    assert ds.labels("Wearing_Hat")[match[0]] == 1 and ds.labels("Eyeglasses")[match[0]] == 1


def test_show_default_grid_goes_to_current_directory(toyfaces_small, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    before = sorted(p.name for p in toyfaces_small.parent.iterdir())
    assert _run(["data", "show", str(toyfaces_small), "--target", "Smiling", "--protected", "Bangs"]) == 0
    assert (tmp_path / "toyfaces_small_grid.png").is_file()
    assert sorted(p.name for p in toyfaces_small.parent.iterdir()) == before  # nothing beside the data


def test_show_needs_target_when_meta_has_none(tmp_path, capsys):
    r = np.random.default_rng(0)
    table = pd.DataFrame({"id": [str(i) for i in range(8)], "split": ["train"] * 8,
                          "A": r.integers(0, 2, 8), "B": r.integers(0, 2, 8)})
    path = write_dataset(tmp_path / "plain", np.zeros((8, 4, 4, 3), np.uint8), table, {})
    assert _run(["data", "show", str(path), "--out", str(tmp_path / "g.png")]) == 2
    assert "--target" in capsys.readouterr().err
    assert _run(["data", "show", str(path), "--target", "A", "--protected", "C"]) == 2
    assert "no attribute 'C'" in capsys.readouterr().err
    assert _run(["data", "show", str(path), "--target", "A", "--protected", "B", "--out", str(tmp_path / "g.png")]) == 0


def test_show_functions_against_pandas_and_sklearn(tmp_path):
    """Rates against a pandas groupby; phi against sklearn's Matthews correlation on the same labels."""
    from fairlatent.data.toyfaces import render_toyfaces

    data = render_toyfaces(n=300, size=32, seed=9, skew=0.7, masks=False)
    ds = load_dataset(write_dataset(tmp_path / "d", data.images, data.table, data.meta))
    rates = attribute_rates(ds)
    expected = data.table.groupby("split")[list(ds.attribute_names)].mean().T
    for split in expected.columns:
        np.testing.assert_allclose(rates[split].drop("n").to_numpy(float), expected[split].to_numpy())
    assert rates.loc["n", "train"] == 210
    for c in contingency_tables(ds, "Wearing_Hat", "Eyeglasses"):
        idx = ds.split_indices(c.split)
        t, g = ds.labels("Wearing_Hat", idx), ds.labels("Eyeglasses", idx)
        assert c.phi == pytest.approx(matthews_corrcoef(t, g), abs=1e-12)
        assert c.phi == pytest.approx(np.corrcoef(t, g)[0, 1], abs=1e-12)
        assert c.p_agree == pytest.approx(np.mean(t == g))
        assert c.counts[1, 0] == np.sum((t == 1) & (g == 0)) and c.n == len(idx)
