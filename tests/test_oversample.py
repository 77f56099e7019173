"""Minority oversampling with class-preserving regularized autoencoders (fairlatent.oversample).

Tiny networks on 8×8 synthetic images: each test runs in a few seconds on one thread.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from fairlatent.errors import FairlatentError
from fairlatent.models.weights import load_tensors
from fairlatent.oversample.benchmark import class_metrics
from fairlatent.oversample.data import check_training_labels, long_tailed_split, write_split_npz, ImbalancedSplit
from fairlatent.oversample.models import Decoder, Mixer, mix
from fairlatent.oversample.rae import RAEConfig, RAEModel, RAETrainer, fit_rae, load_rae
from fairlatent.train.checkpoint import load_checkpoint

TINY = dict(z_dim=4, width=4, hidden=16, mixer_hidden=16, mixer_layers=2, batch_size=4, n_critic=2, period=2,
            log_every=1, checkpoint_every=2)
MNIST = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mnist"
MNIST = MNIST if MNIST.is_dir() else Path("/work/shared/data/mnist")


def toy_data(n_per_class=(12, 6, 3), size=8, seed=0) -> tuple[np.ndarray, np.ndarray]:
    """Class c is a bright horizontal bar at rows 2c…2c+1 plus noise: separable, imbalanced."""
    r = np.random.default_rng(seed)
    xs, ys = [], []
    for c, n in enumerate(n_per_class):
        x = r.integers(0, 60, size=(n, size, size, 1))
        x[:, 2 * c : 2 * c + 2, :, :] += 180
        xs.append(x.astype(np.uint8))
        ys.append(np.full(n, c))
    return np.concatenate(xs), np.concatenate(ys)


# --- the networks --------------------------------------------------------------------------------


@pytest.mark.parametrize("train", [True, False])
def test_mixer_outputs_convex_weights(train):
    torch.manual_seed(0)
    m = Mixer(z_dim=5, n_classes=3, hidden=16, layers=2).train(train)
    z1, z2, noise = torch.randn(3, 32, 5).mul(10).unbind(0)
    alpha = m(z1, z2, noise, torch.randint(0, 3, (32,)))
    assert alpha.shape == (32, 2)
    assert torch.all(alpha >= 0)
    assert torch.allclose(alpha.sum(1), torch.ones(32), atol=1e-6)
    # a mix with them lies on the segment between the two latents, coordinate by coordinate
    zm = mix(alpha, z1, z2)
    lo, hi = torch.minimum(z1, z2), torch.maximum(z1, z2)
    assert torch.all(zm >= lo - 1e-5) and torch.all(zm <= hi + 1e-5)


def planted_model(k=3, z_dim=2, per_class=6) -> RAEModel:
    """A model whose probe is planted: class c's region is where ⟨z, u_c⟩ is largest (u_c on a circle), and whose
    training latents of class c lie well inside that region."""
    cfg = RAEConfig(**{**TINY, "z_dim": z_dim})
    angles = torch.arange(k) * (2 * np.pi / k)
    u = torch.stack([angles.cos(), angles.sin()], 1)
    g = torch.Generator().manual_seed(1)
    radius = 1 + 4 * torch.rand(k, per_class, 1, generator=g)
    spread = 0.4 * (torch.rand(k, per_class, 1, generator=g) - 0.5)  # angles within ±0.2 rad of u_c
    rot = angles[:, None, None] + spread
    z = (radius * torch.cat([rot.cos(), rot.sin()], 2)).reshape(-1, 2)
    y = torch.arange(k).repeat_interleave(per_class)
    model = RAEModel(cfg, k, 8, 1, [f"c{i}" for i in range(k)], z, y)
    with torch.no_grad():
        model.probe.weight.copy_(u)
        model.probe.bias.zero_()
    assert torch.equal(model.probe(z).argmax(1), y)  # the planted probe classifies the training latents
    return model


def test_mixed_same_class_latents_keep_their_class_under_a_planted_linear_probe():
    model = planted_model()
    for c in range(3):
        z = model.mixed_latents(c, 200, seed=3)
        assert torch.equal(model.probe(z).argmax(1), torch.full((200,), c))
        # the mixes are new points, not copies of the training latents
        assert torch.cdist(z, model.latents).min(1).values.max() > 1e-3


def test_decoder_is_conditioned_on_the_class():
    torch.manual_seed(0)
    dec = Decoder(channels_out=1, size=8, z_dim=4, n_classes=3, width=4, hidden=16).eval()
    z = torch.randn(5, 4)
    out = [dec(z, torch.full((5,), c)) for c in range(3)]
    assert out[0].shape == (5, 1, 8, 8) and torch.all((out[0] >= 0) & (out[0] <= 1))
    for a in range(3):
        for b in range(a + 1, 3):
            assert (out[a] - out[b]).abs().amax(dim=(1, 2, 3)).min() > 1e-4, (a, b)
    assert torch.equal(dec(z, torch.zeros(5, dtype=torch.long)), out[0])  # deterministic in eval mode


# --- training ------------------------------------------------------------------------------------


def test_pair_classes_are_uniform_by_default_and_follow_the_counts_when_natural():
    """Over 40,000 pairs of a 12/6/3 split: balanced sampling gives each class a third, natural sampling the
    classes' shares 12/21, 6/21, 3/21 (binomial sd ≤ 0.0025, so 0.01 is four sd); in both, a pair's two members
    are two different images of the pair's class."""
    from fairlatent.oversample.rae import PairSampler
    from fairlatent.utils.seed import rng

    _, y = toy_data()
    y = np.random.default_rng(1).permutation(y)  # labels not sorted: the sampler must map back through its order
    for natural, expected in ((False, np.full(3, 1 / 3)), (True, np.array([12, 6, 3]) / 21)):
        sampler = PairSampler(y, 3, seed=0, natural=natural)
        a, b, cls = (np.concatenate(v) for v in zip(*(sampler(s, 0, 1000) for s in range(40))))
        np.testing.assert_allclose(np.bincount(cls, minlength=3) / len(cls), expected, atol=0.01)
        assert np.array_equal(y[a], cls) and np.array_equal(y[b], cls) and not np.any(a == b)
    # the balanced default draws exactly what it drew before the setting existed (runs keep their keys and bits)
    assert "class_sampling" not in RAEConfig(**TINY).model_dump()
    assert RAEConfig(**TINY, class_sampling="natural").model_dump()["class_sampling"] == "natural"
    # ... and the balanced path's first draw is still the classes, uniform, from the step's stream
    np.testing.assert_array_equal(PairSampler(y, 3, seed=5)(3, 1, 50)[2],
                                  rng(5, "rae-pairs", 3, 1).integers(3, size=50))


