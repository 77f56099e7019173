"""InfoGAN: the Q head, the codes in the latents, the MI loss, bitwise resume, cluster accuracy, MNIST reading."""

from __future__ import annotations

import gzip
import itertools
import math
import struct

import numpy as np
import pandas as pd
import pytest
import torch

from fairlatent.data import write_dataset
from fairlatent.data.mnist import DIGIT_COLUMNS, digit_labels, read_idx, read_mnist
from fairlatent.errors import FairlatentError
from fairlatent.metrics.cluster import best_matching, cluster_accuracy
from fairlatent.models.gan import build_discriminator
from fairlatent.models.infogan import (
    code_spec,
    info_terms,
    latents_with_codes,
    load_infogan,
    predict_codes,
    split_q,
    sweep_latents,
)
from fairlatent.train.checkpoint import load_tensors
from fairlatent.train.gan import GANConfig, GANTrainer, fixed_sample_latents, train_gan
from fairlatent.utils.seed import torch_generator

TINY = dict(width=4, batch_size=8, latent_dim=6, log_every=1, sample_every=1000, checkpoint_every=2)
INFO = dict(info_categorical=[3], info_continuous=2)


def digits(n: int, size: int = 32, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Three easily told apart 'digits': a vertical bar, a horizontal bar, a ring (label 0, 1, 2)."""
    r = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    labels = r.integers(0, 3, n)
    images = np.zeros((n, size, size, 3), np.uint8)
    for i, lab in enumerate(labels):
        dx, dy = r.uniform(-0.08, 0.08, 2)
        if lab == 0:
            m = abs(xx - 0.5 - dx) < 0.08
        elif lab == 1:
            m = abs(yy - 0.5 - dy) < 0.08
        else:
            m = abs(np.hypot(xx - 0.5 - dx, yy - 0.5 - dy) - 0.3) < 0.06
        images[i][m] = 255
    return images, labels


@pytest.fixture(scope="module")
def data32(tmp_path_factory):
    images, labels = digits(40)
    table = pd.DataFrame({"id": [str(i) for i in range(len(labels))], "split": "train", "shape": (labels == 2).astype(int)})
    return write_dataset(tmp_path_factory.mktemp("d") / "digits32", images, table, {"source": "test"})


# --- the Q head ------------------------------------------------------------------------------------


@pytest.mark.parametrize("arch", ["dcgan", "resnet", "infogan_mnist"])
def test_q_head_shapes_and_split(arch):
    D = build_discriminator(arch, size=32, width=4, q_dim=10 + 2 * 2).eval()  # eval: no power iteration per call
    x = torch.randn(5, 3, 32, 32)
    logits, q = D(x, with_q=True)
    assert logits.shape == (5,) and q.shape == (5, 14)
    torch.testing.assert_close(D(x), logits)  # the plain call is the logit alone, as before
    cats, mean, log_std = split_q(q, [10], 2)
    assert [c.shape for c in cats] == [(5, 10)] and mean.shape == (5, 2) and log_std.shape == (5, 2)
    torch.testing.assert_close(torch.cat([cats[0], mean, log_std], 1), q)


def test_q_head_reads_each_image_alone():
    """With the minibatch-std feature on, D's logit depends on the group, but Q's output must not."""
    torch.manual_seed(0)
    D = build_discriminator("dcgan", size=32, width=4, minibatch_std=4, q_dim=5)
    x = torch.randn(8, 3, 32, 32)
    _, q_all = D(x, with_q=True)
    x2 = x.clone()
    x2[1:4] = torch.randn(3, 3, 32, 32)  # change the other members of image 0's group
    l2, q2 = D(x2, with_q=True)
    torch.testing.assert_close(q2[0], q_all[0])
    assert not torch.allclose(l2[0], D(x)[0])  # ... while the logit does see them


def test_infogan_mnist_trainer_q_width_and_batch_norm_groups(monkeypatch):
    """arch="infogan_mnist" with codes: Q (the reference's FC → BN → LeakyReLU → FC, keys ``D.q.*``) has
    q_width outputs; the D step scores [real; fake] as two batch-norm groups, the G step the fakes alone;
    Q's reading of real images (eval mode) does not depend on the batch."""
    from fairlatent.models.gan import InfoGANMNISTDiscriminator

    cfg = GANConfig(**{**TINY, "batch_size": 6}, **INFO, arch="infogan_mnist", loss="ns")
    tr = GANTrainer(cfg, 32)
    keys = tr.tensors()
    assert keys["D.q.fc2.weight"].shape == (3 + 2 * 2, 8) and "D.q.bn.running_mean" in keys
    assert tr.G.fc1.in_features == 6 + 3 + 2
    calls = []
    forward = InfoGANMNISTDiscriminator.forward

    def spy(self, x, with_q=False, groups=1):
        calls.append((x.shape[0], with_q, groups))
        return forward(self, x, with_q=with_q, groups=groups)

    monkeypatch.setattr(InfoGANMNISTDiscriminator, "forward", spy)
    images, _ = digits(6)
    tr.train_step(0, [(torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1).to(tr.device)])
    assert calls == [(12, True, 2), (6, True, 1)]
    assert float(tr.last_stats["mi_cat"]) <= math.log(3) + 1e-6
    monkeypatch.undo()
    images, _ = digits(9, seed=1)
    cats, means = predict_codes(tr.D, images, [3], 2)
    cats3, means3 = predict_codes(tr.D, images, [3], 2, batch_size=4)
    assert cats.shape == (9, 1) and np.array_equal(cats, cats3)
    np.testing.assert_allclose(means, means3, rtol=1e-5, atol=1e-6)
    assert tr.D.training  # predict_codes restores training mode


def test_without_codes_nothing_changes():
    """No Q head, no extra generator inputs, the same cache key and grid latents as before the settings."""
    cfg = GANConfig(**TINY)
    assert not cfg.infogan
    key = cfg.cache_key()
    assert not any(k.startswith("info_") for k in key)
    assert key == {k: v for k, v in cfg.model_dump().items() if not k.startswith("info_")
                   and k not in ("g_final_width", "d_first_width", "d_pack", "r1_gamma", "r1_every", "dp_batchnorm",
                                 "precision", "fused_optimizer")}
    tr = GANTrainer(cfg, 32)
    assert not any(k.startswith("D.q.") for k in tr.tensors())
    assert tr.G.fc.in_features == cfg.latent_dim
    with pytest.raises(ValueError, match="no InfoGAN Q head"):
        tr.D(torch.zeros(4, 3, 32, 32, device=tr.device), with_q=True)
    g = torch_generator(cfg.seed, "gan-grid")
    torch.testing.assert_close(fixed_sample_latents(cfg), torch.randn(64, cfg.latent_dim, generator=g))
    on = GANConfig(**TINY, **INFO)
    assert on.cache_key()["info_categorical"] == [3] and on.cache_key()["info_continuous"] == 2
    assert GANConfig(**TINY, info_categorical=[3], info_lambda_cont=0.1).cache_key()["info_lambda_cont"] == 0.1


def test_codes_on_shapes_the_networks():
    cfg = GANConfig(**TINY, **INFO)
    tr = GANTrainer(cfg, 32)
    assert tr.G.fc.in_features == cfg.latent_dim + 3 + 2
    assert tr.tensors()["D.q.net.2.weight"].shape[0] == 3 + 2 * 2
    z, (cat, cont) = tr._zc(torch_generator(0, "x"), 8)
    assert z.shape == (8, 11) and cat.shape == (8, 1) and cont.shape == (8, 2)
    torch.testing.assert_close(z[:, 6:9], torch.nn.functional.one_hot(cat[:, 0], 3).float())
    torch.testing.assert_close(z[:, 9:], cont)
    assert cont.abs().max() <= 1
    with pytest.raises(ValueError, match="d_pack=1"):
        GANConfig(**TINY, **INFO, d_pack=2)


# --- the loss ----------------------------------------------------------------------------------------


def test_info_terms_match_their_definitions():
    g = torch.Generator().manual_seed(0)
    q = torch.randn(6, 4 + 2 * 2, generator=g)
    cat = torch.randint(0, 4, (6, 1), generator=g)
    cont = torch.rand(6, 2, generator=g) * 2 - 1
    ce, nll = info_terms(q, cat, cont, [4], 2)
    logp = torch.log_softmax(q[:, :4], 1)
    torch.testing.assert_close(ce, -logp[torch.arange(6), cat[:, 0]].mean())
    normal = torch.distributions.Normal(q[:, 4:6], 1.0)
    torch.testing.assert_close(nll, -normal.log_prob(cont).sum(1).mean())
    _, nll_learned = info_terms(q, cat, cont, [4], 2, learn_std=True)
    normal = torch.distributions.Normal(q[:, 4:6], q[:, 6:8].exp())
    torch.testing.assert_close(nll_learned, -normal.log_prob(cont).sum(1).mean())


# --- training ------------------------------------------------------------------------------------


# bitwise resume with codes on: the "infogan-codes" case of tests/test_gan.py::test_resume_is_bitwise_identical


def test_q_loss_falls_on_a_tiny_data_set():
    """Planted: Q (and G) learn to make the categorical code readable: the bound ln 3 − CE starts at 0 (an
    untrained Q cannot read the code) and passes 40 % of its ceiling ln 3 within 40 steps."""
    images, _ = digits(64)
    cfg = GANConfig(width=8, batch_size=16, latent_dim=6, info_categorical=[3], info_continuous=1, loss="ns",
                    lr_g=1e-3, lr_d=1e-3, d_minibatch_std=0, flip=False, ema=False)  # fmt: skip
    tr = GANTrainer(cfg, 32)
    from fairlatent.utils.images import to_tensor

    x = to_tensor(images, tr.device).contiguous(memory_format=torch.channels_last)
    mi = []
    for step in range(40):
        tr.train_step(step, [x[(step % 4) * 16 : (step % 4 + 1) * 16]])
        mi.append(float(tr.last_stats["mi_cat"]))
    first, last = np.mean(mi[:5]), np.mean(mi[-10:])
    assert first < 0.1 * math.log(3)
    assert last > 0.4 * math.log(3), (first, last)


def test_run_regenerates_from_latents_with_codes(data32, tmp_path):
    cfg = GANConfig(**TINY, **INFO, steps=2)
    out = train_gan(data32, tmp_path / "run", cfg, progress=False)
    assert {"mi_cat", "nll_cont"} <= set(pd.read_csv(out / "log.csv").columns)
    G = load_infogan(out)
    assert G.latent_spec == code_spec(6, [3], 2) and G.latent_dim == 11
    z = G.sample_latents(5, seed=1)
    assert z.shape == (5, 11)
    assert np.array_equal(z[:, 6:9].sum(1), np.ones(5)) and set(np.unique(z[:, 6:9])) <= {0.0, 1.0}
    assert np.abs(z[:, 9:]).max() <= 1
    images = G.decode(z)
    assert np.array_equal(G.decode(z[::-1])[::-1], images)  # each image from its own latent
    # chosen codes: the same noise with each category
    built = latents_with_codes(G.latent_spec, np.repeat(z[:1, :6], 3, 0), {"cat0": [0, 1, 2]}, {"cont1": 0.5})
    assert np.array_equal(built[:, 6:9], np.eye(3, dtype=np.float32)) and np.all(built[:, 9:] == [0, 0.5])
    assert np.array_equal(built[:, :6], np.repeat(z[:1, :6], 3, 0))
    same = latents_with_codes(G.latent_spec, z[:, :6], {"cat0": z[:, 6:9].argmax(1)},
                              {"cont0": z[:, 9], "cont1": z[:, 10]})  # fmt: skip
    assert np.array_equal(same, z) and np.array_equal(G.decode(same), images)
    grid = sweep_latents(G.latent_spec, z[:1, :6], "cont0", [-1.0, 0.0, 1.0])
    assert grid.shape == (9, 11) and np.array_equal(grid[:, 9], np.tile([-1.0, 0.0, 1.0], 3))
    assert np.array_equal(grid[:, 6:9].argmax(1), np.repeat([0, 1, 2], 3))
    with pytest.raises(FairlatentError, match="no code named"):
        latents_with_codes(G.latent_spec, z[:, :6], {"cat9": 0})
    # Q reads real images: one category and two means per image
    tr = GANTrainer(cfg, 32)
    cats, means = predict_codes(tr.D, digits(7)[0], [3], 2)
    assert cats.shape == (7, 1) and means.shape == (7, 2) and cats.max() < 3
    ga = load_tensors(out / "generator.safetensors")
    assert ga["G.fc.weight"].shape[1] == 11
    # the generator protocol's loader (what the pipeline's given [generator] uses) opens it the same way
    from fairlatent.models.generator import load_generator

    H = load_generator(out)
    assert H.latent_dim == 11 and np.array_equal(H.decode(z), images)
    with pytest.raises(FairlatentError, match="has dimension 11, not 6"):
        load_generator(out, latent_dim=6)


# --- cluster accuracy --------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(6))
def test_cluster_accuracy_equals_brute_force_on_5_classes(seed):
    r = np.random.default_rng(seed)
    labels = r.integers(0, 5, 200)
    perm = r.permutation(5)
    pred = perm[labels]
    noisy = r.random(200) < r.uniform(0.1, 0.7)  # some rows to random clusters, merging some pairs
    pred[noisy] = r.integers(0, 5, noisy.sum())
    brute = max(np.mean(np.array(p)[pred] == labels) for p in itertools.permutations(range(5)))
    assert cluster_accuracy(pred, labels, 5) == pytest.approx(brute, abs=1e-12)
    m = best_matching(pred, labels, 5)
    assert sorted(m) == list(range(5)) and sorted(m.values()) == list(range(5))  # one-to-one


def test_cluster_accuracy_one_to_one_does_not_reward_merging():
    labels = np.array([0, 0, 1, 1, 2, 2])
    merged = np.array([0, 0, 0, 0, 1, 1])  # two classes in one cluster: only one of them can claim it
    assert cluster_accuracy(merged, labels, 3) == pytest.approx(4 / 6)
    assert cluster_accuracy(np.array([2, 2, 0, 0, 1, 1]), labels, 3) == 1.0


# --- MNIST -----------------------------------------------------------------------------------------


def _idx(path, arr: np.ndarray, compress: bool) -> None:
    head = struct.pack(">BBBB", 0, 0, 8, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
    raw = head + arr.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(raw) if compress else raw)


@pytest.mark.parametrize("compress", [True, False])
def test_mnist_reader_pads_to_32_rgb(tmp_path, compress):
    r = np.random.default_rng(0)
    imgs = r.integers(0, 256, (4, 28, 28)).astype(np.uint8)
    labels = np.array([3, 0, 9, 3], np.uint8)
    suffix = ".gz" if compress else ""
    _idx(tmp_path / f"t10k-images-idx3-ubyte{suffix}", imgs, compress)
    _idx(tmp_path / f"t10k-labels-idx1-ubyte{suffix}", labels, compress)
    x, y = read_mnist(tmp_path)
    assert x.shape == (4, 32, 32, 3) and x.dtype == np.uint8 and y.tolist() == [3, 0, 9, 3]
    assert np.array_equal(x[:, 2:30, 2:30, 1], imgs) and x[:, :2].max() == 0 and x[:, :, 30:].max() == 0
    assert np.array_equal(x[..., 0], x[..., 2])


def test_mnist_cli_writes_one_hot_digits(tmp_path):
    from typer.testing import CliRunner

    from fairlatent.cli import app
    from fairlatent.data import load_dataset

    r = np.random.default_rng(1)
    labels = r.integers(0, 10, 50).astype(np.uint8)
    _idx(tmp_path / "t10k-images-idx3-ubyte.gz", r.integers(0, 256, (50, 28, 28)), True)
    _idx(tmp_path / "t10k-labels-idx1-ubyte.gz", labels, True)
    res = CliRunner().invoke(app, ["data", "mnist", "--root", str(tmp_path), "--out", str(tmp_path / "ds")])
    assert res.exit_code == 0, res.output
    ds = load_dataset(tmp_path / "ds")
    assert ds.attribute_names == list(DIGIT_COLUMNS) and ds.images.shape == (50, 32, 32, 3)
    assert np.array_equal(digit_labels(ds.table), labels)
    assert ds.table[list(DIGIT_COLUMNS)].to_numpy().sum(1).tolist() == [1] * 50
    assert sorted(ds.table["split"].value_counts().to_dict().items()) == [("test", 5), ("train", 40), ("val", 5)]


def test_idx_with_wrong_length_is_named(tmp_path):
    p = tmp_path / "bad-idx1-ubyte"
    p.write_bytes(struct.pack(">BBBBI", 0, 0, 8, 1, 10) + b"\0" * 7)
    with pytest.raises(FairlatentError, match="header says"):
        read_idx(p)


def test_cli_train_gan_with_codes(data32, tmp_path):
    """`train-gan --set info_categorical=[3]` (a TOML list) turns InfoGAN on from the command line."""
    from typer.testing import CliRunner

    from fairlatent.cli import app
    from fairlatent.utils.io import read_json

    out = tmp_path / "cli-info"
    args = ["train-gan", "--data", str(data32), "--out", str(out), "--steps", "2", "--batch-size", "8", "--width", "4",
            "--latent-dim", "6", "--quiet", "--set", "info_categorical=[3]", "--set", "info_continuous=1"]  # fmt: skip
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    rec = read_json(out / "config.json")
    assert rec["done"] and rec["config"]["info_categorical"] == [3] and rec["config"]["info_continuous"] == 1
    assert load_infogan(out).latent_dim == 6 + 3 + 1
