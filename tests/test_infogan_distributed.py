"""InfoGAN on two gloo processes (CPU): the Q head through the DDP wrapper, and bitwise resume on two ranks.

Through the real entry point (``python -m fairlatent.cli train-gan ... --nproc 2``), as ``test_distributed``
does for the plain GAN: a run stopped at step 3 (a finished 3-step run) and extended to 6 steps must end
bitwise identical to a 6-step run, which holds only if every rank's codes come from the (seed, step)
streams and Q's weights and optimiser moments are all in the checkpoint.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from fairlatent.data import write_dataset
from fairlatent.train.checkpoint import load_checkpoint

pytestmark = pytest.mark.slow

ARGS = ["--batch-size", "8", "--width", "4", "--latent-dim", "6", "--seed", "2", "--loss", "ns",
        "--set", "info_categorical=[3]", "--set", "info_continuous=2", "--set", "info_learn_std=true",
        "--set", "log_every=1", "--set", "sample_every=1000", "--quiet", "--nproc", "2"]  # fmt: skip


def _run(*args: str) -> None:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1] / "src") + os.pathsep + env.get("PYTHONPATH", "")
    res = subprocess.run([sys.executable, "-m", "fairlatent.cli", "train-gan", *args], env=env, capture_output=True,
                         text=True, timeout=300)  # fmt: skip
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]


def test_infogan_on_two_ranks_resumes_bitwise(tmp_path):
    import numpy as np

    r = np.random.default_rng(0)
    images = (r.random((32, 32, 32, 3)) * 255).astype(np.uint8)
    table = pd.DataFrame({"id": [str(i) for i in range(32)], "split": "train", "a": r.integers(0, 2, 32)})
    data = str(write_dataset(tmp_path / "d", images, table, {"source": "test"}))
    full, part = tmp_path / "full", tmp_path / "part"
    _run("--data", data, "--out", str(full), "--steps", "6", *ARGS)
    _run("--data", data, "--out", str(part), "--steps", "3", *ARGS)
    _run("--data", data, "--out", str(part), "--steps", "6", *ARGS)
    a, _, sa = load_checkpoint(full / "checkpoint")
    b, _, sb = load_checkpoint(part / "checkpoint")
    assert sa["step"] == sb["step"] == 6 and sa["world_size"] == 2
    assert a.keys() == b.keys() and "D.q.net.2.weight" in a and "_rng.rank1.torch_cpu" in a
    for k in a:
        assert torch.equal(a[k], b[k]), k
    log = pd.read_csv(part / "log.csv")
    assert log["step"].tolist() == [1, 2, 3, 4, 5, 6] and log["mi_cat"].notna().all()


def test_infogan_mnist_on_two_ranks_equals_one_process(tmp_path):
    """arch="infogan_mnist" has batch norm in D and Q too: on two ranks each of D's batch-norm groups (the real
    half, the generated half) is normalised over that half of the *global* batch, so 2 ranks × 4 images give
    the weights and losses of one process with 8, up to float rounding (contiguous format; see GlobalBatchNorm
    for channels_last)."""
    import numpy as np

    from fairlatent.train.gan import GANConfig, train_gan

    r = np.random.default_rng(1)
    images = (r.random((32, 32, 32, 3)) * 255).astype(np.uint8)
    table = pd.DataFrame({"id": [str(i) for i in range(32)], "split": "train", "a": r.integers(0, 2, 32)})
    data = str(write_dataset(tmp_path / "d", images, table, {"source": "test"}))
    settings = dict(arch="infogan_mnist", loss="ns", batch_size=8, width=4, latent_dim=6, seed=2, steps=3,
                    info_categorical=[3], info_continuous=2, log_every=1, sample_every=1000, channels_last=False)
    one = train_gan(data, tmp_path / "one", GANConfig(**settings), progress=False)
    args = [f"--set={k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in settings.items()]
    _run("--data", data, "--out", str(tmp_path / "two"), "--quiet", "--nproc", "2", *args)
    a, _, sa = load_checkpoint(one / "checkpoint")
    b, _, sb = load_checkpoint(tmp_path / "two" / "checkpoint")
    assert sa["world_size"] == 1 and sb["world_size"] == 2
    keys = [k for k in a if k.startswith(("G.", "D.", "G_ema.")) and "num_batches" not in k]
    assert "D.bn3.running_var" in keys and "D.q.bn.running_mean" in keys
    worst = max(float((a[k].double() - b[k].double()).abs().max()) for k in keys)
    assert worst < 1e-4, worst
    la, lb = pd.read_csv(one / "log.csv"), pd.read_csv(tmp_path / "two" / "log.csv")
    for col in ("loss_d", "loss_g", "mi_cat", "nll_cont"):
        np.testing.assert_allclose(la[col], lb[col], rtol=1e-4, atol=1e-5)
    from fairlatent.train.gan import GANTrainer

    init = GANTrainer(GANConfig(**settings), 32).tensors()  # the weights moved by far more than the tolerance
    moved = max(float((init[k] - a[k]).abs().max()) for k in keys if "running" not in k)
    assert moved > 1e-3 and moved > 20 * worst, (moved, worst)
