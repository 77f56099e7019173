"""Hostile outputs: what a user's ``--out`` (or a full disk, or a second run) must never do to their files.

Each CLI case checks the contract of ``cli.user_error`` (exit 2, one line, no traceback, the culprit named)
and that the files the user owns are byte for byte what they were before.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from fairlatent.utils import io as fio


def snapshot(root: Path) -> dict[str, str]:
    """Every path under ``root`` (and ``root`` itself) with the SHA-256 of its bytes ("dir" for folders)."""
    if not root.exists():
        return {}
    if root.is_file():
        return {".": hashlib.sha256(root.read_bytes()).hexdigest()}
    out = {".": "dir"}
    for p in sorted(root.rglob("*")):
        out[str(p.relative_to(root))] = "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
    return out


@pytest.fixture
def victim(tmp_path) -> Path:
    """A folder of the user's own: source images, labels and an unrelated thesis."""
    from PIL import Image

    fold = tmp_path / "fold"
    (fold / "victim").mkdir(parents=True)
    rng = np.random.default_rng(0)
    rows = []
    for i in range(12):
        Image.fromarray(rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)).save(fold / "victim" / f"im{i}.png")
        rows.append(f"im{i}.png,{i % 2},{(i // 2) % 2}")
    (fold / "victim" / "thesis.txt").write_text("four years of work\n")
    (fold / "labels.csv").write_text("file,Smiling,Hat\n" + "\n".join(rows) + "\n")
    return fold


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


# ---------------------------------------------------------------- item 1: --overwrite destroys user folders
@pytest.mark.parametrize("overwrite", [[], ["--overwrite"]])
def test_folder_out_equal_to_images_is_refused(cli, victim, overwrite):
    before = snapshot(victim)
    cli.user_error(["data", "folder", "--images", victim / "victim", "--labels", victim / "labels.csv",
                    "--out", victim / "victim", "--size", "16", *overwrite],
                   f"--out {victim / 'victim'} is the --images input")
    assert snapshot(victim) == before


def test_folder_out_above_the_labels_is_refused(cli, victim):
    before = snapshot(victim)
    cli.user_error(["data", "folder", "--images", victim / "victim", "--labels", victim / "labels.csv",
                    "--out", victim, "--size", "16", "--overwrite"], f"--out {victim} contains the --images input")
    assert snapshot(victim) == before


