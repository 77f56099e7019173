"""Hostile inputs found by a sweep over every command after the first round of hardening: each one exited
with a Python traceback (or did work it should have refused) before its fix."""

from __future__ import annotations

import pytest
import torch


@pytest.mark.parametrize("command", ["train-classifier", "train-gan"])
@pytest.mark.parametrize("device, message", [
    ("bogus", "'bogus' is not a device"),
    ("cuda:x", "is not a device"),
    pytest.param("cuda", "CUDA is not available", marks=pytest.mark.skipif(torch.cuda.is_available(),
                                                                            reason="this machine has CUDA")),
])
def test_an_unusable_device_is_refused_before_training(cli, toyfaces_small, tmp_path, command, device, message):
    argv = [command, "--data", toyfaces_small, "--out", tmp_path / "out", "--device", device]
    if command == "train-classifier":
        argv += ["--attributes", "Wearing_Hat"]
    cli.user_error(argv, "--device", message)
    assert not (tmp_path / "out").exists()  # nothing started


def test_a_pipeline_config_with_an_unusable_device_is_refused_at_load(cli, tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('name = "x"\ndevice = "tpu"\n')
    cli.user_error(["run", cfg, "--out", tmp_path / "run"], "device", "'tpu'")
    assert not (tmp_path / "run").exists()
