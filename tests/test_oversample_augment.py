"""The reference's augmentation for the class-preserving autoencoder (fairlatent.oversample.augment) and where
it enters training: closed-form checks of each op, the adaptive probability's update, and its wiring into the
autoencoder (resume, records, refusals) and the competitors' CNNs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from fairlatent.errors import FairlatentError
from fairlatent.oversample.augment import GEOMETRIC, OPS, adapt_probability, augment, check_ops
from fairlatent.oversample.baselines import CNNSettings, train_cnn
from fairlatent.oversample.rae import RAEConfig, RAETrainer, fit_rae
from fairlatent.train.checkpoint import load_checkpoint
from fairlatent.utils.io import read_json

from test_oversample import TINY, interrupted_fit, toy_data

S = 28


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def dot_images(n: int, row: int = S // 2, col: int = S // 2) -> torch.Tensor:
    x = torch.zeros(n, 1, S, S)
    x[:, :, row - 1 : row + 1, col - 1 : col + 1] = 1.0
    return x


def centre_of_mass(x: torch.Tensor) -> torch.Tensor:
    """N×2 (row, col) centres of the first channel's mass."""
    m = x[:, 0].clamp(min=0)
    idx = torch.arange(S, dtype=torch.float32)
    tot = m.sum((1, 2))
    return torch.stack([(m.sum(2) * idx).sum(1) / tot, (m.sum(1) * idx).sum(1) / tot], 1)


def test_p_zero_returns_the_input_and_draws_nothing():
    x, g = torch.rand(4, 3, S, S), gen()
    state = g.get_state()
    assert augment(x, g, 0.0, OPS) is x
    assert torch.equal(g.get_state(), state)


def test_unknown_empty_or_repeated_ops_are_refused_by_name():
    with pytest.raises(ValueError, match="'spin'"):
        check_ops(["flip", "spin"])
    with pytest.raises(ValueError, match="no augmentation op"):
        check_ops([])
    with pytest.raises(ValueError, match="repeated"):
        check_ops(["zoom", "zoom"])
    assert check_ops(GEOMETRIC) == list(GEOMETRIC)


def test_flip_mirrors_about_half_of_the_images_exactly():
    x = torch.rand(400, 1, S, S)
    out = augment(x, gen(1), 1.0, ["flip"])
    same = (out == x).flatten(1).all(1)
    mirrored = (out == x.flip(3)).flatten(1).all(1)
    assert bool((same | mirrored).all())
    assert 150 < int(mirrored.sum()) < 250  # Binomial(400, ½): mean 200, sd 10


def test_translation_moves_a_dot_by_at_most_an_eighth_of_the_side_both_ways():
    x = dot_images(300)
    shift = centre_of_mass(augment(x, gen(2), 1.0, ["translation"])) - centre_of_mass(x)
    assert float(shift.abs().max()) <= 0.125 * S + 0.5
    for axis in (0, 1):  # uniform over ±3.5 px: both signs and more than half the range are reached
        assert float(shift[:, axis].min()) < -0.5 * 0.125 * S and float(shift[:, axis].max()) > 0.5 * 0.125 * S


