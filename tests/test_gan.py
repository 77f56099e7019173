"""GAN architectures, losses, the training job (checkpoints, exact resume, errors) on tiny configs."""

from __future__ import annotations

import copy
import math

import numpy as np
import pandas as pd
import pytest
import torch
from torch.nn import functional as F

from fairlatent.data import load_dataset, write_dataset
from fairlatent.errors import FairlatentError
from fairlatent.models.gan import SIZES, build_discriminator, build_generator, minibatch_stddev, pack_images
from fairlatent.train.checkpoint import load_checkpoint, load_module_state, load_tensors
from fairlatent.train.gan import (
    BatchSource,
    GANConfig,
    GANTrainer,
    discriminator_loss,
    generator_loss,
    gradient_penalty,
    r1_penalty,
    train_gan,
    translate,
)

TINY = dict(width=4, batch_size=8, latent_dim=16, log_every=1, sample_every=1000, checkpoint_every=2)


def synthetic_faces(n: int, size: int, seed: int = 0) -> tuple[np.ndarray, pd.DataFrame]:
    """Discs ("faces") on a plain background, with a dark bar ("glasses") on some."""
    r = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    glasses = r.random(n) < 0.4
    images = np.empty((n, size, size, 3), np.uint8)
    for i in range(n):
        img = np.full((size, size, 3), r.integers(150, 255, 3), np.uint8)
        face = (xx - 0.5) ** 2 + (yy - 0.55) ** 2 < 0.09
        img[face] = r.integers(120, 230, 3)
        if glasses[i]:
            img[(abs(yy - 0.5) < 0.05) & (abs(xx - 0.5) < 0.25)] = 20
        images[i] = img
    table = pd.DataFrame({"id": [str(i) for i in range(n)], "split": "train", "glasses": glasses.astype(int)})
    return images, table


@pytest.fixture(scope="module")
def data32(tmp_path_factory):
    images, table = synthetic_faces(40, 32)
    return write_dataset(tmp_path_factory.mktemp("d") / "faces32", images, table, {"source": "test"})


# --- architectures ---------------------------------------------------------------------------------


@pytest.mark.parametrize("arch", ["dcgan", "resnet"])
@pytest.mark.parametrize("size", SIZES)
def test_shapes_and_range(arch, size):
    G = build_generator(arch, size=size, latent_dim=7, width=4).eval()
    D = build_discriminator(arch, size=size, width=4)
    x = G(torch.randn(3, 7) * 10)  # large latents saturate tanh: still inside [-1, 1]
    assert x.shape == (3, 3, size, size)
    assert x.abs().max() <= 1.0
    assert D(x).shape == (3,)


@pytest.mark.parametrize("size", SIZES)
def test_dcgan_final_width_adds_a_full_resolution_layer(size):
    """``final_width=f``: the last transposed conv yields f channels at full size, then a 3×3 conv to RGB;
    ``final_width=0`` keeps the classic layers (same parameter names and shapes, so old runs load)."""
    classic = build_generator("dcgan", size=size, latent_dim=7, width=4)
    G = build_generator("dcgan", size=size, latent_dim=7, width=4, final_width=5)
    assert G.final_width == 5 and classic.final_width == 0
    seen = {}
    G.body[-3].register_forward_hook(lambda m, i, o: seen.update(hidden=o.shape))
    x = G.eval()(torch.randn(3, 7) * 10)
    assert seen["hidden"] == (3, 5, size, size)  # the extra nonlinearity works at full resolution
    assert x.shape == (3, 3, size, size) and x.abs().max() <= 1.0
    last = G.body[-2]
    assert isinstance(last, torch.nn.Conv2d) and last.kernel_size == (3, 3) and last.in_channels == 5
    assert isinstance(classic.body[-2], torch.nn.ConvTranspose2d) and classic.body[-2].out_channels == 3
    legacy = {k: v.shape for k, v in build_generator("dcgan", size=size, latent_dim=7, width=4).state_dict().items()}
    assert {k: v.shape for k, v in classic.state_dict().items()} == legacy
    n_extra = sum(p.numel() for p in G.parameters()) - sum(p.numel() for p in classic.parameters())
    c = 4  # last hidden width: ConvT(c→3, bias) replaced by ConvT(c→5) + BN(5) + Conv3×3(5→3, bias)
    assert n_extra == (c * 5 * 16 + 2 * 5 + 5 * 3 * 9 + 3) - (c * 3 * 16 + 3)


def test_final_width_is_dcgan_only():
    with pytest.raises(ValueError, match="DCGAN generator only"):
        build_generator("resnet", size=32, latent_dim=7, width=4, final_width=5)
    with pytest.raises(ValueError, match="g_final_width"):
        GANConfig(arch="resnet", g_final_width=8)
    with pytest.raises(ValueError, match="DCGAN discriminator only"):
        build_discriminator("resnet", size=32, width=4, first_width=5)
    with pytest.raises(ValueError, match="d_first_width"):
        GANConfig(arch="resnet", d_first_width=8)


@pytest.mark.parametrize("minibatch_std", [0, 4])
def test_dcgan_discriminator_first_width_is_a_full_resolution_conv(minibatch_std):
    """``first_width=f``: a 3×3 stride-1 conv (3 → f) + LeakyReLU runs at full size before the classic
    stride-2 stack, whose first conv then takes f inputs; 0 keeps the classic parameter names and shapes."""
    classic = build_discriminator("dcgan", size=32, width=4, minibatch_std=minibatch_std)
    D = build_discriminator("dcgan", size=32, width=4, minibatch_std=minibatch_std, first_width=5)
    first, second = D.body[0], D.body[2]
    assert (first.in_channels, first.out_channels, first.kernel_size, first.stride) == (3, 5, (3, 3), (1, 1))
    assert (second.in_channels, second.stride) == (5, (2, 2))
    x = torch.randn(8, 3, 32, 32)
    seen = {}
    first.register_forward_hook(lambda m, i, o: seen.update(full=o.shape))
    assert D(x).shape == (8,) and seen["full"] == (8, 5, 32, 32)
    legacy = build_discriminator("dcgan", size=32, width=4, minibatch_std=minibatch_std, first_width=0)
    assert {k: v.shape for k, v in classic.state_dict().items()} == {k: v.shape for k, v in legacy.state_dict().items()}
    # the classic stack after the new layer: same shapes as the classic D from its second conv on
    assert [m.weight.shape for m in D.body[4::2]] == [m.weight.shape for m in classic.body[2::2]]