def test_folder_out_over_a_foreign_folder_is_refused_even_with_overwrite(cli, victim, tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    before, src = snapshot(mine), snapshot(victim)
    cli.user_error(["data", "folder", "--images", victim / "victim", "--labels", victim / "labels.csv",
                    "--out", mine, "--size", "16", "--overwrite"], f"{mine} is a folder fairlatent did not write")
    assert snapshot(mine) == before and snapshot(victim) == src


@pytest.mark.parametrize("kind", ["folder", "file", "symlink"])
def test_toyfaces_overwrite_of_something_not_ours_is_refused(cli, tmp_path, kind):
    target = tmp_path / "victim"
    real = tmp_path / "real"
    real.mkdir()
    (real / "thesis.txt").write_text("chapter 1")
    if kind == "folder":
        shutil.copytree(real, target)
    elif kind == "file":
        target.write_text("a file")
    else:
        target.symlink_to(real, target_is_directory=True)
    before = snapshot(tmp_path)
    cli.user_error(["data", "toyfaces", "--out", target, "--n", "30", "--overwrite"], str(target),
                   "refusing to replace it")
    assert snapshot(tmp_path) == before


def test_toyfaces_overwrite_replaces_its_own_output_old_and_new(cli, tmp_path, toyfaces_small):
    from fairlatent.data.dataset import load_dataset

    out = tmp_path / "copy"
    shutil.copytree(toyfaces_small, out)
    (out / fio.MARKER).unlink()  # a data set written before the marker existed: recognised by its meta.json
    assert cli(["data", "toyfaces", "--out", out, "--n", "30", "--overwrite"]).code == 0
    assert len(load_dataset(out)) == 35 and (out / fio.MARKER).is_file()
    assert cli(["data", "toyfaces", "--out", out, "--n", "40", "--overwrite"]).code == 0  # by its marker
    assert len(load_dataset(out)) == 40 + 6


@pytest.mark.parametrize("command", ["train-classifier", "train-gan"])
def test_training_out_equal_to_data_is_refused(cli, tmp_path, toyfaces_small, command):
    ds = tmp_path / "ds"
    shutil.copytree(toyfaces_small, ds)
    before = snapshot(ds)
    extra = ["--attributes", "Smiling"] if command == "train-classifier" else []
    cli.user_error([command, "--data", ds, "--out", ds, *extra], f"--out {ds} is the --data input")
    cli.user_error([command, "--data", ds, "--out", tmp_path, *extra], f"--out {tmp_path} contains the --data input")
    assert snapshot(ds) == before


def test_train_classifier_overwrite_keeps_a_foreign_checkpoint_folder(cli, tmp_path, toyfaces_small):
    out = tmp_path / "model"
    (out / "checkpoint").mkdir(parents=True)
    (out / "checkpoint" / "mine.txt").write_text("not a checkpoint")
    before = snapshot(out)
    cli.user_error(["train-classifier", "--data", toyfaces_small, "--attributes", "Smiling", "--out", out,
                    "--overwrite", "--epochs", "1", "--quiet"], f"{out}: holds files fairlatent did not write",
                   "checkpoint")
    assert snapshot(out) == before


# ---------------------------------------------------------------- item 2: file outputs
def test_score_refuses_an_existing_csv_without_overwrite(cli, tmp_path, toyfaces_small):
    out = tmp_path / "mylabels.csv"
    out.write_text("id,label\nmine,1\n")
    before = snapshot(tmp_path)
    cli.user_error(["score", "--model", tmp_path / "m", "--data", toyfaces_small, "--out", out],
                   f"--out {out} already exists; pass --overwrite")
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("name, fragment", [("scores.png", "the output is CSV"), ("scores", "ending in .csv")])
def test_score_output_extension_must_be_csv(cli, tmp_path, toyfaces_small, name, fragment):
    cli.user_error(["score", "--model", tmp_path / "m", "--data", toyfaces_small, "--out", tmp_path / name], fragment)
    assert not (tmp_path / name).exists()


def test_score_into_an_existing_folder_names_it_and_leaves_no_temporary(cli, tmp_path, toyfaces_small):
    out = tmp_path / "results.csv"
    out.mkdir()
    cli.user_error(["score", "--model", tmp_path / "m", "--data", toyfaces_small, "--out", out, "--overwrite"],
                   f"--out {out}: is a directory")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.csv"] and not any(out.iterdir())


def test_score_over_a_file_of_the_data_set_is_refused(cli, tmp_path, toyfaces_small):
    ds = tmp_path / "ds"
    shutil.copytree(toyfaces_small, ds)
    before = snapshot(ds)
    cli.user_error(["score", "--model", tmp_path / "m", "--data", ds, "--out", ds / "attributes.csv", "--overwrite"],
                   "is part of the --data input")
    assert snapshot(ds) == before


@pytest.mark.parametrize("name, fragment", [("x.csv", "the output is a PNG image"), ("x", "ending in .png")])
def test_data_show_refuses_a_png_in_a_non_png_name(cli, tmp_path, toyfaces_small, name, fragment):
    cli.user_error(["data", "show", toyfaces_small, "--out", tmp_path / name], fragment)
    assert not (tmp_path / name).exists()


def test_data_show_existing_png_needs_overwrite(cli, tmp_path, toyfaces_small):
    out = tmp_path / "grid.png"
    out.write_bytes(b"my own picture")
    cli.user_error(["data", "show", toyfaces_small, "--out", out], f"--out {out} already exists")
    assert out.read_bytes() == b"my own picture"
    assert cli(["data", "show", toyfaces_small, "--out", out, "--overwrite"]).code == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("setup, name, fragment", [
    ("existing", "m.json", "already exists; pass --overwrite"),
    ("none", "m.txt", "the output is JSON"),
])
def test_metrics_json_output_is_checked_before_computing(cli, tmp_path, toyfaces_small, setup, name, fragment):
    out = tmp_path / name
    if setup == "existing":
        out.write_text('{"mine": 1}')
    before = snapshot(tmp_path)
    cli.user_error(["metrics", toyfaces_small, toyfaces_small, "--features", "pixels", "--json", out, "--no-cache"],
                   f"--json {out}", fragment)
    assert snapshot(tmp_path) == before


# ---------------------------------------------------------------- item 3: one process per folder
@pytest.mark.parametrize("argv", [
    ["demo", "--fast", "--quiet"],
    ["train-gan", "--data", "DATA", "--steps", "1", "--quiet"],
    ["train-classifier", "--data", "DATA", "--attributes", "Smiling", "--epochs", "1", "--quiet"],
])
def test_second_process_in_a_locked_folder_is_refused_naming_the_first(cli, tmp_path, toyfaces_small, live_process,
                                                                        argv):
    out = tmp_path / "runs" / "x"
    out.mkdir(parents=True)
    (out / "fairlatent.pid").write_text(f"{live_process.pid}\nstarted: 2024-01-02 03:04:05\n"
                                        f"command: fairlatent demo --out {out}\n")
    before = snapshot(out)
    res = cli.user_error([str(toyfaces_small) if a == "DATA" else a for a in argv] + ["--out", out],
                         f"(pid {live_process.pid}; started 2024-01-02 03:04:05; command: fairlatent demo",
                         "is running in this folder", f"kill {live_process.pid}")
    assert "--overwrite" not in res.text
    assert snapshot(out) == before


def test_folder_lock_takes_over_a_stale_lock_and_releases_it(tmp_path):
    from fairlatent.utils.lock import folder_lock, read_lock

    dead = _dead_pid()
    (tmp_path / "fairlatent.pid").write_text(f"{dead}\n")
    with folder_lock(tmp_path) as lock:
        info = read_lock(lock)
        assert info["pid"] == os.getpid() and "started" in info and "command" in info
        with folder_lock(tmp_path):  # nested: ours
            pass
        assert lock.is_file()  # the inner block did not release the outer one's lock
    assert not (tmp_path / "fairlatent.pid").exists()


def test_concurrent_takers_one_wins(tmp_path):
    script = ("import sys,time; from fairlatent.utils.lock import take_lock\n"
              "try:\n    take_lock(sys.argv[1]); print('won', flush=True); time.sleep(3)\n"
              "except Exception as e:\n    print('lost', flush=True)\n")
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).parents[1] / "src"))
    procs = [subprocess.Popen([sys.executable, "-c", script, str(tmp_path)], stdout=subprocess.PIPE, text=True,
                              env=env) for _ in range(3)]
    outs = sorted(p.communicate(timeout=60)[0].strip() for p in procs)
    assert outs == ["lost", "lost", "won"]


