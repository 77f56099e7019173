"""CycleGAN translator (issue 15, cyclegan_augment): networks, loss pieces, the history pool, the training job
(layout, epochs over unequal groups, bitwise resume, reuse), a planted-signal run and bad input."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from fairlatent.data import write_dataset
from fairlatent.errors import FairlatentError
from fairlatent.models.cyclegan import (
    PatchDiscriminator,
    ResidualBlock,
    ResnetTranslator,
    patch_layers,
    patch_receptive_field,
)
from fairlatent.train.checkpoint import load_checkpoint, load_tensors
from fairlatent.train.cyclegan import (
    CycleGANConfig,
    CycleGANTrainer,
    ImagePool,
    gan_loss,
    load_translator,
    lr_factor,
    train_translator,
    translate_dataset,
)
from fairlatent.utils.io import read_json
from fairlatent.utils.seed import torch_generator

TINY = dict(width=4, n_blocks=1, log_every=1, checkpoint_every=2, sample_every=1000)
MAGENTA = (255, 0, 255)


def toy(n: int = 24, size: int = 16, seed: int = 0, n1: int | None = None):
    """Blocky two-colour patterns; group 1 (``sq`` = 1) carries a magenta bar at the top centre.

    Returns (images, table, base, planted): ``planted[i]`` is ``base[i]`` with the bar, the true group-1
    counterpart of every image. The bar is centred so a left-right flip keeps it where it is, and the
    palette is fixed because instance norm makes the translator blind to a global colour offset.
    """
    r = np.random.default_rng(seed)
    bits = r.random((n, 4, 4)) < 0.5
    mask = bits.repeat(size // 4, 1).repeat(size // 4, 2)
    base = np.where(mask[..., None], np.array([230, 200, 40], np.uint8), np.array([30, 60, 160], np.uint8))
    base = base.astype(np.uint8)
    planted = base.copy()
    planted[:, : 3 * size // 8, size // 4 : 3 * size // 4] = MAGENTA
    group = (np.arange(n) % 2).astype(int) if n1 is None else (np.arange(n) < n1).astype(int)
    images = np.where(group[:, None, None, None] == 1, planted, base)
    table = pd.DataFrame({"id": [f"i{i}" for i in range(n)], "split": "train", "sq": group,
                          "t1": r.integers(0, 2, n), "t2": r.integers(0, 2, n)})  # fmt: skip
    return images, table, base, planted


@pytest.fixture(scope="module")
def data16(tmp_path_factory):
    images, table, _, _ = toy()
    return write_dataset(tmp_path_factory.mktemp("d") / "toy16", images, table, {"source": "test"})


# --- networks -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [16, 32, 64])
def test_shapes_and_structure(size):
    G = ResnetTranslator(size, width=4, n_blocks=3).eval()
    x = torch.randn(2, 3, size, size) * 5
    y = G(x)
    assert y.shape == x.shape and y.abs().max() <= 1.0
    assert sum(isinstance(m, ResidualBlock) for m in G.modules()) == 3
    convs = [m for m in G.modules() if isinstance(m, nn.Conv2d)]
    assert [m.kernel_size for m in (convs[0], convs[-1])] == [(7, 7), (7, 7)]
    assert sum(m.stride == (2, 2) for m in convs) == 2  # two downsamplings
    assert sum(isinstance(m, nn.ConvTranspose2d) for m in G.modules()) == 2  # two upsamplings
    assert sum(isinstance(m, nn.ReflectionPad2d) for m in G.modules()) == 2 + 2 * 3
    D = PatchDiscriminator(size, width=4)
    n = D.n_layers
    assert D(x).shape == (2, 1, size // 2**n - 2, size // 2**n - 2)
    assert sum(m.stride == (2, 2) for m in D.modules() if isinstance(m, nn.Conv2d)) == n


def test_patch_depth_follows_the_image_size():
    """70 px for 3 layers (the paper's PatchGAN); depth scaled so the patch stays ≤ 30 % of the side."""
    assert [patch_receptive_field(n) for n in (1, 2, 3)] == [16, 34, 70]
    assert {s: patch_layers(s) for s in (16, 32, 64, 128, 256)} == {16: 1, 32: 1, 64: 1, 128: 2, 256: 3}
    # the receptive field is real: an interior logit depends on exactly a 34×34 patch (n_layers = 2; the
    # instance norms, which mix in statistics of the whole map, replaced by identities for the check)
    D = PatchDiscriminator(64, width=2, n_layers=2)
    D.body = nn.Sequential(*[nn.Identity() if isinstance(m, nn.InstanceNorm2d) else m for m in D.body])
    x = torch.randn(1, 3, 64, 64, requires_grad=True)
    D(x)[0, 0, 7, 7].backward()
    seen = x.grad.abs().sum((0, 1)) > 0
    rows, cols = np.flatnonzero(seen.any(1).numpy()), np.flatnonzero(seen.any(0).numpy())
    assert len(rows) == len(cols) == 34 == D.receptive_field
    assert rows[-1] - rows[0] == 33 and seen[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1].all()
    with pytest.raises(ValueError, match="multiple of 4"):
        ResnetTranslator(30)
    with pytest.raises(ValueError, match="does not fit 16-px"):
        PatchDiscriminator(16, n_layers=3)


def test_translator_is_blind_to_a_global_colour_offset():
    """Instance norm right after the first (linear) conv removes each channel's image mean, so G(x + c) = G(x)
    for a constant colour c: the reference architecture cannot keep an image's overall tint from its input."""
    G = ResnetTranslator(16, width=4, n_blocks=1).eval()
    x = torch.rand(2, 3, 16, 16) - 0.7
    c = torch.tensor([0.3, -0.2, 0.1])[None, :, None, None]
    torch.testing.assert_close(G(x + c), G(x), atol=2e-5, rtol=0)
    assert not torch.allclose(G(x), G(x.flip(2)), atol=1e-3)  # it does see structure


# --- loss pieces and schedule -------------------------------------------------------------------------


def test_gan_losses_closed_form():
    x = torch.full((2, 1, 3, 3), 0.3)
    assert gan_loss("lsgan", x, True).item() == pytest.approx(0.49)
    assert gan_loss("lsgan", x, False).item() == pytest.approx(0.09)
    assert gan_loss("vanilla", x, True).item() == pytest.approx(np.log1p(np.exp(-0.3)))
    assert gan_loss("vanilla", x, False).item() == pytest.approx(np.log1p(np.exp(0.3)))


class _Shift(nn.Module):
    def __init__(self, d: float):
        super().__init__()
        self.d = d

    def forward(self, x):
        return x + self.d


class _Const(nn.Module):
    def __init__(self, v: float):
        super().__init__()
        self.v = v

    def forward(self, x):
        return torch.full((len(x), 1, 2, 2), self.v)


def test_cycle_and_identity_weights_closed_form():
    """With G(x) = x + 0.1, F(x) = x − 0.3 and constant discriminators every term is known:
    cycle₀ = λ₀·|F(G(a)) − a| = 0.2 λ₀, identity₁ = λ_id·λ₁·|G(b) − b| = 0.1 λ_id λ₁, …"""
    cfg = CycleGANConfig(**TINY, lambda_cycle_0=3.0, lambda_cycle_1=7.0, lambda_identity=0.5)
    tr = CycleGANTrainer(cfg, 16, total_steps=10)
    tr.G_01, tr.G_10, tr.D_1, tr.D_0 = _Shift(0.1), _Shift(-0.3), _Const(0.25), _Const(-0.5)
    a, b = torch.zeros(2, 3, 16, 16), torch.zeros(2, 3, 16, 16) + 0.4
    terms, fake_b, fake_a = tr.generator_losses(a, b)
    got = {k: v.item() for k, v in terms.items()}
    expected = {"g_01": 0.75**2, "g_10": 1.5**2, "cycle_0": 3.0 * 0.2, "cycle_1": 7.0 * 0.2,
                "idt_1": 0.5 * 7.0 * 0.1, "idt_0": 0.5 * 3.0 * 0.3}  # fmt: skip
    assert got == pytest.approx(expected)
    torch.testing.assert_close(fake_b, a + 0.1)
    torch.testing.assert_close(fake_a, b - 0.3)
    # D: ½ [(D(real) − 1)² + D(fake)²]
    assert tr.discriminator_loss(_Const(0.8), b, fake_b).item() == pytest.approx(0.5 * (0.2**2 + 0.8**2))
    no_idt = CycleGANTrainer(cfg.model_copy(update={"lambda_identity": 0.0}), 16, total_steps=10)
    no_idt.G_01, no_idt.G_10, no_idt.D_1, no_idt.D_0 = tr.G_01, tr.G_10, tr.D_1, tr.D_0
    assert no_idt.generator_losses(a, b)[0]["idt_0"].item() == 0.0


def test_learning_rate_decays_linearly_over_the_second_half():
    f = [lr_factor(s, 10, 0.5) for s in range(10)]
    assert f[:5] == [1.0] * 5
    assert f[5:] == pytest.approx([5 / 6, 4 / 6, 3 / 6, 2 / 6, 1 / 6])
    assert lr_factor(10, 10, 0.5) == 0.0  # the rate after the last step
    tr = CycleGANTrainer(CycleGANConfig(**TINY), 16, total_steps=10)
    tr.set_lr(7)
    lrs = [g["lr"] for o in tr.optimizers().values() for g in o.param_groups]
    assert len(lrs) == 2 and lrs == pytest.approx([2e-4 * 3 / 6] * 2)


# --- the history pool ---------------------------------------------------------------------------------


def _img(v: float) -> torch.Tensor:
    return torch.full((1, 3, 2, 2), float(v))


def test_pool_fills_then_returns_stored_images_half_the_time():
    pool = ImagePool(5)
    for v in range(5):  # filling: every query image comes back and is stored
        assert torch.equal(pool.query(_img(v), torch_generator(0, "t", v)), _img(v))
    assert sorted(float(x[0, 0, 0]) for x in pool.images) == [0, 1, 2, 3, 4]
    swapped = 0
    n = 2000
    for v in range(5, 5 + n):
        before = {float(x[0, 0, 0]) for x in pool.images}
        out = float(pool.query(_img(v), torch_generator(0, "t", v))[0, 0, 0, 0])
        after = {float(x[0, 0, 0]) for x in pool.images}
        if out != v:  # a stored image came back, and the query took its place
            swapped += 1
            assert out in before and out not in after and v in after
        else:
            assert after == before
        assert len(pool.images) == 5
    assert 0.45 < swapped / n < 0.55


def test_pool_is_a_function_of_its_seeds_and_state():
    def run(pool, lo, hi):
        return [float(pool.query(_img(v), torch_generator(1, "p", v))[0, 0, 0, 0]) for v in range(lo, hi)]

    a, b = ImagePool(3), ImagePool(3)
    assert run(a, 0, 40) == run(b, 0, 40)
    c = ImagePool(3)
    c.load_state(a.state((3, 2, 2)))  # what a checkpoint restores
    assert run(a, 40, 80) == run(c, 40, 80)
    other = ImagePool(3)
    assert [float(other.query(_img(v), torch_generator(2, "p", v))[0, 0, 0, 0]) for v in range(40)] != run(ImagePool(3), 0, 40)
    assert torch.equal(ImagePool(0).query(_img(7), torch_generator(0)), _img(7))
    assert ImagePool(3).state((3, 2, 2)).shape == (0, 3, 2, 2)


# --- the training job ---------------------------------------------------------------------------------


def test_layout_epochs_over_unequal_groups_and_translate_dataset(tmp_path):
    """Groups of 10 and 6 at batch 2: an epoch is a pass over the larger group (5 steps)."""
    images, table, _, _ = toy(n=16, n1=6)
    data = write_dataset(tmp_path / "d", images, table, {"source": "test"})
    cfg = CycleGANConfig(**{**TINY, "sample_every": 5}, batch_size=2, epochs=2, pool_size=3)
    out = train_translator(data, "sq", tmp_path / "run", cfg, progress=False)
    rec = read_json(out / "translator.json")
    assert rec["done"] and rec["step"] == rec["total_steps"] == 10 and rec["steps_per_epoch"] == 5
    assert (rec["protected"], rec["n_train_0"], rec["n_train_1"], rec["size"]) == ("sq", 10, 6, 16)
    assert re.fullmatch(r"[0-9a-f]{16}", rec["data_fingerprint"])
    log = pd.read_csv(out / "log.csv")
    assert log["step"].tolist() == list(range(1, 11)) and log["epoch"].iloc[-1] == 2.0
    assert {"loss_d1", "loss_d0", "loss_g_01", "loss_g_10", "loss_cycle_0", "loss_cycle_1", "loss_idt_1",
            "loss_idt_0"} <= set(log.columns) and np.isfinite(log.filter(like="loss").to_numpy()).all()
    assert sorted(p.name for p in (out / "samples").iterdir()) == ["step_000005.png", "step_000010.png"]
    assert set(load_tensors(out / "translator.safetensors")) == {k for k in load_checkpoint(out / "checkpoint")[0]
                                                                 if k.startswith(("G_01.", "G_10."))}
    # the pools were filled (pool_size 3 < 10 steps × 2 images) and are part of the checkpoint
    assert load_checkpoint(out / "checkpoint")[0]["pool_1.images"].shape == (3, 3, 16, 16)

    tr = load_translator(out)
    assert tr.protected == "sq" and tr.config == cfg and tr.size == 16
    trans, target = translate_dataset(tr, data, batch_size=3)
    assert trans.shape == images.shape and trans.dtype == np.uint8
    assert target.tolist() == (1 - table["sq"]).tolist()
    g0 = table["sq"].to_numpy() == 0
    assert np.array_equal(trans[g0], tr.translate(images[g0], 1))  # batch size does not matter (instance norm)
    assert np.array_equal(trans[~g0], tr.translate(images[~g0], 0, batch_size=1))
    assert not np.array_equal(tr.translate(images[:2], 1), tr.translate(images[:2], 0))


def test_resume_is_bitwise_identical(data16, tmp_path, monkeypatch):
    cfg = CycleGANConfig(**TINY, steps=6, batch_size=2, pool_size=3)
    full = train_translator(data16, "sq", tmp_path / "full", cfg, progress=False)

    real_step = CycleGANTrainer.train_step

    def crashing_step(self, step, a, b):
        if step == 3:
            raise KeyboardInterrupt
        return real_step(self, step, a, b)

    monkeypatch.setattr(CycleGANTrainer, "train_step", crashing_step)
    with pytest.raises(KeyboardInterrupt):
        train_translator(data16, "sq", tmp_path / "resumed", cfg, progress=False)
    assert load_checkpoint(tmp_path / "resumed" / "checkpoint")[2]["step"] == 2
    assert not (tmp_path / "resumed" / "translator.safetensors").exists()
    assert read_json(tmp_path / "resumed" / "translator.json")["done"] is False
    monkeypatch.setattr(CycleGANTrainer, "train_step", real_step)
    resumed = train_translator(data16, "sq", tmp_path / "resumed", cfg, progress=False)

    a, b = load_checkpoint(full / "checkpoint")[0], load_checkpoint(resumed / "checkpoint")[0]
    assert a.keys() == b.keys() and {"opt_d.0.exp_avg", "pool_0.images", "D_1.body.0.weight"} <= set(a)
    for k in a:
        assert torch.equal(a[k], b[k]), k
    ga, gb = load_tensors(full / "translator.safetensors"), load_tensors(resumed / "translator.safetensors")
    assert ga.keys() == gb.keys() and all(torch.equal(ga[k], gb[k]) for k in ga)
    assert pd.read_csv(resumed / "log.csv")["step"].tolist() == [1, 2, 3, 4, 5, 6]
    init = CycleGANTrainer(cfg, 16, total_steps=6).G_01.state_dict()
    assert not torch.equal(init["body.1.weight"], ga["G_01.body.1.weight"])  # it trained


def test_a_finished_translator_is_reused_and_another_setting_is_refused(data16, tmp_path):
    """One translator per (data, protected, seed): asking again returns it untouched (whatever target the
    caller has in mind: none is recorded); another length or seed in the same folder names the setting."""
    cfg = CycleGANConfig(**TINY, steps=2)
    out = train_translator(data16, "sq", tmp_path / "run", cfg, progress=False)
    w = out / "translator.safetensors"
    stamp = w.stat().st_mtime_ns
    assert train_translator(data16, "sq", out, cfg.model_copy(update={"log_every": 7}), progress=False) == out
    assert w.stat().st_mtime_ns == stamp
    assert "t1" not in json.dumps(read_json(out / "translator.json"))
    with pytest.raises(FairlatentError, match="total_steps=2 but the configuration has total_steps=4"):
        train_translator(data16, "sq", out, cfg.model_copy(update={"steps": 4}), progress=False)
    with pytest.raises(FairlatentError, match="seed=0 but the configuration has seed=3"):
        train_translator(data16, "sq", out, cfg.model_copy(update={"seed": 3}), progress=False)
    with pytest.raises(FairlatentError, match="protected='sq' but the configuration has protected='t1'"):
        train_translator(data16, "t1", out, cfg, progress=False)
    assert w.stat().st_mtime_ns == stamp
    train_translator(data16, "sq", out, cfg.model_copy(update={"seed": 3}), resume=False, progress=False)
    assert read_json(out / "translator.json")["config"]["seed"] == 3


def test_a_folder_of_another_run_is_refused_untouched(data16, tmp_path):
    from fairlatent.train.gan import GANConfig, train_gan

    images, table, _, _ = toy(n=16, size=32)
    d32 = write_dataset(tmp_path / "d32", images, table, {"source": "test"})
    gan = train_gan(d32, tmp_path / "gan", GANConfig(width=4, batch_size=8, latent_dim=8, steps=1), progress=False)
    before = sorted(p.relative_to(gan) for p in gan.rglob("*"))
    for resume in (True, False):
        with pytest.raises(FairlatentError, match="holds another fairlatent run .*config.json"):
            train_translator(d32, "sq", gan, CycleGANConfig(**TINY, steps=1), resume=resume, progress=False)
    assert sorted(p.relative_to(gan) for p in gan.rglob("*")) == before


def test_planted_signal_is_learned(tmp_path):
    """Group 1 = group 0 plus a magenta bar. A short run makes G(group-0 image) much closer to the image's
    true group-1 counterpart than the image itself is (the identity mapping), and F removes the bar."""
    images, table, base, planted = toy(n=48)
    data = write_dataset(tmp_path / "d", images, table, {"source": "test"})
    cfg = CycleGANConfig(width=16, n_blocks=0, lr=3e-3, steps=200, checkpoint_every=1000, log_every=50)
    tr = load_translator(train_translator(data, "sq", tmp_path / "run", cfg, progress=False))
    g0 = table["sq"].to_numpy() == 0

    def l1(x, y):
        return float(np.abs(x.astype(float) - y.astype(float)).mean() / 127.5)

    identity = l1(base[g0], planted[g0])
    assert l1(tr.translate(base[g0], 1), planted[g0]) < 0.6 * identity
    assert l1(tr.translate(planted[~g0], 0), base[~g0]) < 0.8 * identity


# --- bad input ----------------------------------------------------------------------------------------


def _cli_args(data, out, *extra):
    return ["train-translator", "--data", data, "--out", out, "--steps", "2", "--set", "width=4",
            "--set", "n_blocks=1", "--quiet", *extra]  # fmt: skip


def test_cli_trains_and_names_bad_input(cli, data16, tmp_path):
    res = cli([*_cli_args(data16, tmp_path / "ok", "--protected", "sq", "--seed", "1")])
    assert res.code == 0, res
    rec = read_json(tmp_path / "ok" / "translator.json")
    assert rec["done"] and rec["config"]["seed"] == 1 and rec["config"]["width"] == 4

    cli.user_error(_cli_args(data16, tmp_path / "x1", "--protected", "Smiling"), "no attribute 'Smiling'", "sq")

    images, table, _, _ = toy(n=12)
    single = table.assign(split=np.where(table["sq"] == 0, "val", "train"))  # group 0 only outside train
    d1 = write_dataset(tmp_path / "single", images, single, {"source": "test"})
    cli.user_error(_cli_args(d1, tmp_path / "x2", "--protected", "sq"), "protected attribute 'sq'",
                   "single value 1 in the train split", "sq=0: no train images, 6 in other splits")
    const = table.assign(sq=1)
    d2 = write_dataset(tmp_path / "const", images, const, {"source": "test"})
    cli.user_error(_cli_args(d2, tmp_path / "x3", "--protected", "sq"), "sq=0: no train images, none in the whole data set")
    few = table.assign(sq=(np.arange(12) < 2).astype(int))  # group 1 has 2 train images
    d3 = write_dataset(tmp_path / "few", images, few, {"source": "test"})
    cli.user_error(_cli_args(d3, tmp_path / "x4", "--protected", "sq", "--set", "batch_size=4"),
                   "batch_size 4 exceeds the 2 train images of group sq=1")
    cli.user_error(_cli_args(data16, tmp_path / "x5", "--protected", "sq", "--set", "epochs=1"),
                   "steps (2) or epochs (1), not both")
    cli.user_error(_cli_args(data16, tmp_path / "x6", "--protected", "sq", "--set", "pool_siz=3"),
                   "pool_siz: unknown key")
    odd, t_odd, _, _ = toy(n=8, size=20)
    d4 = write_dataset(tmp_path / "odd", odd[:, :18, :18].copy(), t_odd, {"source": "test"})
    cli.user_error(_cli_args(d4, tmp_path / "x7", "--protected", "sq"), "image size 18", "multiple of 4")


def test_loading_and_translating_bad_input(data16, tmp_path):
    out = train_translator(data16, "sq", tmp_path / "run", CycleGANConfig(**TINY, steps=2), progress=False)
    tr = load_translator(out)
    with pytest.raises(FairlatentError, match=r"uint8 N×16×16×3 images, got uint8 \(2, 32, 32, 3\)"):
        tr.translate(np.zeros((2, 32, 32, 3), np.uint8), 1)
    with pytest.raises(FairlatentError, match="to_group must be 0 or 1, got 2"):
        tr.translate(np.zeros((2, 16, 16, 3), np.uint8), 2)
    images, table, _, _ = toy(n=8, size=32)
    big = write_dataset(tmp_path / "big", images, table, {"source": "test"})
    with pytest.raises(FairlatentError, match="images are 32 px but the translator .* 16-px"):
        translate_dataset(tr, big)
    small, small_table, _, _ = toy(n=8)
    nosq = write_dataset(tmp_path / "nosq", small, small_table.drop(columns="sq"), {"source": "test"})
    with pytest.raises(FairlatentError, match="no attribute 'sq'"):
        translate_dataset(tr, nosq)
    part = train_translator(data16, "sq", tmp_path / "part", CycleGANConfig(**TINY, steps=4), progress=False,
                            stop_at_step=2)  # fmt: skip
    with pytest.raises(FairlatentError, match="not finished \\(step 2\\)"):
        load_translator(part)
    with pytest.raises(FairlatentError, match="no translator.json"):
        load_translator(data16)


def test_data_parallel_launch_is_refused(data16, tmp_path, monkeypatch):
    """Under torchrun every rank would train the same pair into the same folder: refused before any write."""
    import fairlatent.train.cyclegan as cg
    from fairlatent.train.distributed import DistContext

    monkeypatch.setattr(cg, "init_distributed", lambda device=None: DistContext(rank=0, world=2))
    with pytest.raises(FairlatentError, match="runs on one process"):
        train_translator(data16, "sq", tmp_path / "run", CycleGANConfig(**TINY, steps=1), progress=False)
    assert not (tmp_path / "run").exists()


def test_no_pickle_loading_in_the_translator_code():
    """Weights are safetensors; a ``torch.load`` without ``weights_only=True`` would run pickled code."""
    root = Path(__file__).resolve().parents[1] / "src" / "fairlatent"
    for f in (root / "models" / "cyclegan.py", root / "train" / "cyclegan.py", root / "cli" / "translator_commands.py"):
        for call in re.findall(r"torch\.load\([^)]*\)", f.read_text(encoding="utf-8")):
            assert "weights_only=True" in call, (f, call)