def test_rotation_turns_an_off_centre_dot_by_at_most_45_degrees_about_the_centre():
    # on the horizontal axis, 6 px right of the centre: near enough that the reflected border (Keras' fill) never
    # brings a mirrored copy of the dot into a corner turned inside (those sample up to 14·√2 ≈ 20 px out)
    x = dot_images(300, row=S // 2, col=S // 2 + 6)
    c = centre_of_mass(augment(x, gen(3), 1.0, ["rotation"])) - (S - 1) / 2
    angle = torch.rad2deg(torch.atan2(c[:, 0], c[:, 1]))
    ref = float(torch.rad2deg(torch.atan2(*(centre_of_mass(x)[0] - (S - 1) / 2))))
    turned = angle - ref
    assert float(turned.abs().max()) <= 45 + 3  # under half a pixel's worth of slack at radius 6
    assert float(turned.min()) < -30 and float(turned.max()) > 30
    radius = c.norm(dim=1)  # a rotation keeps the distance to the centre
    assert float((radius - radius.mean()).abs().max()) < 0.6


def test_zoom_only_magnifies_by_up_to_a_third_per_axis():
    x = torch.zeros(300, 1, S, S)
    x[:, :, 10:18, 10:18] = 1.0  # an 8×8 square about the centre
    out = augment(x, gen(4), 1.0, ["zoom"])
    idx = torch.arange(S, dtype=torch.float32)

    def spread(img: torch.Tensor, dim: int) -> torch.Tensor:  # sd of the mass along one axis
        m = img[:, 0].sum(dim)
        mean = (m * idx).sum(1) / m.sum(1)
        return ((m * (idx - mean[:, None]) ** 2).sum(1) / m.sum(1)).sqrt()

    for dim in (1, 2):  # a zoom by k multiplies the sd by k; 1/(1 − 0.25) = 4/3 at most
        k = spread(out, dim) / spread(x, dim)
        assert float(k.min()) > 0.97 and float(k.max()) < 4 / 3 + 0.05  # + bilinear edge blur
        assert float(k.max()) > 1.25  # the range is used
    assert not torch.allclose(spread(out, 1), spread(out, 2), atol=0.05)  # the two axes zoom independently


def test_cutout_zeroes_one_rectangle_of_at_most_half_the_side():
    x = torch.ones(200, 2, S, S)
    out = augment(x, gen(5), 1.0, ["cutout"])
    assert torch.equal(out[:, 0], out[:, 1])  # the same hole in every channel
    holes = out[:, 0] == 0
    for h in holes:
        r, c = torch.nonzero(h.any(1)).flatten(), torch.nonzero(h.any(0)).flatten()
        assert len(r) <= S // 2 and len(c) <= S // 2
        if len(r):  # the zeros fill their bounding box: one rectangle
            assert int(h.sum()) == len(r) * len(c) == (r[-1] - r[0] + 1) * (c[-1] - c[0] + 1)
    assert int((holes.flatten(1).sum(1) == (S // 2) ** 2).sum()) > 50  # wholly inside the image often


def test_colour_ops_in_closed_form():
    x = torch.rand(64, 3, S, S)
    b = augment(x, gen(6), 1.0, ["brightness"]) - x  # one offset per image, in [-½, ½]
    off = b[:, :1, :1, :1]
    assert torch.allclose(b, off.expand_as(b), atol=1e-6) and float(off.abs().max()) <= 0.5
    c = augment(x, gen(7), 1.0, ["contrast"])
    assert torch.allclose(c.mean((1, 2, 3)), x.mean((1, 2, 3)), atol=1e-5)  # the image mean is kept
    k = (c - c.mean((1, 2, 3), keepdim=True)) / (x - x.mean((1, 2, 3), keepdim=True))
    assert float(k.flatten(1).std(1).max()) < 1e-3 and 0.5 <= float(k.flatten(1).median()) <= 1.5
    grey = torch.rand(8, 1, S, S)
    assert torch.allclose(augment(grey, gen(8), 1.0, ["saturation"]), grey)  # one channel: nothing to saturate


def test_p_picks_that_share_of_images_and_gradients_flow():
    x = torch.rand(2000, 1, 8, 8, requires_grad=True)
    out = augment(x, gen(9), 0.3, ["brightness"])
    changed = (out != x).flatten(1).any(1).float().mean()
    assert 0.27 < float(changed) < 0.33  # Binomial(2000, 0.3): sd 0.01
    out.sum().backward()
    assert torch.equal(x.grad, torch.ones_like(x))  # a brightness shift passes gradients through unchanged


def test_adaptive_probability_update_by_hand():
    scores = torch.tensor([1.0, -2.0, 3.0, 0.0])  # right: 1, 0, 1, ½ → accuracy 0.625
    assert adapt_probability(0.5, scores, 0.85, 1000) == pytest.approx(0.5 + (0.625 - 0.85) / 1000)
    assert adapt_probability(0.0, scores, 0.85, 1000) == 0.0  # clipped at 0
    assert adapt_probability(1.0, torch.ones(4), 0.85, 1) == 1.0  # clipped at 1
    assert adapt_probability(0.2, torch.ones(4), 0.85, 10) == pytest.approx(0.2 + 0.15 / 10)


# --- in the autoencoder ----------------------------------------------------------------------------


def test_adaptive_augmentation_needs_the_critic_and_ops_are_checked_at_load():
    with pytest.raises(ValidationError, match="adversarial = false has no critic"):
        RAEConfig(**TINY, adversarial=False, augment="adaptive")
    with pytest.raises(ValidationError, match="'mirror'"):
        RAEConfig(**TINY, augment="fixed", augment_ops=["mirror"])


def test_records_without_augmentation_read_as_before():
    """Off (the default), the augmentation settings stay out of the dump, so a run recorded before they existed
    still matches its config (finished runs are reused, caches keep their keys); on, they are recorded."""
    off = RAEConfig(**TINY).model_dump()
    assert not any(k.startswith("augment") for k in off)
    on = RAEConfig(**TINY, augment="fixed", augment_p=0.25).model_dump()
    assert on["augment"] == "fixed" and on["augment_p"] == 0.25 and on["augment_ops"] == list(OPS)


def test_fixed_augmentation_changes_training_and_resumes_bitwise(tmp_path, monkeypatch):
    x, y = toy_data()
    base = dict(TINY, adversarial=False, decoder_recon_weight=1.0, steps=5)
    plain = fit_rae(x, y, tmp_path / "plain", RAEConfig(**base), progress=False)
    cfg = RAEConfig(**base, augment="fixed", augment_p=0.5, augment_ops=list(GEOMETRIC))
    full = fit_rae(x, y, tmp_path / "full", cfg, progress=False)
    a, p = load_checkpoint(full / "checkpoint")[0], load_checkpoint(plain / "checkpoint")[0]
    assert not torch.equal(a["E.features.0.weight"], p["E.features.0.weight"])  # the augmentation took effect
    assert read_json(full / "config.json")["run"]["augment"] == "fixed"

    interrupted_fit(monkeypatch, x, y, tmp_path / "resumed", cfg)
    b = load_checkpoint(fit_rae(x, y, tmp_path / "resumed", cfg, progress=False) / "checkpoint")[0]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_adaptive_probability_moves_with_the_critic_and_is_restored_on_resume(tmp_path, monkeypatch):
    x, y = toy_data()
    # target 0: every critic update adds (its accuracy on reals) / 2 to p, so p leaves 0 unless the critic is
    # wrong on every real image; at target 1 it can only fall, so it stays at its start, 0
    cfg = RAEConfig(**TINY, steps=5, augment="adaptive", augment_integration=2, augment_target=0.0)
    full = fit_rae(x, y, tmp_path / "full", cfg, progress=False)
    p_full = load_checkpoint(full / "checkpoint")[2]["augment_p"]
    assert 0 < p_full <= 1
    never = fit_rae(x, y, tmp_path / "never", cfg.model_copy(update={"augment_target": 1.0}), progress=False)
    assert load_checkpoint(never / "checkpoint")[2]["augment_p"] == 0.0
    log = (full / "log.csv").read_text().splitlines()
    assert "augment_p" in log[0].split(",")

    interrupted_fit(monkeypatch, x, y, tmp_path / "resumed", cfg)
    saved_p = load_checkpoint(tmp_path / "resumed" / "checkpoint")[2]["augment_p"]
    t = RAETrainer(cfg, x, y, 3)
    t.load_extra_state({"augment_p": saved_p})
    assert t.augment_p == saved_p
    resumed = fit_rae(x, y, tmp_path / "resumed", cfg, progress=False)
    a, b = load_checkpoint(full / "checkpoint"), load_checkpoint(resumed / "checkpoint")
    assert b[2]["augment_p"] == p_full
    assert all(torch.equal(a[0][k], b[0][k]) for k in a[0])


def test_a_checkpoint_without_augmentation_is_not_resumed_with_it(tmp_path, monkeypatch):
    x, y = toy_data()
    base = dict(TINY, adversarial=False, decoder_recon_weight=1.0, steps=5)
    interrupted_fit(monkeypatch, x, y, tmp_path / "run", RAEConfig(**base))
    with pytest.raises(FairlatentError, match="augment"):
        fit_rae(x, y, tmp_path / "run", RAEConfig(**base, augment="fixed"), progress=False)
    fit_rae(x, y, tmp_path / "run", RAEConfig(**base), progress=False)  # the same config resumes


# --- in the competitors ----------------------------------------------------------------------------


def test_competitor_cnn_augmentation_is_validated_and_takes_effect():
    with pytest.raises(FairlatentError, match="augment_p"):
        CNNSettings(augment_p=1.5)
    with pytest.raises(FairlatentError, match="'twirl'"):
        CNNSettings(augment_ops=("twirl",))
    x, y = toy_data()
    s = dict(width=2, hidden=8, z_dim=4, steps=3, batch_size=8)
    plain, _ = train_cnn(x, y, 3, CNNSettings(**s), seed=0)
    again, _ = train_cnn(x, y, 3, CNNSettings(**s), seed=0)
    aug, _ = train_cnn(x, y, 3, CNNSettings(**s, augment_p=1.0), seed=0)
    w = "encoder.features.0.weight"
    assert torch.equal(plain.state_dict()[w], again.state_dict()[w])
    assert not torch.equal(plain.state_dict()[w], aug.state_dict()[w])


def test_a_profile_other_than_cpu_writes_its_own_page(tmp_path):
    from fairlatent.oversample.benchmark import write_outputs

    grid = np.zeros((4, 4, 3), np.uint8)
    rec = {"profile": "cpu-augment", "benchmarks": {"mnist-lt": {"split": {"train_counts": [2, 1],
           "test_per_class": 1, "imbalance_ratio": 2.0}, "seeds": [0], "results": {}, "summary": {}}},
           "_grids": {"mnist-lt": {0: grid}}}  # fmt: skip
    paths = write_outputs(rec, tmp_path, command="x")
    assert paths["json"].name == "imbalance_cpu_augment.json" and paths["md"].name == "imbalance_cpu_augment.md"
    assert paths["grid"].name == "imbalance_mnist_samples_cpu_augment.png" and paths["grid"].is_file()
    md = paths["md"].read_text()
    assert "Profile `cpu-augment`" in md and "imbalance_mnist_samples_cpu_augment.png" in md
    assert json.loads(paths["json"].read_text())["profile"] == "cpu-augment"


TINY_AUGMENT_PROFILE = {
    "rae": dict(z_dim=4, width=2, hidden=8, mixer_hidden=8, mixer_layers=1, batch_size=4, adversarial=False,
                decoder_recon_weight=1.0, steps=2, checkpoint_every=2, log_every=1, augment="fixed",
                augment_p=0.5, augment_ops=list(GEOMETRIC)),
    "cnn": dict(width=2, hidden=8, z_dim=4, steps=2, batch_size=8, augment_p=0.5)}


def test_augment_study_script_trains_the_same_models_without_augmentation(tmp_path, monkeypatch, capsys,
                                                                         benchmark_script):
    """``benchmarks/imbalance_augment.py`` trains the ``cpu-augment`` profile's models with augmentation off (the
    recorded autoencoder has no augment key; a rerun skips recorded seeds), scores every method, and tables them
    beside the augmented page's scores."""
    from fairlatent.oversample import benchmark
    from test_oversample import MNIST

    monkeypatch.setitem(benchmark.PROFILES, "cpu-augment", TINY_AUGMENT_PROFILE)
    module = benchmark_script("imbalance_augment")
    prof = module.plain_profile()
    assert prof["cnn"]["augment_p"] == 0.0 and not any(k.startswith("augment") for k in prof["rae"])
    augmented = {"benchmarks": {"mnist-lt": {"results": {"rae": {"0": {"acsa": 0.5}}, "ce": {"0": {"acsa": 0.25}}}}}}
    (tmp_path / "aug.json").write_text(json.dumps(augmented))
    args = ["--mnist", str(MNIST), "--work", str(tmp_path / "w"), "--seeds", "0", "--out", str(tmp_path / "p.json"),
            "--augmented", str(tmp_path / "aug.json")]
    module.main(args)
    out = capsys.readouterr().out.strip().splitlines()
    rec = json.loads(out[0])
    assert rec["seed"] == 0 and set(module.METHODS) <= set(rec) and all(0 <= rec[m] <= 100 for m in module.METHODS)
    assert "| `rae` | " in out[-len(module.METHODS)] and "| 50.0 ± 0.0 |" in out[-len(module.METHODS)]
    assert "augment" not in read_json(tmp_path / "w" / "seed0" / "rae" / "config.json")["run"]
    saved = json.loads((tmp_path / "p.json").read_text())
    assert saved["acsa"]["rae"]["0"] == pytest.approx(rec["rae"] / 100, abs=5e-5)
    module.main(args)  # recorded: nothing is trained again, only the table printed
    assert not any(line.startswith("{") for line in capsys.readouterr().out.splitlines())


def test_augment_study_adds_the_reference_critic_and_adaptive_p_with_as_many_main_steps(tmp_path, monkeypatch,
                                                                                         capsys, benchmark_script):
    """``--adversarial`` trains one more ``rae``: cpu-augment's with the critic, p adapted by it and the reference's
    decoder loss, for ``period`` × as many engine steps (so as many main steps); its folder records those
    settings, its score and seconds and those of the two methods on its decoded samples are kept, and the table
    gains their rows."""
    from fairlatent.oversample import benchmark
    from test_oversample import MNIST

    module = benchmark_script("imbalance_augment")
    real = module.variant_profiles()["rae_adversarial"]["rae"]
    cfg = RAEConfig(**real)
    base = RAEConfig(**benchmark.PROFILES["cpu-augment"]["rae"])
    assert cfg.adversarial and cfg.augment == "adaptive" and cfg.decoder_recon_weight == 0.0
    assert cfg.steps == cfg.period * base.steps and (cfg.width, cfg.lr, cfg.augment_ops) == (base.width, base.lr,
                                                                                            base.augment_ops)
    light = RAEConfig(**module.variant_profiles()["rae_adversarial_1critic"]["rae"])
    assert cfg.n_critic == 5 and light.n_critic == 1 and light.model_copy(update={"n_critic": 5}) == cfg
    fixed = RAEConfig(**module.variant_profiles()["rae_adversarial_1critic_fixed"]["rae"])
    assert (fixed.augment, fixed.augment_p) == ("fixed", base.augment_p)
    assert fixed.model_copy(update={"augment": "adaptive"}) == light
    monkeypatch.setitem(benchmark.PROFILES, "cpu-augment", TINY_AUGMENT_PROFILE)
    plain = {m: {"0": 0.5} for m in module.METHODS}
    (tmp_path / "p.json").write_text(json.dumps({"profile": module.plain_profile(), "acsa": plain}))
    module.main(["--mnist", str(MNIST), "--work", str(tmp_path / "w"), "--seeds", "0", "--out",
                 str(tmp_path / "p.json"), "--adversarial", "--grids", str(tmp_path / "g")])
    lines = capsys.readouterr().out.strip().splitlines()
    assert [set(json.loads(line)) for line in lines if line.startswith("{")] == [  # the plain seed was recorded
        {"seed", "rae_adversarial", "latent_smote_adversarial", "rae_augment_adversarial", "train_seconds"}]
    run = read_json(tmp_path / "w" / "adversarial" / "seed0" / "rae" / "config.json")["run"]
    assert run["adversarial"] and run["augment"] == "adaptive" and run["steps"] == 10
    saved = json.loads((tmp_path / "p.json").read_text())
    assert 0 <= saved["acsa"]["rae_adversarial"]["0"] <= 1 and saved["train_seconds"]["rae_adversarial"]["0"] > 0
    assert [line.split(" | ")[0] for line in lines[-3:]] == [
        "| `rae`, the reference's critic + adaptive p, 3,000 steps (600 main)",
        "| `latent_smote` on that critic-trained autoencoder", "| `rae_augment` on that critic-trained autoencoder"]
    from PIL import Image

    from fairlatent.oversample.rae import load_rae

    grid = np.asarray(Image.open(tmp_path / "g" / "imbalance_mnist_samples_adversarial.png"))[::2, ::2]
    model = load_rae(tmp_path / "w" / "adversarial" / "seed0" / "rae")
    np.testing.assert_array_equal(grid, benchmark.sample_grid(model, 10, seed=0))  # that model's samples, seed 0
    module.main(["--mnist", str(MNIST), "--work", str(tmp_path / "w"), "--seeds", "0", "--out",
                 str(tmp_path / "p.json"), "--adversarial", "--grids", str(tmp_path / "g2")])  # recorded: grid only
    assert not any(line.startswith("{") for line in capsys.readouterr().out.splitlines())
    again = tmp_path / "g2" / "imbalance_mnist_samples_adversarial.png"
    assert again.read_bytes() == (tmp_path / "g" / "imbalance_mnist_samples_adversarial.png").read_bytes()


def test_every_benchmark_profile_is_a_valid_configuration():
    """Profiles are plain dicts, checked only when a benchmark builds them: build each here (the reference's
    adaptive augmentation needs its critic; cpu-augment gives every model the same ops and probability)."""
    from fairlatent.oversample.benchmark import PROFILES

    for name, prof in PROFILES.items():
        rae, cnn = RAEConfig(**prof["rae"]), CNNSettings(**prof["cnn"])
        assert rae.augment != "adaptive" or rae.adversarial, name
    rae, cnn = RAEConfig(**PROFILES["cpu-augment"]["rae"]), CNNSettings(**PROFILES["cpu-augment"]["cnn"])
    assert rae.augment == "fixed" and rae.augment_p == cnn.augment_p and tuple(rae.augment_ops) == cnn.augment_ops
    assert RAEConfig(**PROFILES["cpu"]["rae"]).augment == "off" and CNNSettings(**PROFILES["cpu"]["cnn"]).augment_p == 0
