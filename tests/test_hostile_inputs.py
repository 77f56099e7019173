"""Hostile inputs a user can produce, run through the real ``fairlatent`` command line.

Every case asserts the user-error contract of :func:`fairlatent.cli.main`: exit status 2, no Python traceback,
and a one-line message that names the file (or option), the row/column/key and the offending value.
Each case is a small reproduction of something that crashed, was silently accepted or was reported against
the wrong row before (issue 12).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

# ----------------------------------------------------------------------------------------------------------
# helpers


@pytest.fixture
def dataset(toyfaces_small, tmp_path) -> Path:
    """A writable copy of the session's small ToyFaces set."""
    dst = tmp_path / "ds"
    shutil.copytree(toyfaces_small, dst)
    return dst


def _edit_csv(ds: Path, fn) -> Path:
    """Rewrite ``attributes.csv`` as text, so cells are exactly what a user's editor would leave."""
    csv = ds / "attributes.csv"
    table = pd.read_csv(csv, dtype=str, keep_default_na=False)
    fn(table)
    table.to_csv(csv, index=False)
    return csv


@pytest.fixture
def no_pipeline(monkeypatch):
    """A config that passes validation must not start training in these tests: fail fast instead."""
    from fairlatent.cli import pipeline_commands

    def accepted(cfg, out, *, quiet):
        raise AssertionError(f"the config was accepted and the pipeline would run into {out}")

    monkeypatch.setattr(pipeline_commands, "_run_and_report", accepted)


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# ----------------------------------------------------------------------------------------------------------
# pipeline configs (item 7): every section, a wrong type and an out-of-range value, unknown keys/sections

CONFIG_CASES = [
    # (section, key, TOML value, fragment of the message)
    ("", "seed", '"zero"', "valid integer"),
    ("", "seed", "-1", "greater than or equal to 0"),
    ("", "name", "3", "valid string"),
    ("", "name", '"a/b"', "a/b"),
    ("", "device", "7", "valid string"),
    ("", "device", '"banana"', "banana"),
    ("data", "n", '"many"', "valid integer"),
    ("data", "skew", "1.5", "less than or equal to 1"),
    ("data", "size", "48", "32 or 64"),
    ("data", "target", '"Nope"', "Nope"),
    ("gan", "steps", '"forty"', "valid integer"),
    ("gan", "steps", "-1", "greater than or equal to 1"),
    ("gan", "betas", "[0.5, 1.5]", "betas"),
    ("gan", "device", '"banana"', "banana"),
    ("labeler", "epochs", '"two"', "valid integer"),
    ("labeler", "lr", "-1e-3", "greater than 0"),
    ("classifier", "epochs", '"two"', "valid integer"),
    ("classifier", "epochs", "0", "greater than or equal to 1"),
    ("classifier", "seed", "-4", "greater than or equal to 0"),
    ("generator", "latent_dim", '"wide"', "valid integer"),
    ("generator", "latent_dim", "0", "greater than or equal to 1"),
    ("latent", "n_fit", "[1]", "valid integer"),
    ("latent", "min_sin", "1.0", "less than 1"),
    ("evaluation", "n_boot", "true", "not true/false"),
    ("evaluation", "ci", "2", "less than 1"),
    ("", "methods", '"baseline"', "valid list"),
    ("", "methods", '["baseline", "magic"]', "magic"),
]


def _config_text(section: str, key: str, value: str) -> str:
    if not section:
        return f"{key} = {value}\n"
    extra = 'path = "g.pt"\n' if section == "generator" and key != "path" else ""
    return f"[{section}]\n{extra}{key} = {value}\n"


@pytest.mark.parametrize("section,key,value,fragment", CONFIG_CASES,
                         ids=[f"{s or 'top'}.{k}:{v}" for s, k, v, _ in CONFIG_CASES])
def test_run_config_bad_value_rejected_at_load(cli, no_pipeline, tmp_path, section, key, value, fragment):
    cfg = _write(tmp_path / "bad.toml", _config_text(section, key, value))
    dotted = f"{section}.{key}" if section else key
    cli.user_error(["run", cfg, "--out", tmp_path / "run", "--quiet"], str(cfg), dotted, fragment)
    assert not (tmp_path / "run").exists()  # nothing ran


@pytest.mark.parametrize("section", ["data", "gan", "labeler", "classifier", "generator", "latent", "evaluation"])
def test_run_config_unknown_key_in_every_section(cli, no_pipeline, tmp_path, section):
    extra = 'path = "g.pt"\n' if section == "generator" else ""
    cfg = _write(tmp_path / "bad.toml", f"[{section}]\n{extra}stepz = 3\n")
    cli.user_error(["run", cfg, "--out", tmp_path / "run"], str(cfg), f"{section}.stepz", "unknown key")