@pytest.mark.parametrize("channels_last", [False, True])
def test_packed_discriminator_stacks_consecutive_images(channels_last):
    """pack=2: images 2j and 2j+1 are stacked along channels (first conv 6 → width), one logit per pair;
    the same network on the stacked input by hand gives the same logits, in either memory format."""
    D = build_discriminator("dcgan", size=32, width=4, minibatch_std=2, pack=2)
    assert D.body[0].in_channels == 6
    x = torch.randn(8, 3, 32, 32)
    by_hand = torch.cat([x[0::2], x[1::2]], dim=1)  # pair j = [x[2j], x[2j+1]]
    torch.testing.assert_close(pack_images(x, 2), by_hand)
    xin = x.contiguous(memory_format=torch.channels_last) if channels_last else x
    out = D(xin)
    assert out.shape == (4,)
    D.pack = 1  # the same weights, fed the stacked images directly
    torch.testing.assert_close(out, D(by_hand))
    D.pack = 2
    with pytest.raises(ValueError, match="pack=2 needs a batch size divisible by 2, got 7"):
        D(x[:7])
    with pytest.raises(ValueError, match="DCGAN discriminator only"):
        build_discriminator("resnet", size=32, width=4, pack=2)


def test_packed_training_step_scores_real_and_fake_packs_apart(data32):
    """With pack=2 a D step's loss is loss_D(logits of the n/2 real packs, logits of the n/2 fake packs),
    recomputed here by hand from the same latents (both halves non-empty, the loss finite)."""
    from fairlatent.utils.seed import torch_generator

    cfg = GANConfig(**TINY, d_pack=2, seed=3)
    tr = GANTrainer(cfg, 32)
    real = BatchSource(np.asarray(load_dataset(data32).images), 8, seed=3, flip=False, device=tr.device)(0)
    G0, D0 = copy.deepcopy(tr.G), copy.deepcopy(tr.D)
    loss_d, _ = tr.train_step(0, [real])
    g = torch_generator(cfg.seed, "gan-step", 0)
    with torch.no_grad():
        fake = G0(torch.randn(8, cfg.latent_dim, generator=g))
        logits = D0(torch.cat([real, fake]))
    assert logits.shape == (8,)
    expected = discriminator_loss("hinge", logits[:4], logits[4:])
    assert torch.isfinite(loss_d)
    torch.testing.assert_close(loss_d, expected)


def test_r1_penalty_closed_form_and_lazy_weight(data32):
    """R1 of a linear D(x) = <w, x> is ‖w‖²; in a training step the D loss grows by (γ/2)·k·R1 on steps that
    are multiples of r1_every = k and is unchanged on the others."""
    w = torch.randn(1, 3, 4, 4)
    torch.testing.assert_close(r1_penalty(lambda x: (x * w).flatten(1).sum(1), torch.randn(5, 3, 4, 4)), w.square().sum())

    real = BatchSource(np.asarray(load_dataset(data32).images), 8, seed=4, flip=False, device=torch.device("cpu"))(0)
    base = GANConfig(**TINY, loss="ns", seed=4)
    for step, applies in ((0, True), (1, False), (4, True)):
        plain = GANTrainer(base, 32)
        lazy = GANTrainer(base.model_copy(update={"r1_gamma": 0.5, "r1_every": 2}), 32)
        D0 = copy.deepcopy(lazy.D)
        d_plain, _ = plain.train_step(step, [real])
        d_lazy, _ = lazy.train_step(step, [real])
        extra = 0.5 * 0.5 * 2 * r1_penalty(D0, real).detach() if applies else torch.zeros(())
        torch.testing.assert_close(d_lazy, d_plain + extra)
        assert (float(extra) > 0) == applies


def test_pack_and_r1_settings_are_validated():
    with pytest.raises(ValueError, match="d_pack applies to the DCGAN discriminator only"):
        GANConfig(arch="resnet", d_pack=2)
    with pytest.raises(ValueError, match="d_pack=3 needs a batch_size divisible by it"):
        GANConfig(batch_size=64, d_pack=3, d_minibatch_std=0)
    with pytest.raises(ValueError, match="packs divisible by d_minibatch_std=4"):
        GANConfig(batch_size=8, d_pack=4, d_minibatch_std=4)
    with pytest.raises(ValueError, match="WGAN-GP has its own penalty"):
        GANConfig(loss="wgan-gp", r1_gamma=1.0)
    assert GANConfig(d_pack=2, r1_gamma=0.1).cache_key()["d_pack"] == 2
    assert "d_pack" not in GANConfig().cache_key() and "r1_gamma" not in GANConfig().cache_key()