def test_natural_class_sampling_trains_differently_and_resumes_bitwise(tmp_path, monkeypatch):
    x, y = toy_data()
    cfg = RAEConfig(**TINY, adversarial=False, mixer="none", decoder_recon_weight=1.0, class_sampling="natural",
                    steps=5)
    full = fit_rae(x, y, tmp_path / "full", cfg, progress=False)
    interrupted_fit(monkeypatch, x, y, tmp_path / "resumed", cfg)
    resumed = fit_rae(x, y, tmp_path / "resumed", cfg, progress=False)
    ma, mb = load_tensors(full / "model.safetensors"), load_tensors(resumed / "model.safetensors")
    assert ma.keys() == mb.keys() and all(torch.equal(ma[k], mb[k]) for k in ma)
    balanced = fit_rae(x, y, tmp_path / "balanced", cfg.model_copy(update={"class_sampling": "balanced"}),
                       progress=False)
    mc = load_tensors(balanced / "model.safetensors")
    assert not torch.equal(ma["E.features.0.weight"], mc["E.features.0.weight"])
    assert load_rae(full).config.class_sampling == "natural" and load_rae(balanced).config.class_sampling == "balanced"


def interrupted_fit(monkeypatch, x, y, out, cfg: RAEConfig, at: int = 3) -> None:
    """``fit_rae`` stopped by a KeyboardInterrupt in step ``at`` (its last checkpoint stays); training is then
    left as it was, so the next ``fit_rae`` into ``out`` resumes."""
    real_step = RAETrainer.train_step

    def crashing_step(self, step, batches):
        if step == at:
            raise KeyboardInterrupt
        return real_step(self, step, batches)

    monkeypatch.setattr(RAETrainer, "train_step", crashing_step)
    with pytest.raises(KeyboardInterrupt):
        fit_rae(x, y, out, cfg, progress=False)
    monkeypatch.setattr(RAETrainer, "train_step", real_step)


