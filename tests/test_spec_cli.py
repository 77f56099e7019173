"""--config / --set of ``train-gan``, ``train-classifier`` and ``run``: every spec field reachable, one line
naming a bad key, exit 2, nothing trained. Training itself is replaced by a recorder."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fairlatent.cli import main


class Trained(Exception):
    """Raised by the recorders instead of training."""


def _run(argv) -> int:
    try:
        main([str(a) for a in argv])
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


@pytest.fixture
def gan_calls(monkeypatch):
    import fairlatent.train.gan as gan

    calls = []

    def record(data, out, config, *, resume=True, progress=True):
        calls.append(config)
        return out

    monkeypatch.setattr(gan, "train_gan", record)
    return calls


def test_train_gan_misspelt_set_key_exits_2_before_training(gan_calls, tmp_path, capsys):
    assert _run(["train-gan", "--data", tmp_path, "--out", tmp_path / "o", "--set", "stepz=3"]) == 2
    err = capsys.readouterr().err
    assert "stepz: unknown key" in err and len(err.strip().splitlines()) == 1
    assert gan_calls == []
    assert _run(["train-gan", "--data", tmp_path, "--out", tmp_path / "o", "--set", "steps"]) == 2
    assert "--set 'steps': expected KEY=VALUE" in capsys.readouterr().err
    assert _run(["train-gan", "--data", tmp_path, "--out", tmp_path / "o", "--set", "arch=stylegan"]) == 2
    assert "arch" in capsys.readouterr().err and gan_calls == []


def test_train_gan_set_reaches_the_config_and_precedence(gan_calls, tmp_path):
    assert _run(["train-gan", "--data", tmp_path, "--out", tmp_path / "o", "--set", "steps=2",
                 "--set", "batch_size=8"]) == 0
    (spec,) = gan_calls
    assert (spec.steps, spec.batch_size) == (2, 8)
    # fields no flag exposes are reachable too
    f = tmp_path / "gan.toml"
    f.write_text("steps = 40\nwidth = 8\nr1_gamma = 0.5\nbetas = [0.0, 0.9]\narch = \"dcgan\"\n")
    assert _run(["train-gan", "--data", tmp_path, "--out", tmp_path / "o", "--config", f, "--width", "12",
                 "--steps", "30", "--set", "steps=20", "--no-ema", "--set", "augment=translation"]) == 0
    spec = gan_calls[-1]
    # defaults < --config < flags < --set
    assert (spec.steps, spec.width, spec.r1_gamma, spec.betas, spec.ema, spec.augment) == (
        20, 12, 0.5, (0.0, 0.9), False, "translation")
    assert spec.latent_dim == 128 and spec.loss == "hinge"  # untouched: GANConfig's defaults
    f.write_text("stepz = 40\n")
    assert _run(["train-gan", "--data", tmp_path, "--out", tmp_path / "o", "--config", f]) == 2
    assert len(gan_calls) == 2


def test_train_gan_flags_keep_working(gan_calls, tmp_path):
    assert _run(["train-gan", "--data", tmp_path, "--out", tmp_path / "o", "--steps", "3", "--arch", "resnet",
                 "--loss", "ns", "--batch-size", "16", "--latent-dim", "32", "--n-critic", "2", "--seed", "5",
                 "--device", "cpu", "--size", "32"]) == 0
    s = gan_calls[-1]
    assert (s.steps, s.arch, s.loss, s.batch_size, s.latent_dim, s.n_critic, s.seed, s.device, s.size, s.ema) == (
        3, "resnet", "ns", 16, 32, 2, 5, "cpu", 32, True)


def test_train_classifier_config_and_set(monkeypatch, tmp_path, capsys):
    import fairlatent.train.classifier as clf
    from fairlatent.data.dataset import write_dataset

    calls = []

    def record(train_sets, attributes, out, config, **kw):
        calls.append(config)
        raise Trained

    monkeypatch.setattr(clf, "train_classifier", record)
    n = 8
    table = pd.DataFrame({"id": [f"r{i}" for i in range(n)], "split": ["train"] * 4 + ["val"] * 4,
                          "Smiling": [0, 1] * 4})
    data = write_dataset(tmp_path / "d", np.zeros((n, 8, 8, 3), np.uint8), table, {"source": "test"})
    base = ["train-classifier", "--data", data, "--attributes", "Smiling", "--out", tmp_path / "m"]
    assert _run([*base, "--set", "epoch=3"]) == 2
    assert "--set: epoch: unknown key" in capsys.readouterr().err and calls == []
    f = tmp_path / "c.toml"
    f.write_text("epochs = 9\nweight_decay = 0.01\nstages = 2\n")
    with pytest.raises(Trained):
        main([str(a) for a in [*base, "--config", f, "--epochs", "4", "--set", "stages=1", "--lr", "0.01"]])
    (spec,) = calls
    assert (spec.epochs, spec.weight_decay, spec.stages, spec.lr, spec.width) == (4, 0.01, 1, 0.01, 16)


def test_run_set_misspelt_key_exits_2(tmp_path, capsys):
    from importlib import resources

    demo = resources.files("fairlatent.pipeline") / "configs" / "demo_fast.toml"
    assert _run(["run", str(demo), "--out", tmp_path / "r", "--set", "gan.stepz=3"]) == 2
    assert capsys.readouterr().err.strip().endswith("--set: gan.stepz: unknown key")
    assert not (tmp_path / "r").exists()