def test_spectral_norm_dcgan_discriminator_is_unit_lipschitz_per_layer():
    """With spectral_norm=True every DCGAN-D layer's weight has largest singular value ≈ 1 (after power
    iterations); the plain D keeps the same initial weights (the option only wraps them)."""
    torch.manual_seed(0)
    plain = build_discriminator("dcgan", size=32, width=4)
    torch.manual_seed(0)
    sn = build_discriminator("dcgan", size=32, width=4, spectral_norm=True)
    torch.testing.assert_close(sn.fc.parametrizations.weight.original, plain.fc.weight)
    x = torch.randn(6, 3, 32, 32)
    for _ in range(30):  # power iterations run in training-mode forward passes
        sn(x)
    sn.eval()
    for m in [*sn.body, sn.fc]:
        if hasattr(m, "parametrizations"):
            w = m.weight.detach().flatten(1)
            assert abs(float(torch.linalg.matrix_norm(w, ord=2)) - 1.0) < 0.05


def test_minibatch_stddev_closed_form_and_grouping():
    h = torch.randn(6, 5, 4, 4)
    out = minibatch_stddev(h, 3)
    assert out.shape == (6, 1, 4, 4)
    for grp in range(2):
        g = h[3 * grp : 3 * grp + 3].double()
        expected = ((g - g.mean(0)).pow(2).mean(0) + 1e-8).sqrt().mean()  # population std, then mean
        torch.testing.assert_close(out[3 * grp : 3 * grp + 3].double(), expected.expand(3, 1, 4, 4))
    torch.testing.assert_close(minibatch_stddev(h[:1].expand(3, 5, 4, 4), 3), torch.full((3, 1, 4, 4), 1e-4))
    with pytest.raises(ValueError, match="divisible by 4"):
        minibatch_stddev(h, 4)
    # in D, an image's logit depends on its own group only
    D = build_discriminator("dcgan", size=32, width=4, minibatch_std=2)
    x = torch.randn(4, 3, 32, 32)
    y = x.clone()
    y[3] = torch.randn(3, 32, 32)
    a, b = D(x), D(y)
    torch.testing.assert_close(a[:2], b[:2])
    assert not torch.allclose(a[2], b[2])
    with pytest.raises(ValueError, match="d_minibatch_std=4 needs a batch_size divisible"):
        GANConfig(batch_size=6, d_minibatch_std=4)
    GANConfig(batch_size=6, d_minibatch_std=0)
    GANConfig(batch_size=6, arch="resnet")  # the SN-ResNet discriminator has no such feature


def test_translate_matches_padded_shift():
    x = torch.arange(2 * 3 * 5 * 6, dtype=torch.float32).view(2, 3, 5, 6) + 1
    shift = torch.tensor([[1, -2], [0, 3]])
    out = translate(x, shift)
    for n, (dy, dx) in enumerate(shift.tolist()):
        ref = torch.zeros(3, 5, 6)
        for i in range(5):
            for j in range(6):
                if 0 <= i - dy < 5 and 0 <= j - dx < 6:
                    ref[:, i, j] = x[n, :, i - dy, j - dx]
        torch.testing.assert_close(out[n], ref)
    # differentiable: the gradient counts how often each input pixel is kept
    xr = x.clone().requires_grad_(True)
    translate(xr, shift).sum().backward()
    assert xr.grad[0, 0, :, :2].sum() == 0 and xr.grad[0, 0, 4].sum() == 0 and xr.grad[0, 0, 0, 2] == 1


def test_infogan_mnist_networks_are_the_references_at_width_64():
    """arch="infogan_mnist" at 32 px RGB: the reference MNIST layer sizes (openai/InfoGAN) with width 64."""
    from fairlatent.models.gan import InfoGANMNISTDiscriminator, InfoGANMNISTGenerator

    G = build_generator("infogan_mnist", size=32, latent_dim=74, width=64)
    D = build_discriminator("infogan_mnist", size=32, width=64, q_dim=14)
    assert isinstance(G, InfoGANMNISTGenerator) and isinstance(D, InfoGANMNISTDiscriminator)
    assert (G.fc1.in_features, G.fc1.out_features, G.fc2.out_features) == (74, 1024, 8 * 8 * 128)
    assert (G.up1.in_channels, G.up1.out_channels, G.up2.out_channels) == (128, 64, 3)
    assert [m.num_features for m in (G.bn1, G.bn2, G.bn3)] == [1024, 8 * 8 * 128, 64]
    assert (D.conv1.out_channels, D.conv2.out_channels, D.fc1.in_features, D.fc1.out_features) == (64, 128, 8192, 1024)
    assert [m.num_features for m in (D.bn2, D.bn3, D.q.bn)] == [128, 1024, 128]
    assert (D.fc.out_features, D.q.fc1.out_features, D.q.fc2.out_features) == (1, 128, 14)
    x = G.eval()(torch.randn(3, 74) * 10)
    assert x.shape == (3, 3, 32, 32) and x.abs().max() <= 1.0
    logits, q = D.eval()(x, with_q=True)
    assert logits.shape == (3,) and q.shape == (3, 14)


@pytest.mark.parametrize("size", SIZES)
def test_infogan_mnist_shapes_and_range(size):
    G = build_generator("infogan_mnist", size=size, latent_dim=7, width=4)
    D = build_discriminator("infogan_mnist", size=size, width=4)
    x = G(torch.randn(6, 7) * 10)  # training mode: batch statistics
    assert x.shape == (6, 3, size, size) and x.abs().max() <= 1.0
    assert D(x).shape == (6,) and D(x, groups=2).shape == (6,)
    assert G.eval()(torch.randn(1, 7)).shape == (1, 3, size, size)  # eval: one image alone