@pytest.mark.parametrize("extra", [{}, {"adversarial": False, "mixer": "random", "decoder_recon_weight": 1.0}],
                         ids=["reference", "no-mixer"])
def test_resume_is_bitwise_identical(tmp_path, monkeypatch, extra):
    x, y = toy_data()
    cfg = RAEConfig(**TINY, **extra, steps=5)
    full = fit_rae(x, y, tmp_path / "full", cfg, progress=False)
    interrupted_fit(monkeypatch, x, y, tmp_path / "resumed", cfg)
    assert load_checkpoint(tmp_path / "resumed" / "checkpoint")[2]["step"] == 2
    assert not (tmp_path / "resumed" / "model.safetensors").exists()
    resumed = fit_rae(x, y, tmp_path / "resumed", cfg, progress=False)

    a, b = load_checkpoint(full / "checkpoint")[0], load_checkpoint(resumed / "checkpoint")[0]
    assert a.keys() == b.keys()
    expected = {"opt_enc.", "opt_dec.", "E_ema."} | ({"opt_mix.", "opt_critic.", "M.", "C."} if not extra else set())
    assert all(any(k.startswith(p) for k in a) for p in expected)
    for k in a:
        assert torch.equal(a[k], b[k]), k
    ma, mb = load_tensors(full / "model.safetensors"), load_tensors(resumed / "model.safetensors")
    assert ma.keys() == mb.keys() and all(torch.equal(ma[k], mb[k]) for k in ma)
    init = RAETrainer(cfg, x, y, 3)
    assert not torch.equal(init.E.features[0].weight, a["E.features.0.weight"])  # it trained


def test_reference_schedule_alternates_adversarial_and_main_steps(tmp_path):
    """Step 0 and steps not divisible by ``period`` update the decoder adversarially (+ critic); the others are
    main steps (encoder, probe, decoder, mixer)."""
    x, y = toy_data()
    t = RAETrainer(RAEConfig(**TINY, steps=3), x, y, 3)
    e0, c0 = t.E.features[-1].weight.clone(), t.C.fc[-1].weight.clone()
    t.train_step(0, [])
    assert torch.equal(t.E.features[-1].weight, e0) and not torch.equal(t.C.fc[-1].weight, c0)
    m0, c1 = t.M.head.weight.clone(), t.C.fc[-1].weight.clone()
    t.train_step(2, [])
    assert not torch.equal(t.E.features[-1].weight, e0) and not torch.equal(t.M.head.weight, m0)
    assert torch.equal(t.C.fc[-1].weight, c1)


def test_fitted_model_predicts_and_samples(tmp_path):
    x, y = toy_data()
    out = fit_rae(x, y, tmp_path / "m", RAEConfig(**TINY, steps=4), class_names=["a", "b", "c"], progress=False)
    rae = load_rae(out)
    assert rae.class_names == ["a", "b", "c"] and rae.balance_counts() == [0, 6, 9]
    assert rae.predict(x).shape == (len(x),)
    imgs, labels = rae.sample([2, 0, 5], seed=1)
    assert imgs.shape == (7, 8, 8, 1) and imgs.dtype == np.uint8 and labels.tolist() == [0, 0] + [2] * 5
    again, _ = rae.sample([2, 0, 5], seed=1)
    assert np.array_equal(imgs, again)
    # an unfinished run is not loadable, and says how to finish it
    fit_rae(x, y, tmp_path / "part", RAEConfig(**TINY, steps=4), progress=False, stop_at_step=2)
    with pytest.raises(FairlatentError, match="has not finished"):
        load_rae(tmp_path / "part")


# --- bad input -----------------------------------------------------------------------------------


def test_a_class_with_one_sample_is_named():
    x, y = toy_data((5, 1, 4))
    with pytest.raises(FairlatentError, match=r"class 'b' has only 1 training image"):
        fit_rae(x, y, "unused", RAEConfig(**TINY), class_names=["a", "b", "c"], progress=False)


def test_a_class_absent_from_train_is_named(tmp_path):
    x, y = toy_data((5, 4))
    with pytest.raises(FairlatentError, match=r"class 'c' is absent from the training set"):
        fit_rae(x, y, tmp_path / "m", RAEConfig(**TINY), class_names=["a", "b", "c"], progress=False)
    assert not (tmp_path / "m").exists()
    with pytest.raises(FairlatentError, match=r"class '1' is absent"):
        check_training_labels(np.array([0, 0, 2, 2]))


