"""GeneratorHandle: sampling determinism, truncation, latent validation, TorchScript round trip, CLI."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats

from fairlatent.data import load_dataset, write_dataset
from fairlatent.errors import FairlatentError
from fairlatent.models.gan import DCGANGenerator
from fairlatent.models.generator import GeneratorHandle, load_generator, truncated_normal
from fairlatent.train.gan import GANConfig, train_gan
from fairlatent.utils.images import to_uint8

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.trace:DeprecationWarning")


def eager_handle(G: torch.nn.Module, latent_dim: int) -> GeneratorHandle:
    return GeneratorHandle(G.eval(), latent_dim=latent_dim, output_range="[-1,1]", device=torch.device("cpu"),
                           source="eager")  # fmt: skip


@pytest.fixture(scope="module")
def small_G():
    torch.manual_seed(0)
    G = DCGANGenerator(latent_dim=12, size=32, width=8)
    with torch.no_grad():  # non-trivial batch-norm statistics, so eval mode differs from train mode
        G.train()
        G(torch.randn(64, 12))
    return G.eval()


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    r = np.random.default_rng(0)
    images = r.integers(0, 256, (24, 32, 32, 3), dtype=np.uint8)
    table = pd.DataFrame({"id": [str(i) for i in range(24)], "split": "train", "a": r.integers(0, 2, 24)})
    data = write_dataset(tmp_path_factory.mktemp("d") / "data", images, table, {"source": "test"})
    cfg = GANConfig(width=4, latent_dim=10, batch_size=8, steps=2, sample_every=100, log_every=1)
    return train_gan(data, tmp_path_factory.mktemp("r") / "run", cfg, progress=False)


def test_sample_is_deterministic_by_seed_and_latents_regenerate_images(small_G):
    h = eager_handle(small_G, 12)
    im1, z1 = h.sample(20, seed=5)
    im2, z2 = h.sample(20, seed=5)
    im3, z3 = h.sample(20, seed=6)
    assert z1.dtype == np.float32 and z1.shape == (20, 12) and im1.dtype == np.uint8 and im1.shape == (20, 32, 32, 3)
    assert np.array_equal(z1, z2) and np.array_equal(im1, im2)
    assert not np.array_equal(z1, z3)
    # any image is regenerated from its latent alone, whatever the batch it is rendered in
    assert np.array_equal(h.render(z1[7:8]), im1[7:8])
    assert np.array_equal(h.render(z1, batch_size=3), im1)
    # and equals the eager network's own output
    with torch.no_grad():
        assert np.array_equal(to_uint8(small_G(torch.from_numpy(z1))), im1)


def test_truncation_bounds_and_determinism(small_G):
    h = eager_handle(small_G, 12)
    z = h.sample_latents(3000, seed=1, truncation=0.7)
    assert np.abs(z).max() <= 0.7
    assert np.array_equal(z, h.sample_latents(3000, seed=1, truncation=0.7))
    # components follow the standard normal truncated to [-τ, τ] (KS test against scipy's truncnorm)
    assert stats.kstest(z.ravel()[:20000], stats.truncnorm(-0.7, 0.7).cdf).pvalue > 1e-3
    # without truncation: standard normal (and some components beyond 0.7)
    z0 = h.sample_latents(3000, seed=1)
    assert np.abs(z0).max() > 3 and stats.kstest(z0.ravel()[:20000], "norm").pvalue > 1e-3
    with pytest.raises(FairlatentError, match="truncation must be > 0"):
        truncated_normal(np.random.default_rng(0), (2, 2), 0.0)


def test_wrong_latent_dimension_is_named(small_G):
    h = eager_handle(small_G, 12)
    with pytest.raises(FairlatentError, match=r"expected n×12 .*got 7"):
        h.render(np.zeros((3, 7), np.float32))
    with pytest.raises(FairlatentError, match="expected n×12"):
        h.render(np.zeros(12, np.float32))


def test_torchscript_round_trip(small_G, tmp_path):
    z = np.random.default_rng(0).standard_normal((9, 12)).astype(np.float32)
    traced = torch.jit.trace(small_G, torch.from_numpy(z[:2]))
    path = tmp_path / "g.pt"
    traced.save(str(path))
    ts = load_generator(path, latent_dim=12, output_range="[-1,1]", device="cpu")
    assert ts.latent_dim == 12 and ts.image_size == 32
    assert np.array_equal(ts.render(z), eager_handle(small_G, 12).render(z))
    assert np.array_equal(ts.sample(5, seed=3)[0], eager_handle(small_G, 12).sample(5, seed=3)[0])


class _UnitRange(torch.nn.Module):
    def __init__(self, G):
        super().__init__()
        self.G = G

    def forward(self, z):
        return (self.G(z) + 1.0) / 2.0


def test_torchscript_unit_output_range(small_G, tmp_path):
    z = np.random.default_rng(1).standard_normal((6, 12)).astype(np.float32)
    path = tmp_path / "g01.pt"
    torch.jit.trace(_UnitRange(small_G).eval(), torch.from_numpy(z[:2])).save(str(path))
    ts = load_generator(path, latent_dim=12, output_range="[0,1]")
    # mapping [0,1] back to [-1,1] reproduces the tanh generator's images (up to one float rounding step)
    diff = np.abs(ts.render(z).astype(int) - eager_handle(small_G, 12).render(z).astype(int))
    assert diff.max() <= 1 and diff.mean() < 0.01


def test_torchscript_errors(small_G, tmp_path):
    path = tmp_path / "g.pt"
    torch.jit.trace(small_G, torch.zeros(2, 12)).save(str(path))
    with pytest.raises(FairlatentError, match="needs latent_dim and output_range"):
        load_generator(path)
    with pytest.raises(FairlatentError, match=r"latent_dim=5; is that the generator's latent dimension"):
        load_generator(path, latent_dim=5, output_range="[-1,1]")
    with pytest.raises(FairlatentError, match="output_range must be one of"):
        load_generator(path, latent_dim=12, output_range="0..1")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a zip")
    with pytest.raises(FairlatentError, match="junk.pt: not a loadable TorchScript file"):
        load_generator(junk, latent_dim=12, output_range="[-1,1]")
    with pytest.raises(FairlatentError, match="no such GAN run directory or TorchScript file"):
        load_generator(tmp_path / "missing.pt", latent_dim=12, output_range="[-1,1]")


def test_load_run_directory_uses_saved_weights(run_dir):
    h = load_generator(run_dir)
    assert (h.latent_dim, h.image_size) == (10, 32)
    images, z = h.sample(4, seed=0)
    assert images.shape == (4, 32, 32, 3)
    with pytest.raises(FairlatentError, match="latent dimension is 10, not 11"):
        load_generator(run_dir, latent_dim=11)
    (run_dir / "generator.safetensors").rename(run_dir / "g.bak")
    try:
        with pytest.raises(FairlatentError, match="has not finished"):
            load_generator(run_dir)
    finally:
        (run_dir / "g.bak").rename(run_dir / "generator.safetensors")


def test_cli_sample_writes_a_dataset_with_latents(run_dir, tmp_path, small_G):
    from typer.testing import CliRunner

    from fairlatent.cli import app

    out = tmp_path / "samples"
    res = CliRunner().invoke(app, ["sample", "--gan", str(run_dir), "--n", "7", "--out", str(out), "--seed", "4",
                                   "--truncation", "0.8"])  # fmt: skip
    assert res.exit_code == 0, res.output
    ds = load_dataset(out)
    assert len(ds) == 7 and ds.attribute_names == [] and (ds.table["split"] == "train").all()
    h = load_generator(run_dir)
    images, z = h.sample(7, seed=4, truncation=0.8)
    assert np.array_equal(np.asarray(ds.latents), z) and np.array_equal(np.asarray(ds.images), images)
    # TorchScript generators need --latent-dim/--output-range; a wrong one is a clear error (exit 2)
    path = tmp_path / "g.pt"
    torch.jit.trace(small_G, torch.zeros(2, 12)).save(str(path))
    from fairlatent.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["sample", "--gan", str(path), "--n", "3", "--out", str(tmp_path / "s2")])
    assert exc.value.code == 2
    res = CliRunner().invoke(app, ["sample", "--gan", str(path), "--n", "3", "--out", str(tmp_path / "s3"),
                                   "--latent-dim", "12", "--output-range", "[-1,1]"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert load_dataset(tmp_path / "s3").latents.shape == (3, 12)