def test_infogan_mnist_discriminator_normalises_groups_apart():
    """D(cat[a, b], groups=2) in training is D(a) and D(b) called separately (each half's own batch-norm
    statistics, as the reference calls D on the real and the generated batch); one group mixes them. The
    running statistics see both halves in turn; in eval mode each image is scored alone."""
    torch.manual_seed(0)
    D = build_discriminator("infogan_mnist", size=32, width=4, q_dim=5)
    a, b = torch.randn(4, 3, 32, 32), torch.randn(4, 3, 32, 32) * 0.3 + 0.5
    two = copy.deepcopy(D)
    la, qa = two(a, with_q=True)
    lb, qb = two(b, with_q=True)
    grouped = copy.deepcopy(D)
    lg, qg = grouped(torch.cat([a, b]), with_q=True, groups=2)
    torch.testing.assert_close(lg, torch.cat([la, lb]))
    torch.testing.assert_close(qg, torch.cat([qa, qb]))
    for name, buf in two.named_buffers():
        torch.testing.assert_close(dict(grouped.named_buffers())[name], buf)
    w = torch.linspace(-1, 1, 8 * 6).reshape(8, 6)  # one loss over logits and Q: the same gradients
    (torch.cat([torch.cat([la, lb])[:, None], torch.cat([qa, qb])], 1) * w).sum().backward()
    (torch.cat([lg[:, None], qg], 1) * w).sum().backward()
    grads = dict(grouped.named_parameters())
    for name, p in two.named_parameters():
        torch.testing.assert_close(grads[name].grad, p.grad)
    mixed = copy.deepcopy(D)(torch.cat([a, b]))
    assert not torch.allclose(mixed, lg, atol=1e-3)
    grouped.eval()
    x = torch.cat([a, b])
    l_all, q_all = grouped(x, with_q=True)
    torch.testing.assert_close(grouped(x[2:3]), l_all[2:3])
    torch.testing.assert_close(grouped.predict_q(x[5:6]), q_all[5:6])
    with pytest.raises(ValueError, match="do not split into 2 equal batch-norm groups"):
        D(torch.randn(5, 3, 32, 32), groups=2)


def test_infogan_mnist_unsupported_settings_are_named():
    with pytest.raises(ValueError, match="image size divisible by 4"):
        build_generator("infogan_mnist", size=30, latent_dim=7, width=4)
    with pytest.raises(ValueError, match="image size divisible by 4"):
        build_discriminator("infogan_mnist", size=30, width=4)
    with pytest.raises(ValueError, match="pack=2 applies to the DCGAN discriminator only"):
        build_discriminator("infogan_mnist", size=32, width=4, pack=2)
    with pytest.raises(ValueError, match="spectral_norm applies to the DCGAN discriminator only"):
        build_discriminator("infogan_mnist", size=32, width=4, spectral_norm=True)
    with pytest.raises(ValueError, match="final_width=3 applies to the DCGAN generator only"):
        build_generator("infogan_mnist", size=32, latent_dim=7, width=4, final_width=3)
    with pytest.raises(ValueError, match="d_pack applies to the DCGAN discriminator only"):
        GANConfig(arch="infogan_mnist", d_pack=2)
    with pytest.raises(ValueError, match="WGAN-GP's per-sample gradient penalty"):
        GANConfig(arch="infogan_mnist", loss="wgan-gp")
    with pytest.raises(ValueError, match="d_spectral_norm applies to the DCGAN discriminator only"):
        GANConfig(arch="infogan_mnist", d_spectral_norm=True)
    with pytest.raises(ValueError, match="batch_size must be at least 2"):
        GANConfig(arch="infogan_mnist", batch_size=1)
    # the DCGAN-only minibatch-std default is ignored, as for the SN-ResNet pair
    assert GANConfig(arch="infogan_mnist", batch_size=6).d_minibatch_std == 4


def test_unsupported_size_and_arch():
    with pytest.raises(ValueError, match="48"):
        build_generator("dcgan", size=48, latent_dim=8, width=4)
    with pytest.raises(ValueError, match="stylegan"):
        build_discriminator("stylegan", size=32, width=4)


# --- losses: closed forms and cross-checks ---------------------------------------------------------


def test_losses_match_definitions():
    d_real, d_fake = torch.tensor([2.0, -0.5, 0.3]), torch.tensor([-1.5, 0.8, 1.2])
    ns = F.binary_cross_entropy_with_logits(d_real, torch.ones(3)) + F.binary_cross_entropy_with_logits(
        d_fake, torch.zeros(3)
    )
    torch.testing.assert_close(discriminator_loss("ns", d_real, d_fake), ns)
    # hinge by hand: relu(1 - [2, -.5, .3]) = [0, 1.5, .7] → .7333; relu(1 + [-1.5, .8, 1.2]) = [0, 1.8, 2.2] → 1.3333
    torch.testing.assert_close(discriminator_loss("hinge", d_real, d_fake), torch.tensor(0.7 / 3 + 1.5 / 3 + 4.0 / 3))
    torch.testing.assert_close(discriminator_loss("wgan-gp", d_real, d_fake), d_fake.mean() - d_real.mean())
    torch.testing.assert_close(generator_loss("ns", d_fake), F.binary_cross_entropy_with_logits(d_fake, torch.ones(3)))
    torch.testing.assert_close(generator_loss("hinge", d_fake), -d_fake.mean())


def test_gradient_penalty_closed_form():
    # D(x) = <w, x>: ∇D = w everywhere, so GP = (‖w‖ − 1)².
    w = torch.randn(1, 3, 4, 4)

    def D(x):
        return (x * w).flatten(1).sum(1)

    real, fake, alpha = torch.randn(5, 3, 4, 4), torch.randn(5, 3, 4, 4), torch.rand(5, 1, 1, 1)
    torch.testing.assert_close(gradient_penalty(D, real, fake, alpha), (w.norm() - 1) ** 2)