def test_run_config_unknown_section(cli, no_pipeline, tmp_path):
    cfg = _write(tmp_path / "bad.toml", "[gann]\nsteps = 3\n")
    cli.user_error(["run", cfg, "--out", tmp_path / "run"], str(cfg), "gann", "unknown key")


@pytest.mark.parametrize("item,fragment", [
    ("gan.steps=-1", "greater than or equal to 1"),
    ("classifier.epochs=two", "valid integer"),
    ("seed=-1", "greater than or equal to 0"),
    ("gann.steps=3", "unknown key"),
])
def test_run_set_override_rejected_at_load(cli, no_pipeline, tmp_path, item, fragment):
    cfg = _write(tmp_path / "ok.toml", "seed = 0\n")
    key = item.partition("=")[0]
    cli.user_error(["run", cfg, "--set", item, "--out", tmp_path / "run"], "--set", key.split(".")[0], fragment)
    assert not (tmp_path / "run").exists()


# ----------------------------------------------------------------------------------------------------------
# attributes.csv of a data set (items 8, 9)


def test_attribute_cell_yes_names_its_row_and_value(cli, dataset):
    def plant(t):
        t.loc[7, "Smiling"] = "yes"  # CSV row 9 (header is row 1)

    csv = _edit_csv(dataset, plant)
    cli.user_error(["data", "show", dataset], str(csv), "row 9", "'Smiling'", "'yes'")


def test_attribute_cell_empty_names_its_row(cli, dataset):
    def plant(t):
        t.loc[3, "Eyeglasses"] = ""

    csv = _edit_csv(dataset, plant)
    cli.user_error(["data", "show", dataset], str(csv), "row 5", "'Eyeglasses'", "empty cell")


@pytest.mark.parametrize("blank", ["", "   "])
def test_single_empty_id_is_an_error(cli, dataset, blank):
    def plant(t):
        t.loc[10, "id"] = blank

    csv = _edit_csv(dataset, plant)
    cli.user_error(["data", "show", dataset], str(csv), "row 12", "'id'", "empty id")


def test_two_empty_ids_name_the_first_empty_row(cli, dataset):
    def plant(t):
        t.loc[4, "id"] = ""
        t.loc[20, "id"] = ""

    csv = _edit_csv(dataset, plant)
    res = cli.user_error(["data", "show", dataset], str(csv), "row 6", "empty id")
    assert "nan" not in res.text


# ----------------------------------------------------------------------------------------------------------
# numeric options out of range (item 11): a usage error naming the option, before anything runs

DS = "@ds"  # replaced by the data set path
OPTION_CASES = [
    (["data", "toyfaces", "--out", "@tmp/t", "--size", "48"], "--size"),
    (["data", "toyfaces", "--out", "@tmp/t", "--size", "0"], "--size"),
    (["data", "toyfaces", "--out", "@tmp/t", "--n", "0"], "--n"),
    (["data", "toyfaces", "--out", "@tmp/t", "--skew", "1.5"], "--skew"),
    (["data", "toyfaces", "--out", "@tmp/t", "--val-skew", "-0.1"], "--val-skew"),
    (["data", "toyfaces", "--out", "@tmp/t", "--test-skew", "2"], "--test-skew"),
    (["data", "toyfaces", "--out", "@tmp/t", "--label-noise", "0.9"], "--label-noise"),
    (["data", "toyfaces", "--out", "@tmp/t", "--n-test-balanced", "-1"], "--n-test-balanced"),
    (["data", "toyfaces", "--out", "@tmp/t", "--seed", "-1"], "--seed"),
    (["data", "show", DS, "--per-cell", "-3"], "--per-cell"),
    (["data", "show", DS, "--per-cell", "0"], "--per-cell"),
    (["data", "show", DS, "--seed", "-2"], "--seed"),
    (["data", "folder", "--images", "@tmp", "--labels", "@tmp/l.csv", "--out", "@tmp/o", "--size", "0"], "--size"),
    (["data", "folder", "--images", "@tmp", "--labels", "@tmp/l.csv", "--out", "@tmp/o", "--size", "-5"], "--size"),
    (["data", "folder", "--images", "@tmp", "--labels", "@tmp/l.csv", "--out", "@tmp/o", "--seed", "-1"], "--seed"),
    (["data", "celeba", "--root", "@tmp", "--out", "@tmp/o", "--size", "0"], "--size"),
    (["data", "celeba", "--root", "@tmp", "--out", "@tmp/o", "--limit", "0"], "--limit"),
    (["data", "fairface", "--root", "@tmp", "--out", "@tmp/o", "--val-fraction", "1.0"], "--val-fraction"),
    (["data", "fairface", "--root", "@tmp", "--out", "@tmp/o", "--limit", "-4"], "--limit"),
    (["train-classifier", "--data", DS, "--attributes", "Smiling", "--out", "@tmp/c", "--lr", "0"], "--lr"),
    (["train-classifier", "--data", DS, "--attributes", "Smiling", "--out", "@tmp/c", "--seed", "-1"], "--seed"),
    (["train-classifier", "--data", DS, "--attributes", "Smiling", "--out", "@tmp/c", "--epochs", "0"], "--epochs"),
    (["train-gan", "--data", DS, "--out", "@tmp/g", "--size", "48"], "--size"),
    (["train-gan", "--data", DS, "--out", "@tmp/g", "--seed", "-1"], "--seed"),
    (["train-gan", "--data", DS, "--out", "@tmp/g", "--steps", "-1"], "--steps"),
    (["sample", "--gan", "@tmp/g", "--n", "5", "--out", "@tmp/s", "--truncation", "0"], "--truncation"),
    (["sample", "--gan", "@tmp/g", "--n", "5", "--out", "@tmp/s", "--latent-dim", "0"], "--latent-dim"),
    (["sample", "--gan", "@tmp/g", "--n", "5", "--out", "@tmp/s", "--seed", "-3"], "--seed"),
    (["benchmark", "celeba", "--root", "@tmp", "--out", "@tmp/b", "--size", "48"], "--size"),
    (["benchmark", "celeba", "--root", "@tmp", "--out", "@tmp/b", "--min-positives", "0"], "--min-positives"),
]