def test_a_profile_asking_for_more_images_than_exist_is_named():
    x, y = toy_data((12, 6, 3))
    with pytest.raises(FairlatentError, match=r"class '1': the profile asks for 5 training \+ 2 test images but only 6 exist"):
        long_tailed_split(x, y, [8, 5, 1], test_per_class=2, seed=0)
    split = long_tailed_split(x, y, [8, 4, 1], test_per_class=2, seed=0)
    assert split.train_counts() == [8, 4, 1] and np.bincount(split.test_labels).tolist() == [2, 2, 2]


def test_class_metrics_by_hand():
    # recalls 1/2 and 1; precisions 1 and 2/3; F1 2/3 and 4/5
    m = class_metrics(np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1]), 2)
    assert m["recall"] == [0.5, 1.0]
    assert m["acsa"] == pytest.approx(0.75)
    assert m["gm"] == pytest.approx(np.sqrt(0.5))
    assert m["macro_f1"] == pytest.approx((2 / 3 + 4 / 5) / 2)
    assert class_metrics(np.array([0, 1]), np.array([1, 1]), 2)["gm"] == 0.0  # a class never recognised


# --- MNIST (shared data) -------------------------------------------------------------------------


@pytest.mark.skipif(not MNIST.is_dir(), reason="../shared/data/mnist is absent")
def test_mnist_long_tailed_profile_is_fixed_and_disjoint():
    from fairlatent.oversample.data import MNIST_LT_COUNTS, mnist_long_tailed

    a, b = mnist_long_tailed(MNIST, seed=0), mnist_long_tailed(MNIST, seed=0)
    assert a.train_counts() == list(MNIST_LT_COUNTS) and a.profile["imbalance_ratio"] == 100
    assert np.bincount(a.test_labels).tolist() == [150] * 10
    assert np.array_equal(a.train_images, b.train_images)
    train = {r.tobytes() for r in a.train_images}
    assert not any(r.tobytes() in train for r in a.test_images)  # no test image is a training image
    with pytest.raises(FairlatentError, match=r"class '5': the profile asks for 800 training \+ 150 test images but only 892"):
        mnist_long_tailed(MNIST, seed=0, counts=[800] * 10)


# --- CLI -----------------------------------------------------------------------------------------


def test_cli_fit_and_sample(cli, tmp_path):
    x, y = toy_data()
    data = tmp_path / "d.npz"
    write_split_npz(data, ImbalancedSplit(x, y, x[:6], y[:6], ["a", "b", "c"]))
    res = cli(["oversample", "fit", "--data", data, "--out", tmp_path / "m", "--quiet", "--steps", "3",
               *sum((["--set", f"{k}={v}"] for k, v in TINY.items()), [])])
    assert res.code == 0, res
    assert "ACSA" in res.out
    res = cli(["oversample", "sample", "--model", tmp_path / "m", "--out", tmp_path / "s.npz", "--balance",
               "--grid", tmp_path / "g.png"])
    assert res.code == 0, res
    s = np.load(tmp_path / "s.npz")
    assert np.bincount(s["labels"], minlength=3).tolist() == [0, 6, 9] and (tmp_path / "g.png").is_file()
    cli.user_error(["oversample", "sample", "--model", tmp_path / "m", "--out", tmp_path / "s.npz", "--balance"],
                   "already exists")
    cli.user_error(["oversample", "sample", "--model", tmp_path / "m", "--out", tmp_path / "t.npz"],
                   "exactly one of --per-class")


def test_cli_bad_inputs(cli, tmp_path):
    x, y = toy_data((5, 1, 4))
    data = tmp_path / "d.npz"
    np.savez(data, images=x[..., 0], labels=y)
    cli.user_error(["oversample", "fit", "--data", data, "--out", tmp_path / "m"], "class '1' has only 1 training image")
    cli.user_error(["oversample", "fit", "--data", data, "--out", tmp_path / "m", "--set", "mixer=best"], "mixer")
    cli.user_error(["oversample", "fit", "--data", tmp_path / "nope.npz", "--out", tmp_path / "m"], "nope.npz",
                   "not found")
    cli.user_error(["oversample", "sample", "--model", tmp_path, "--out", tmp_path / "s.npz", "--per-class", "2"],
                   "no config.json")
    if MNIST.is_dir():
        cli.user_error(["oversample", "mnist-lt", "--mnist", MNIST, "--out", tmp_path / "lt.npz", "--counts",
                        "100,100,100,100,100,900,10,10,10,10"], "class '5'", "900 training")