# ---------------------------------------------------------------- item 14: full disk and other environment errors
def test_full_disk_while_writing_a_data_set_is_one_line(cli, tmp_path, monkeypatch):
    out = tmp_path / "ds"
    real_save = np.save

    def full(file, *a, **k):
        if str(file).endswith("images.npy"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(file))
        return real_save(file, *a, **k)

    monkeypatch.setattr(np, "save", full)
    res = cli.user_error(["data", "toyfaces", "--out", out, "--n", "30"], "error: No space left on device:",
                         "images.npy")
    assert len(res.err.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []  # nothing half-written: no ds, no temporary


def test_permission_denied_on_the_output_is_one_line(cli, tmp_path, monkeypatch):
    real_mkdir = os.mkdir

    def denied(path, *a, **k):
        if Path(path).parent == tmp_path / "ro":
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
        return real_mkdir(path, *a, **k)

    (tmp_path / "ro").mkdir()
    monkeypatch.setattr(os, "mkdir", denied)
    cli.user_error(["data", "toyfaces", "--out", tmp_path / "ro" / "ds", "--n", "30"],
                   f"error: Permission denied: {tmp_path / 'ro'}")
    assert list((tmp_path / "ro").iterdir()) == []


def test_an_oserror_without_a_path_is_a_bug_and_keeps_its_traceback(cli, monkeypatch, toyfaces_small):
    import fairlatent.data.show as show

    def broken(*a, **k):
        raise OSError(errno.EIO, "driver fault")

    monkeypatch.setattr(show, "attribute_rates", broken)
    with pytest.raises(OSError, match="driver fault"):
        cli(["data", "show", toyfaces_small, "--out", toyfaces_small.parent / "g.png", "--overwrite"])


@pytest.mark.parametrize("text", [
    "Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: \"No space left on device\" })",
    "Error while serializing: No space left on device (os error 28)",
])
def test_safetensors_full_disk_names_the_path_and_leaves_nothing(tmp_path, monkeypatch, text):
    import torch
    from safetensors import SafetensorError

    import fairlatent.models.weights as weights

    def full(tensors, filename, *a, **k):
        Path(filename).write_bytes(b"partial")
        raise SafetensorError(text)

    monkeypatch.setattr(weights, "save_file", full)
    with pytest.raises(OSError, match="No space left on device") as info:
        weights.save_tensors(tmp_path / "model.safetensors", {"w": torch.zeros(3)})
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(tmp_path / "model.safetensors")
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- item 15: orphaned temporaries
def test_failed_rename_removes_the_temporary(tmp_path, monkeypatch):
    def fail(src, dst):
        raise OSError(errno.EXDEV, os.strerror(errno.EXDEV), str(src), None, str(dst))

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError) as info:
        fio.write_text(tmp_path / "a.txt", "x")
    assert info.value.filename == str(tmp_path / "a.txt")
    assert list(tmp_path.iterdir()) == []