@pytest.mark.parametrize("loss", ["ns", "hinge", "wgan-gp"])
def test_discriminator_learns_to_separate(data32, loss):
    """With G frozen, D updates drive its loss down and score real images above generated ones."""
    cfg = GANConfig(**{**TINY, "width": 8}, loss=loss, lr_d=1e-3, seed=1)
    tr = GANTrainer(cfg, 32)
    from fairlatent.data import load_dataset

    batches = BatchSource(np.asarray(load_dataset(data32).images), 8, seed=1, flip=False, device=tr.device)
    z = torch.randn(8, cfg.latent_dim, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        fake = tr.G(z)
    real = batches(0)

    def d_loss():
        with torch.no_grad():
            out = tr.D(torch.cat([real, fake]))
        return float(discriminator_loss(loss, out[:8], out[8:])), float(out[:8].mean() - out[8:].mean())

    before, gap0 = d_loss()
    for _ in range(15):
        out = tr.D(torch.cat([real, fake]))
        ld = discriminator_loss(loss, out[:8], out[8:])
        tr.opt_d.zero_grad()
        ld.backward()
        tr.opt_d.step()
    after, gap1 = d_loss()
    assert after < before - 0.1
    assert gap1 > max(gap0, 0.0)


def test_generator_learns_to_fool_frozen_discriminator():
    cfg = GANConfig(**TINY, loss="ns", lr_g=2e-3, seed=2)
    tr = GANTrainer(cfg, 32)
    with torch.no_grad():  # a frozen D whose logits are not all ≈ 0 (DCGAN init is N(0, 0.02))
        tr.D.fc.weight.mul_(50.0)
    tr.D.requires_grad_(False)
    z = torch.randn(16, cfg.latent_dim, generator=torch.Generator().manual_seed(0))

    def g_loss():
        with torch.no_grad():
            return float(generator_loss("ns", tr.D(tr.G(z))))

    before = g_loss()
    for _ in range(30):
        lg = generator_loss("ns", tr.D(tr.G(z)))
        tr.opt_g.zero_grad()
        lg.backward()
        tr.opt_g.step()
    after = g_loss()
    assert after < before - 0.1


# --- data order ------------------------------------------------------------------------------------


def test_batch_source_is_a_permutation_per_epoch_and_pure():
    images = np.arange(10, dtype=np.uint8)[:, None, None, None].repeat(4, 1).repeat(4, 2).repeat(3, 3)
    src = BatchSource(images, 5, seed=3, flip=False, device=torch.device("cpu"), channels_last=False)
    ids = lambda x: ((x[:, 0, 0, 0] + 1) * 127.5).round().long().tolist()  # noqa: E731
    epoch0 = ids(src(0)) + ids(src(1))
    assert sorted(epoch0) == list(range(10))
    assert ids(src(3)) != ids(src(1)) or ids(src(2)) != ids(src(0))  # a new order next epoch
    again = BatchSource(images, 5, seed=3, flip=False, device=torch.device("cpu"), channels_last=False)
    assert ids(again(1)) == ids(src(1))  # batch b depends on (seed, b) only, not on history


def test_flip_mirrors_about_half():
    images = np.zeros((64, 4, 4, 3), np.uint8)
    images[:, :, 0] = 255  # a bright left column
    src = BatchSource(images, 64, seed=0, flip=True, device=torch.device("cpu"), channels_last=False)
    x = src(0)
    flipped = (x[:, 0, 0, -1] > 0).float().mean()
    assert 0.3 < flipped < 0.7
    assert torch.equal(x[x[:, 0, 0, -1] > 0], images_to_flipped(images, x[:, 0, 0, -1] > 0))


def images_to_flipped(images, mask):
    from fairlatent.utils.images import to_tensor

    return to_tensor(images)[mask].flip(3)


# --- the job: layout, resume, errors ---------------------------------------------------------------


def test_train_gan_layout_and_done_marker(data32, tmp_path):
    out = train_gan(data32, tmp_path / "run", GANConfig(**{**TINY, "sample_every": 2}, steps=3), progress=False)
    from fairlatent.utils.io import read_json

    rec = read_json(out / "config.json")
    assert rec["done"] is True and rec["step"] == 3 and rec["config"]["size"] == 32
    assert (out / "generator.safetensors").is_file()
    assert sorted(p.name for p in (out / "samples").iterdir()) == ["step_000002.png", "step_000003.png"]
    log = pd.read_csv(out / "log.csv")
    assert list(log.columns) == ["step", "epoch", "loss_d", "loss_g", "images_per_s", "elapsed_s"]
    assert log["step"].tolist() == [1, 2, 3] and np.isfinite(log[["loss_d", "loss_g"]].to_numpy()).all()
    # downstream weights are the EMA generator's, which differ from the raw generator's
    gen = load_tensors(out / "generator.safetensors")
    ck, _, state = load_checkpoint(out / "checkpoint")
    assert state["step"] == 3
    params = [k for k in gen if "running_" not in k and "num_batches" not in k]
    assert all(torch.equal(gen[k], ck["G_ema." + k[2:]]) for k in params)
    assert not all(torch.equal(gen[k], ck[k]) for k in params)


def test_ema_batchnorm_recalibration_matches_exact_statistics(data32):
    """After recalibration, each BN layer's running mean/var are the exact batch statistics of its input."""
    cfg = GANConfig(**TINY, seed=4)
    tr = GANTrainer(cfg, 32)
    with torch.no_grad():
        for p in tr.G_ema.parameters():
            p.add_(0.1 * torch.randn_like(p))
    tr.recalibrate_ema_batchnorm(n_batches=3)
    bn = tr.G_ema.bn0
    g = __import__("fairlatent.utils.seed", fromlist=["x"]).torch_generator(cfg.seed, "gan-bn-recalibration")
    z = torch.cat([torch.randn(cfg.batch_size, cfg.latent_dim, generator=g) for _ in range(3)])
    with torch.no_grad():
        h = tr.G_ema.fc(z).view(len(z), -1, 4, 4)
    # cumulative average of the three per-batch means (equal batch sizes → overall mean)
    torch.testing.assert_close(bn.running_mean, h.mean(dim=(0, 2, 3)), rtol=1e-4, atol=1e-5)
    assert not tr.G_ema.training and bn.momentum == 0.1


@pytest.mark.parametrize(
    "extra",
    [
        dict(arch="dcgan", loss="hinge"),
        dict(arch="resnet", loss="wgan-gp", n_critic=2, betas=(0.0, 0.9)),
        dict(arch="dcgan", loss="ns", width_d=6, d_spectral_norm=True, d_minibatch_std=4, augment="translation"),
        dict(arch="dcgan", loss="hinge", g_final_width=3, d_first_width=3),
        dict(arch="dcgan", loss="ns", d_pack=2, r1_gamma=1.0, r1_every=2),
        dict(arch="dcgan", loss="ns", d_minibatch_std=4, info_categorical=[3], info_continuous=2, info_learn_std=True),
        dict(arch="infogan_mnist", loss="ns", info_categorical=[3], info_continuous=2, augment="translation"),
        dict(arch="infogan_mnist", loss="ns", info_categorical=[3], info_continuous=2, precision="bf16",
             fused_optimizer=True),
    ],
    ids=["dcgan-hinge", "resnet-sn-wgangp", "dcgan-sn-translation", "dcgan-final-width", "dcgan-pack-r1",
         "infogan-codes", "infogan-mnist-arch", "infogan-mnist-bf16-fused"],
)
def test_resume_is_bitwise_identical(data32, tmp_path, monkeypatch, extra):
    cfg = GANConfig(**TINY, steps=5, ema_decay=0.9, **extra)
    full = train_gan(data32, tmp_path / "full", cfg, progress=False)

    # Interrupt a second run after step 3 (its last checkpoint is at step 2), then resume it.
    real_step = GANTrainer.train_step

    def crashing_step(self, step, reals, **kw):
        if step == 3:
            raise KeyboardInterrupt
        return real_step(self, step, reals, **kw)

    monkeypatch.setattr(GANTrainer, "train_step", crashing_step)
    with pytest.raises(KeyboardInterrupt):
        train_gan(data32, tmp_path / "resumed", cfg, progress=False)
    assert load_checkpoint(tmp_path / "resumed" / "checkpoint")[2]["step"] == 2
    assert not (tmp_path / "resumed" / "generator.safetensors").exists()
    monkeypatch.setattr(GANTrainer, "train_step", real_step)
    resumed = train_gan(data32, tmp_path / "resumed", cfg, progress=False)

    a, b = load_checkpoint(full / "checkpoint")[0], load_checkpoint(resumed / "checkpoint")[0]
    assert a.keys() == b.keys() and any(k.startswith("opt_d.") for k in a)
    for k in a:
        assert torch.equal(a[k], b[k]), k
    ga, gb = load_tensors(full / "generator.safetensors"), load_tensors(resumed / "generator.safetensors")
    assert all(torch.equal(ga[k], gb[k]) for k in ga)
    assert pd.read_csv(resumed / "log.csv")["step"].tolist() == [1, 2, 3, 4, 5]
    # the run actually trained: weights moved from their initial values
    init = GANTrainer(cfg, 32).tensors()
    g_first, q_first = ("G.fc1.weight", "D.q.fc1.weight") if cfg.arch == "infogan_mnist" else ("G.fc.weight", "D.q.net.0.weight")
    assert not torch.equal(init[g_first], a[g_first])
    if cfg.arch == "infogan_mnist":  # D's batch-norm statistics are part of the exact state
        assert not torch.equal(init["D.bn3.running_mean"], a["D.bn3.running_mean"])
    if cfg.info_categorical:  # InfoGAN: the Q head trained too, and its logged MI bound resumed exactly
        assert not torch.equal(init[q_first], a[q_first])
        la, lb = pd.read_csv(full / "log.csv"), pd.read_csv(resumed / "log.csv")
        assert (la["mi_cat"] <= math.log(3) + 1e-6).all()
        pd.testing.assert_frame_equal(la.drop(columns=["images_per_s", "elapsed_s"]),
                                      lb.drop(columns=["images_per_s", "elapsed_s"]))


def test_extending_a_finished_run_continues_it(data32, tmp_path):
    cfg = GANConfig(**TINY, steps=4)
    full = train_gan(data32, tmp_path / "full", cfg, progress=False)
    part = train_gan(data32, tmp_path / "part", cfg.model_copy(update={"steps": 2}), progress=False)
    train_gan(data32, part, cfg, progress=False)
    a, b = load_tensors(full / "generator.safetensors"), load_tensors(part / "generator.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_run_record_of_an_unfinished_run_names_the_step_it_resumed_from(data32, tmp_path):
    """config.json of a run under way says from which step this session started (an int, not whether it resumed)."""
    from fairlatent.utils.io import read_json

    cfg = GANConfig(**TINY, steps=4)
    out = train_gan(data32, tmp_path / "r", cfg, progress=False, stop_at_step=2)
    rec = read_json(out / "config.json")
    assert (type(rec["step"]), rec["step"], rec["done"]) == (int, 0, False)
    train_gan(data32, out, cfg, progress=False, stop_at_step=3)
    rec = read_json(out / "config.json")
    assert (type(rec["step"]), rec["step"], rec["done"]) == (int, 2, False)
    train_gan(data32, out, cfg, progress=False)
    assert (read_json(out / "config.json")["step"], read_json(out / "config.json")["done"]) == (4, True)


def test_checkpoint_older_than_new_settings_still_resumes(data32, tmp_path):
    """A run written before width_d/d_spectral_norm/d_minibatch_std/augment existed (its saved configs lack
    them) resumes with their legacy values, and is refused with another value for one of them."""
    import json

    cfg = GANConfig(**TINY, steps=4, d_minibatch_std=0)  # the settings' legacy values
    full = train_gan(data32, tmp_path / "full", cfg, progress=False)
    old = train_gan(data32, tmp_path / "old", cfg.model_copy(update={"steps": 2}), progress=False)
    new_keys = ("width_d", "g_final_width", "d_first_width", "d_pack", "r1_gamma", "r1_every", "d_spectral_norm",
                "d_minibatch_std", "augment", "precision", "fused_optimizer")  # fmt: skip
    for f in (old / "config.json", old / "checkpoint" / "config.json"):
        rec = json.loads(f.read_text())
        cfg_dict = rec["config"] if "config" in rec else rec
        for k in new_keys:
            del cfg_dict[k]
        f.write_text(json.dumps(rec))
    assert train_gan(data32, old, cfg.model_copy(update={"steps": 2}), progress=False) == old  # finished, as is
    with pytest.raises(FairlatentError, match="augment='none'.*augment='translation'"):
        train_gan(data32, old, cfg.model_copy(update={"augment": "translation"}), progress=False)
    with pytest.raises(FairlatentError, match="d_minibatch_std=0.*d_minibatch_std=4"):
        train_gan(data32, old, cfg.model_copy(update={"d_minibatch_std": 4}), progress=False)
    with pytest.raises(FairlatentError, match="g_final_width=0.*g_final_width=4"):
        train_gan(data32, old, cfg.model_copy(update={"g_final_width": 4}), progress=False)
    with pytest.raises(FairlatentError, match="precision='fp32'.*precision='bf16'"):
        train_gan(data32, old, cfg.model_copy(update={"precision": "bf16"}), progress=False)
    train_gan(data32, old, cfg, progress=False)
    a, b = load_tensors(full / "generator.safetensors"), load_tensors(old / "generator.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_bf16_precision_runs_the_step_under_cpu_autocast_and_keeps_float32_state(data32, tmp_path, monkeypatch):
    """``precision="bf16"``: every training step runs under bf16 autocast on CPU (the engine enters it), the
    losses are float32, the weights and optimiser state stay float32, and the result differs from the float32
    run's; the default runs without autocast. ``fused_optimizer`` builds fused Adams."""
    seen: list[tuple[str, bool, torch.dtype]] = []
    real_step = GANTrainer.train_step

    def recording_step(self, step, reals, **kw):
        out = real_step(self, step, reals, **kw)
        seen.append((self.config.precision, torch.is_autocast_enabled("cpu"), out[0].dtype))
        return out

    monkeypatch.setattr(GANTrainer, "train_step", recording_step)
    base = dict(TINY, steps=3, arch="infogan_mnist", loss="ns", info_categorical=[3], info_continuous=1)
    fp32 = train_gan(data32, tmp_path / "fp32", GANConfig(**base), progress=False)
    bf16 = train_gan(data32, tmp_path / "bf16", GANConfig(**base, precision="bf16", fused_optimizer=True),
                     progress=False)  # fmt: skip
    assert seen == [("fp32", False, torch.float32)] * 3 + [("bf16", True, torch.float32)] * 3
    a, b = load_checkpoint(fp32 / "checkpoint")[0], load_checkpoint(bf16 / "checkpoint")[0]
    assert a.keys() == b.keys()
    assert all(t.dtype == a[k].dtype for k, t in b.items())  # float32 weights and Adam moments in both
    assert b["G.fc1.weight"].dtype == torch.float32 and not torch.equal(a["G.fc1.weight"], b["G.fc1.weight"])
    assert np.isfinite(pd.read_csv(bf16 / "log.csv")[["loss_d", "loss_g", "mi_cat"]].to_numpy()).all()
    tr = GANTrainer(GANConfig(**base, fused_optimizer=True), 32)
    assert tr.opt_g.param_groups[0]["fused"] and tr.opt_d.param_groups[0]["fused"]
    assert not GANTrainer(GANConfig(**base), 32).opt_g.param_groups[0]["fused"]


def test_precision_settings_are_validated_and_keyed():
    with pytest.raises(ValueError, match="precision='bf16' is for the hinge and ns losses without R1"):
        GANConfig(loss="wgan-gp", precision="bf16")
    with pytest.raises(ValueError, match="precision='bf16' is for the hinge and ns losses without R1"):
        GANConfig(loss="ns", r1_gamma=1.0, precision="bf16")
    with pytest.raises(ValueError, match="precision"):
        GANConfig(precision="fp16")
    # at their defaults the settings are in no cache key (cached GANs predate them); set, they are
    assert "precision" not in GANConfig().cache_key() and "fused_optimizer" not in GANConfig().cache_key()
    assert GANConfig(precision="bf16").cache_key()["precision"] == "bf16"
    assert GANConfig(fused_optimizer=True).cache_key()["fused_optimizer"] is True


def test_final_width_run_loads_as_the_trained_generator(data32, tmp_path):
    """The saved run records g_final_width, so load_generator rebuilds the same network: its images equal
    the EMA generator's (after the final batch-norm recalibration) on the same latents."""
    from fairlatent.models.generator import load_generator

    cfg = GANConfig(**TINY, steps=2, g_final_width=3)
    out = train_gan(data32, tmp_path / "run", cfg, progress=False)
    handle = load_generator(out)
    G = build_generator("dcgan", size=32, latent_dim=16, width=4, final_width=3)
    load_module_state(G, load_tensors(out / "generator.safetensors"), "G", source=out)
    z = torch.randn(5, 16)
    with torch.no_grad():
        expected = G.eval()(z)
    with torch.no_grad():
        torch.testing.assert_close(handle.module(z.contiguous()), expected)


@pytest.mark.parametrize("codes", [{}, dict(info_categorical=[3], info_continuous=2)], ids=["plain", "infogan"])
def test_infogan_mnist_run_loads_as_the_trained_generator(data32, tmp_path, codes):
    """load_generator rebuilds an infogan_mnist run (plain, or with InfoGAN codes through load_infogan) from its
    config.json: the same images as the saved EMA generator on the same latents, and image by image."""
    from fairlatent.models.generator import load_generator

    cfg = GANConfig(**TINY, steps=2, arch="infogan_mnist", loss="ns", **codes)
    out = train_gan(data32, tmp_path / "run", cfg, progress=False)
    handle = load_generator(out)
    dim = 16 + 3 + 2 if codes else 16
    assert handle.latent_dim == dim
    G = build_generator("infogan_mnist", size=32, latent_dim=dim, width=4)
    load_module_state(G, load_tensors(out / "generator.safetensors"), "G", source=out)
    z = handle.sample_latents(6, seed=3)
    with torch.no_grad():
        expected = G.eval()(torch.from_numpy(z))
    with torch.no_grad():
        torch.testing.assert_close(handle.module(torch.from_numpy(z)), expected)
    images = handle.decode(z)
    assert images.shape == (6, 32, 32, 3)
    assert np.array_equal(load_generator(out).decode(z), images)  # loaded again: the very same images
    assert np.array_equal(handle.decode(z[::-1])[::-1], images)  # eval mode: each image from its own latent


def test_truncated_checkpoint_is_named(data32, tmp_path):
    out = train_gan(data32, tmp_path / "run", GANConfig(**TINY, steps=2), progress=False)
    f = out / "checkpoint" / "tensors.safetensors"
    f.write_bytes(f.read_bytes()[:-100])
    with pytest.raises(FairlatentError, match="tensors.safetensors: truncated"):
        train_gan(data32, out, GANConfig(**TINY, steps=4), progress=False)
    g = out / "generator.safetensors"
    g.write_bytes(g.read_bytes()[: g.stat().st_size // 2])
    with pytest.raises(FairlatentError, match="generator.safetensors: unreadable or truncated"):
        load_tensors(g)


def test_checkpoint_of_another_architecture_is_rejected(data32, tmp_path):
    out = train_gan(data32, tmp_path / "run", GANConfig(**TINY, steps=2), progress=False)
    with pytest.raises(FairlatentError, match="width=4 but the configuration has width=8"):
        train_gan(data32, out, GANConfig(**{**TINY, "width": 8}, steps=4), progress=False)
    with pytest.raises(FairlatentError, match="arch='dcgan' but the configuration has arch='resnet'"):
        train_gan(data32, out, GANConfig(**TINY, steps=4, arch="resnet"), progress=False)
    # weights loaded into a different network directly: the mismatching tensors are named
    tensors = load_tensors(out / "generator.safetensors")
    with pytest.raises(FairlatentError, match=r"another architecture\?.*G\.fc\.weight: file \(256, 16\) vs model"):
        load_module_state(build_generator("dcgan", size=32, latent_dim=16, width=8), tensors, "G", source="x")
    with pytest.raises(FairlatentError, match=r"missing G\.fc\.bias, G\.blocks\.0.*unexpected G\.bn0"):
        load_module_state(build_generator("resnet", size=32, latent_dim=16, width=4), tensors, "G", source="x")


def test_wrong_image_size_is_named(data32, tmp_path):
    with pytest.raises(FairlatentError, match="images are 32×32 but the GAN config has size=64"):
        train_gan(data32, tmp_path / "run", GANConfig(**TINY, steps=1, size=64), progress=False)
    images, table = synthetic_faces(10, 24)
    odd = write_dataset(tmp_path / "odd", images, table, {"source": "test"})
    with pytest.raises(FairlatentError, match="image size 24 is not supported"):
        train_gan(odd, tmp_path / "run2", GANConfig(**TINY, steps=1), progress=False)
    with pytest.raises(FairlatentError, match="batch_size 64 exceeds the 40 training images"):
        train_gan(data32, tmp_path / "run3", GANConfig(**{**TINY, "batch_size": 64}, steps=1), progress=False)


def test_no_resume_starts_afresh(data32, tmp_path):
    cfg = GANConfig(**TINY, steps=2)
    out = train_gan(data32, tmp_path / "run", cfg, progress=False)
    first = load_tensors(out / "generator.safetensors")
    # a different config in the same folder is fine without resume, and overwrites everything
    train_gan(data32, out, cfg.model_copy(update={"seed": 9}), resume=False, progress=False)
    second = load_tensors(out / "generator.safetensors")
    assert not torch.equal(first["G.fc.weight"], second["G.fc.weight"])
    assert load_checkpoint(out / "checkpoint")[1]["seed"] == 9


def test_cli_train_gan(data32, tmp_path):
    from typer.testing import CliRunner

    from fairlatent.cli import app, main
    from fairlatent.utils.io import read_json

    out = tmp_path / "cli-run"
    args = ["train-gan", "--data", str(data32), "--out", str(out), "--steps", "2", "--batch-size", "8",
            "--width", "4", "--latent-dim", "16", "--no-ema", "--quiet"]  # fmt: skip
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    rec = read_json(out / "config.json")
    assert rec["done"] and rec["generator"] == "plain" and rec["config"]["latent_dim"] == 16
    with pytest.raises(SystemExit) as exc:
        main(args[:4] + ["--out", str(tmp_path / "x"), "--loss", "wasserstein", "--quiet"])
    assert exc.value.code == 2
    with pytest.raises(SystemExit) as exc:
        main(args[:4] + ["--out", str(tmp_path / "y"), "--size", "64", "--quiet"])
    assert exc.value.code == 2