@pytest.mark.skipif(not MNIST.is_dir(), reason="../shared/data/mnist is absent")
def test_cli_benchmark_imbalance_writes_json_markdown_and_grid(cli, tmp_path, monkeypatch):
    import json

    from fairlatent.oversample import benchmark

    tiny = {"rae": dict(z_dim=4, width=2, hidden=8, mixer_hidden=8, mixer_layers=1, batch_size=4, adversarial=False,
                        decoder_recon_weight=1.0, steps=2, checkpoint_every=2, log_every=1),
            "cnn": dict(width=2, hidden=8, z_dim=4, steps=2, batch_size=8)}
    monkeypatch.setitem(benchmark.PROFILES, "cpu", tiny)
    res = cli(["benchmark", "imbalance", "--mnist", MNIST, "--work", tmp_path / "w", "--out-dir", tmp_path / "o",
               "--seeds", "0", "--methods", "ce,rae"])
    assert res.code == 0, res
    rec = json.loads((tmp_path / "o" / "imbalance.json").read_text())
    runs = rec["benchmarks"]["mnist-lt"]["results"]
    assert set(runs) == {"ce", "rae"}
    for m in runs.values():
        s = m["0"]
        assert {"acsa", "gm", "macro_f1", "recall", "ci95"} <= set(s) and len(s["recall"]) == 10
        assert s["acsa"] == pytest.approx(np.mean(s["recall"]))
        assert s["ci95"]["acsa"][0] <= s["ci95"]["acsa"][1]
    md = (tmp_path / "o" / "imbalance.md").read_text()
    assert "| method | ACSA | GM | macro-F1 |" in md and "benchmark imbalance" in md
    assert (tmp_path / "o" / "imbalance_mnist_samples.png").is_file()
    cli.user_error(["benchmark", "imbalance", "--mnist", MNIST, "--work", tmp_path / "w", "--methods", "svm"],
                   "method 'svm'")
    cli.user_error(["benchmark", "imbalance", "--mnist", MNIST, "--work", tmp_path / "w", "--profile", "gpu"],
                   "profile 'gpu'")


# --- standing batch-norm statistics ----------------------------------------------------------------


def test_saved_modules_get_exact_standing_statistics_and_the_reference_setting_keeps_the_ema(tmp_path):
    """With ``standing_statistics`` the saved encoder's first batch norm holds the exact mean of its conv's
    outputs over the recalibration batches (the first conv sees the images directly, no dropout before it);
    the weights are the EMA's either way, and ``standing_statistics = false`` (the reference) keeps the EMA's
    averaged moving statistics, which are not that mean."""
    from fairlatent.oversample.rae import PairSampler, images_to_tensor

    x, y = toy_data()
    cfg = RAEConfig(**TINY, adversarial=False, steps=4)
    standing = load_tensors(fit_rae(x, y, tmp_path / "standing", cfg, progress=False) / "model.safetensors")
    ref_cfg = cfg.model_copy(update={"standing_statistics": False})
    reference = load_tensors(fit_rae(x, y, tmp_path / "ref", ref_cfg, progress=False) / "model.safetensors")
    for k in ("E.features.0.weight", "E.features.1.weight"):
        assert torch.equal(standing[k], reference[k]), k
    pairs = PairSampler(y.astype(np.int64), 3, cfg.seed, stream="rae-bn-recalibration")
    conv = torch.nn.Conv2d(1, TINY["width"], 4, 2, 1, bias=False)
    means = []
    with torch.no_grad():
        conv.weight.copy_(standing["E.features.0.weight"])
        for i in range(16):
            a, b, _ = pairs(0, i, cfg.batch_size)
            means.append(conv(torch.cat([images_to_tensor(x[a]), images_to_tensor(x[b])])).mean((0, 2, 3)))
    expected = torch.stack(means).mean(0)
    assert torch.allclose(standing["E.features.1.running_mean"], expected, atol=1e-5)
    assert not torch.allclose(reference["E.features.1.running_mean"], expected, atol=1e-3)
    # and the decoder's and mixer's statistics were recomputed too
    for k in ("Dec.fc.1.running_mean", "M.body.1.running_mean"):
        assert not torch.allclose(standing[k], reference[k], atol=1e-4), k