def test_next_write_removes_temporaries_of_dead_writers_only(tmp_path, live_process):
    from fairlatent.data.dataset import load_dataset, write_dataset
    import pandas as pd

    dead = _dead_pid()
    stale_dir = tmp_path / f".ds.tmp-{dead}-abcd"
    stale_dir.mkdir()
    (stale_dir / "images.npy").write_bytes(b"0" * 1000)
    stale_old = tmp_path / f".ds.old-{dead}-ef01"
    stale_old.mkdir()
    live = tmp_path / f".ds.tmp-{live_process.pid}-1234"
    live.mkdir()
    unrelated = tmp_path / f".dsx.tmp-{dead}-abcd"
    unrelated.write_text("someone else's")
    images = np.zeros((4, 8, 8, 3), np.uint8)
    table = pd.DataFrame({"id": list("abcd"), "split": ["train", "train", "val", "test"], "A": [0, 1, 0, 1]})
    write_dataset(tmp_path / "ds", images, table, {"source": "t"})
    assert len(load_dataset(tmp_path / "ds")) == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["ds", live.name, unrelated.name])


# ---------------------------------------------------------------- item 16: permissions and warnings
@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_atomic_outputs_follow_the_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        fio.write_text(tmp_path / "f.txt", "x")
        with fio.atomic_directory(tmp_path / "d") as tmp:
            (tmp / "x").write_text("x")
    finally:
        os.umask(old)
    assert (tmp_path / "f.txt").stat().st_mode & 0o777 == 0o666 & ~umask
    assert (tmp_path / "d").stat().st_mode & 0o777 == 0o777 & ~umask


@pytest.mark.parametrize("category, prefix", [(UserWarning, "warning: "), (RuntimeWarning, "warning: RuntimeWarning: ")])
def test_cli_warnings_are_one_line_without_source(cli, tmp_path, toyfaces_small, monkeypatch, category, prefix):
    import fairlatent.data.show as show

    rates = show.attribute_rates

    def noisy(ds):
        warnings.warn("converted 3 images\n  to RGB", category)
        return rates(ds)

    monkeypatch.setattr(show, "attribute_rates", noisy)
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        res = cli(["data", "show", toyfaces_small, "--out", tmp_path / "g.png"])
    assert res.code == 0, res
    lines = [line for line in res.err.splitlines() if "converted" in line]
    assert lines == [f"{prefix}converted 3 images to RGB"]
    assert "warnings.warn" not in res.text and ".py:" not in res.err