@pytest.mark.parametrize("argv,option", OPTION_CASES, ids=[" ".join(a[:2] + a[-2:]) for a, _ in OPTION_CASES])
def test_numeric_option_out_of_range(cli, toyfaces_small, tmp_path, argv, option):
    argv = [str(toyfaces_small) if a == DS else a.replace("@tmp", str(tmp_path)) for a in argv]
    res = cli.user_error(argv, f"invalid value for '{option}'")
    low = " ".join(res.text.lower().split())
    assert any(w in low for w in ("greater than", "less than", "must be")), res  # says the allowed range
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # nothing written


# ----------------------------------------------------------------------------------------------------------
# JSON files of the wrong shape (item 12)


@pytest.mark.parametrize("text,fragments", [
    ("[1, 2, 3]", ["expected a JSON object", "a list"]),
    ('"just a string"', ["expected a JSON object", "a string"]),
    ('{"format": 7}', ["field 'format'", "7"]),
    ('{"format": "fairlatent-dataset", "parts": "face"}', ["field 'parts'", "'face'"]),
    ('{"format": "fairlatent-dataset", "unlabelled": "yes"}', ["field 'unlabelled'", "'yes'"]),
])
def test_dataset_meta_json_of_wrong_shape(cli, dataset, text, fragments):
    meta = dataset / "meta.json"
    if "fairlatent-dataset" in text:  # keep the rest of the real meta, break one field
        real = json.loads(meta.read_text())
        real.update(json.loads(text))
        text = json.dumps(real)
    meta.write_text(text)
    cli.user_error(["data", "show", dataset], str(meta), *fragments)


def test_dataset_meta_json_not_utf8(cli, dataset):
    meta = dataset / "meta.json"
    meta.write_bytes(b'{"format": "fairlatent-dataset", "source": "caf\xe9"}')
    cli.user_error(["data", "show", dataset], str(meta), "utf-8")


def test_config_toml_not_utf8(cli, no_pipeline, tmp_path):
    cfg = tmp_path / "latin1.toml"
    cfg.write_bytes(b'name = "caf\xe9"\n')
    cli.user_error(["run", cfg], str(cfg), "utf-8")


def test_config_is_a_directory(cli, no_pipeline, tmp_path):
    cli.user_error(["run", tmp_path], str(tmp_path), "directory")


def _fake_gan_run(tmp_path: Path, record) -> Path:
    run = tmp_path / "gan"
    run.mkdir()
    (run / "config.json").write_text(json.dumps(record))
    (run / "generator.safetensors").write_bytes(b"")
    return run


@pytest.mark.parametrize("record,fragments", [
    ([], ["not a fairlatent gan run"]),
    ({"format": "fairlatent-gan"}, ["field 'config'", "missing field"]),
    ({"format": "fairlatent-gan", "config": []}, ["field 'config'"]),
    ({"format": "fairlatent-gan", "config": {"arch": "dcgan", "size": "32", "latent_dim": 8, "width": 4}},
     ["field 'config.size'", "'32'"]),
])
def test_gan_config_json_of_wrong_shape(cli, tmp_path, record, fragments):
    run = _fake_gan_run(tmp_path, record)
    cli.user_error(["sample", "--gan", run, "--n", "2", "--out", tmp_path / "s"], f"{run}/config.json",
                   *fragments)