def test_competitor_cnns_get_standing_statistics_too():
    """The benchmark's competitors are scored on the same footing: same weights as without recalibration,
    first batch norm holding the exact mean of its conv's outputs over 16 batches drawn as in training."""
    from dataclasses import replace

    from fairlatent.oversample.baselines import CNNSettings, train_cnn
    from fairlatent.oversample.rae import images_to_tensor
    from fairlatent.utils.seed import rng

    x, y = toy_data()
    s = CNNSettings(width=4, hidden=16, z_dim=4, steps=5, batch_size=6)
    standing, _ = train_cnn(x, y, 3, s, seed=2)
    stale, _ = train_cnn(x, y, 3, replace(s, standing_statistics=False), seed=2)
    conv_w = standing.encoder.features[0].weight
    assert torch.equal(conv_w, stale.encoder.features[0].weight)
    with torch.no_grad():
        means = [torch.nn.functional.conv2d(images_to_tensor(x[rng(2, "cnn-bn-recalibration", i).integers(len(x), size=6)]),
                                            conv_w, stride=2, padding=1).mean((0, 2, 3)) for i in range(16)]
    bn, bn_stale = standing.encoder.features[1], stale.encoder.features[1]
    assert torch.allclose(bn.running_mean, torch.stack(means).mean(0), atol=1e-5)
    assert not torch.allclose(bn_stale.running_mean, bn.running_mean, atol=1e-3)


@pytest.mark.skipif(not MNIST.is_dir(), reason="../shared/data/mnist is absent")
def test_more_steps_script_extends_a_copy_and_equals_a_fresh_run_of_that_length(tmp_path, monkeypatch, capsys,
                                                                                benchmark_script):
    """``benchmarks/imbalance_more_steps.py`` trains through the benchmark's ``run_seed`` with the steps raised:
    the autoencoder extended from 2 to 4 steps (a copy; the benchmark's folder is left as it was) predicts
    exactly what a fresh 4-step run predicts, and every CNN competitor is scored."""
    import json

    from fairlatent.oversample import benchmark
    from fairlatent.oversample.data import mnist_long_tailed

    tiny = {"rae": dict(z_dim=4, width=2, hidden=8, mixer_hidden=8, mixer_layers=1, batch_size=4, adversarial=False,
                        decoder_recon_weight=1.0, steps=2, checkpoint_every=2, log_every=1),
            "cnn": dict(width=2, hidden=8, z_dim=4, steps=2, batch_size=8)}
    monkeypatch.setitem(benchmark.PROFILES, "cpu", tiny)
    split = mnist_long_tailed(MNIST, seed=0)
    benchmark.run_seed(split, 0, tmp_path / "src", "cpu", ["rae"], n_boot=2, log=lambda _l: None)
    before = (tmp_path / "src" / "seed0" / "rae" / "model.safetensors").read_bytes()
    fresh = {"rae": {**tiny["rae"], "steps": 4}, "cnn": tiny["cnn"]}
    benchmark.run_seed(split, 0, tmp_path / "fresh", fresh, ["rae"], n_boot=2, log=lambda _l: None)

    module = benchmark_script("imbalance_more_steps")
    module.main(["--from", str(tmp_path / "src"), "--work", str(tmp_path / "more"), "--mnist", str(MNIST),
                 "--seeds", "0", "--steps", "4"])
    rec = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert rec["seed"] == 0 and rec["steps"] == 4
    assert set(module.METHODS) <= set(rec) and all(0.0 <= rec[m] <= 1.0 for m in module.METHODS)
    assert (tmp_path / "src" / "seed0" / "rae" / "model.safetensors").read_bytes() == before
    extended, scratch = load_rae(tmp_path / "more" / "seed0" / "rae"), load_rae(tmp_path / "fresh" / "seed0" / "rae")
    np.testing.assert_array_equal(extended.predict(split.test_images), scratch.predict(split.test_images))
    assert rec["rae"] == pytest.approx(class_metrics(split.test_labels, scratch.predict(split.test_images), 10)["acsa"])