def _pipeline_with_stage(tmp_path: Path, record_text: str) -> Path:
    """A run directory whose data stage left ``stage.json`` = ``record_text``."""
    run = tmp_path / "run"
    (run / "data").mkdir(parents=True)
    (run / "data" / "stage.json").write_text(record_text)
    return run


@pytest.mark.parametrize("text,fragments", [
    ("[]", ["expected a json object", "a list"]),
    ('{"key": 5, "done": true}', ["field 'key'", "5"]),
    ('{"key": "k", "done": "yes"}', ["field 'done'", "'yes'"]),
    ('{"key": "k", "done": true, "outputs": [1]}', ["field 'outputs'"]),
])
def test_stage_json_of_wrong_shape(tmp_path, text, fragments):
    from fairlatent.errors import FairlatentError
    from fairlatent.pipeline.stages import StageRunner

    run = _pipeline_with_stage(tmp_path, text)
    runner = StageRunner(run)
    with pytest.raises(FairlatentError) as info:
        runner.run("data", {"x": 1}, lambda d: {})
    msg = " ".join(str(info.value).lower().split())
    assert str(run / "data" / "stage.json").lower() in msg
    for f in fragments:
        assert f in msg, (f, msg)


@pytest.mark.parametrize("state,fragments", [
    ([], ["expected a json object", "a list"]),
    ({"step": "forty"}, ["field 'step'", "'forty'"]),
    ({"step": 40, "_tensors_file": "x"}, ["field '_tensors_file'", "'x'"]),
    ({"step": 40, "_tensors_file": {"bytes": "many", "sha256": "00"}}, ["field '_tensors_file.bytes'", "'many'"]),
])
def test_checkpoint_state_json_of_wrong_shape(tmp_path, state, fragments):
    from fairlatent.errors import FairlatentError
    from fairlatent.train.checkpoint import load_checkpoint, save_checkpoint

    ckpt = save_checkpoint(tmp_path / "ckpt", {"w": __import__("torch").zeros(2)}, {"a": 1}, {"step": 1})
    (ckpt / "state.json").write_text(json.dumps(state))
    with pytest.raises(FairlatentError) as info:
        load_checkpoint(ckpt)
    msg = " ".join(str(info.value).lower().split())
    assert str(ckpt / "state.json").lower() in msg
    for f in fragments:
        assert f in msg, (f, msg)


# ----------------------------------------------------------------------------------------------------------
# messages (item 16)


class _TinyG(__import__("torch").nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = __import__("torch").nn.Linear(8, 3 * 8 * 8)

    def forward(self, z):
        return self.fc(z).view(-1, 3, 8, 8).tanh()


def test_torchscript_generator_wrong_latent_dim_is_one_line(cli, tmp_path):
    import torch

    file = tmp_path / "g.pt"
    torch.jit.script(_TinyG()).save(str(file))
    res = cli.user_error(["sample", "--gan", file, "--latent-dim", "16", "--output-range", "[-1,1]", "--n", "2",
                          "--out", tmp_path / "s"], str(file), "latent_dim=16", "(1, 16)")
    assert len(res.err.strip().splitlines()) == 1, res.err


def test_torchscript_file_that_is_not_one(cli, tmp_path):
    file = tmp_path / "g.pt"
    file.write_bytes(b"PK\x03\x04 not really a zip")
    res = cli.user_error(["sample", "--gan", file, "--latent-dim", "8", "--output-range", "[-1,1]", "--n", "2",
                          "--out", tmp_path / "s"], str(file), "not a loadable torchscript file")
    assert len(res.err.strip().splitlines()) == 1, res.err


def test_reweight_with_target_equal_to_protected(cli, toyfaces_small, tmp_path):
    cli.user_error(["train-classifier", "--data", toyfaces_small, "--attributes", "Smiling", "--out", tmp_path / "c",
                    "--weights", "reweight", "--target", "Eyeglasses", "--protected", "Eyeglasses"],
                   "--target and --protected", "'Eyeglasses'", "must be different")
    assert not (tmp_path / "c").exists()


def test_data_show_on_unlabelled_set_says_it_has_no_attributes(cli, dataset):
    table = pd.read_csv(dataset / "attributes.csv", dtype=str)
    table[["id", "split"]].to_csv(dataset / "attributes.csv", index=False)
    meta = json.loads((dataset / "meta.json").read_text())
    meta.update(unlabelled=True, attributes=[])
    meta.pop("target"), meta.pop("protected")
    (dataset / "meta.json").write_text(json.dumps(meta))
    res = cli.user_error(["data", "show", dataset], str(dataset), "has no attributes")
    assert "attributes are: \n" not in res.err and not res.err.rstrip().endswith("attributes are:")
