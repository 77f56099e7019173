"""Tabular models: mode-specific normalisation, training-by-sampling, CTGAN's pac critic and losses, bitwise
resume on the engine, exact conditional sampling, FairGAN's fairness discriminator (tiny tables, few steps)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from fairlatent.errors import FairlatentError
from fairlatent.tabular.ctgan import (CTGANConfig, CTGANDiscriminator, CTGANObjective, conditional_loss,
                                      pac_gradient_penalty)
from fairlatent.tabular.fairgan import FairGANConfig, FairGANObjective
from fairlatent.tabular.sampler import ConditionalSampler
from fairlatent.tabular.synthesizer import Synthesizer, fit
from fairlatent.tabular.table import prepare_tables
from fairlatent.tabular.transformer import TableTransformer
from fairlatent.train.checkpoint import load_checkpoint, load_tensors

TINY_CTGAN = dict(batch_size=40, pac=5, epochs=3, generator_dims=(16, 16), discriminator_dims=(16,), embedding_dim=8,
                  checkpoint_every=1000, log_every=1)
TINY_FAIRGAN = dict(batch_size=40, plain_epochs=2, fair_epochs=2, generator_dims=(16,), discriminator_dims=(16,),
                    embedding_dim=8, checkpoint_every=1000, log_every=1)


def toy_table(n=240, seed=0):
    g = np.random.default_rng(seed)
    s = g.integers(0, 2, n)
    x1 = g.normal(2.0 * s, 0.5)
    x2 = np.where(g.random(n) < 0.5, g.normal(-5, 0.4, n), g.normal(5, 0.4, n))
    age = g.integers(18, 70, n).astype(float)
    cat = g.choice(["a", "b", "c"], size=n, p=[0.7, 0.2, 0.1])
    y = (x2 + g.normal(0, 1, n) > 0).astype(int)
    df = pd.DataFrame({"x1": x1, "x2": x2, "age": age, "cat": cat, "s": np.where(s, "p", "u"), "y": y.astype(str)})
    k = int(n * 0.75)
    return prepare_tables({"train": df.iloc[:k], "test": df.iloc[k:]}, name="toy", source="toy",
                          continuous=["x1", "x2", "age"], categorical=["cat", "s", "y"], target="y", positive="1",
                          protected=[("s", "p")])


@pytest.fixture(scope="module")
def toy():
    return toy_table()


# --- mode-specific normalisation -------------------------------------------------------------------------


def test_mode_specific_normalisation_round_trip(toy):
    df = toy.train[["x1", "x2", "age", "cat"]]
    t = TableTransformer(seed=0).fit(df, ["x1", "x2", "age"], ["cat"])
    x2 = t.column("x2")
    assert 2 <= len(x2.means) <= 10 and min(x2.weights) > 0.005 * 0.99
    # the bimodal column has modes near both of its peaks
    assert min(abs(m + 5) for m in x2.means) < 0.5 and min(abs(m - 5) for m in x2.means) < 0.5
    enc = t.transform(df, np.random.default_rng(1))
    assert enc.shape == (len(df), t.dim) and np.abs(enc[:, [s.start for s in t.spans if s.kind == "scalar"]]).max() <= 0.99
    for s in t.spans:  # every mode / category block is one-hot
        if s.kind != "scalar":
            assert np.array_equal(enc[:, s.start:s.stop].sum(1), np.ones(len(df)))
    back = t.inverse(enc)
    # exact (float32 scalars) for values within 3.96 sigma of their mode: all of them here
    np.testing.assert_allclose(back["x1"], df["x1"], rtol=0, atol=1e-5)
    np.testing.assert_allclose(back["x2"], df["x2"], rtol=0, atol=1e-5)
    assert np.array_equal(back["age"].to_numpy(), df["age"].to_numpy())  # integer column rounded back
    assert list(back["cat"]) == list(df["cat"])
    t2 = TableTransformer.from_json(t.to_json())
    assert np.array_equal(t2.transform(df, np.random.default_rng(1)), enc)


def test_inverse_clips_scalar_and_picks_largest_mode(toy):
    t = TableTransformer(seed=0).fit(toy.train[["x2"]], ["x2"], [])
    col, (a, m) = t.column("x2"), t.spans
    row = np.zeros((1, t.dim))
    row[0, a.start], row[0, m.start + 1] = 3.0, 0.9  # scalar beyond 1 → clipped to 1
    x = t.inverse(row)["x2"].iloc[0]
    assert x == pytest.approx(col.means[1] + 4 * col.stds[1])


def test_unseen_category_is_refused_by_the_encoder(toy):
    t = TableTransformer().fit(toy.train[["cat"]], [], ["cat"])
    with pytest.raises(FairlatentError, match="'zzz'.*not in the training data"):
        t.transform(pd.DataFrame({"cat": ["a", "zzz"]}), np.random.default_rng(0))


# --- training-by-sampling -------------------------------------------------------------------------------


def _sampler(counts, log_frequency=True):
    cols = {f"c{j}": np.repeat([f"v{k}" for k in range(len(c))], c) for j, c in enumerate(counts)}
    n = max(len(v) for v in cols.values())
    df = pd.DataFrame({k: np.resize(v, n) for k, v in cols.items()})
    t = TableTransformer().fit(df, [], list(df.columns))
    enc = t.transform(df, np.random.default_rng(0))
    return ConditionalSampler.from_data(enc, t.spans, log_frequency), df


def test_training_by_sampling_frequencies_are_proportional_to_log_frequency():
    counts = [[800, 150, 49, 1], [500, 500]]
    sampler, _ = _sampler(counts)
    cond, mask, col, opt = sampler.sample_condvec(200_000, np.random.default_rng(0))
    assert np.allclose(np.bincount(col) / len(col), [0.5, 0.5], atol=0.01)  # a column chosen uniformly
    for j, c in enumerate(counts):
        want = np.log(np.asarray(c) + 1.0)
        want /= want.sum()
        got = np.bincount(opt[col == j], minlength=len(c)) / (col == j).sum()
        assert np.allclose(got, want, atol=0.01), (j, got, want)
    # the vectors are one-hot in the chosen column's block, the mask marks that column
    assert np.array_equal(cond.sum(1), np.ones(len(cond))) and np.array_equal(mask.argmax(1), col)
    assert np.array_equal(cond.argmax(1), sampler.offsets[col] + opt)
    plain, _ = _sampler(counts, log_frequency=False)
    _, _, col, opt = plain.sample_condvec(100_000, np.random.default_rng(1))
    got = np.bincount(opt[col == 0], minlength=4) / (col == 0).sum()
    assert np.allclose(got, np.asarray(counts[0]) / 1000, atol=0.01)


def test_sampled_real_rows_hold_the_requested_category():
    sampler, df = _sampler([[30, 20, 10], [40, 20]])
    g = np.random.default_rng(0)
    _, _, col, opt = sampler.sample_condvec(500, g)
    rows = sampler.sample_rows(col, opt, g)
    for c, o, r in zip(col, opt, rows):
        assert df.iloc[r, c] == f"v{o}"


# --- CTGAN parts ------------------------------------------------------------------------------------------


def test_pac_discriminator_shapes_and_penalty():
    D = CTGANDiscriminator(in_dim=7, dims=(16, 16), pac=5)
    assert D.seq[0].in_features == 35
    assert D(torch.randn(20, 7)).shape == (4, 1)
    with pytest.raises(ValueError, match="not divisible by pac=5"):
        D(torch.randn(21, 7))
    real, fake = torch.randn(20, 7), torch.randn(20, 7)
    pen = pac_gradient_penalty(D, real, fake, torch.rand(4, 1), 5)
    assert pen.ndim == 0 and pen.item() >= 0
    with pytest.raises(ValueError, match="divisible by pac"):
        CTGANConfig(batch_size=501, pac=10)


def test_penalty_is_zero_for_a_unit_slope_critic():
    # D(x) = w·x with ‖w‖ = 1 over the packed row: the gradient norm per pack is 1, the penalty 0
    D = CTGANDiscriminator(in_dim=3, dims=(), pac=2)
    with torch.no_grad():
        D.seq[0].weight.copy_(torch.tensor([[0.6, 0.0, 0.0, 0.0, 0.8, 0.0]]))
    assert pac_gradient_penalty(D, torch.randn(4, 3), torch.randn(4, 3), torch.rand(2, 1), 2).item() == pytest.approx(0, abs=1e-10)


def test_conditional_loss_by_hand(toy):
    t = TableTransformer().fit(toy.train[["x1", "cat", "s"]], ["x1"], ["cat", "s"])
    spans = t.spans
    raw = torch.randn(3, t.dim)
    cs, ss = t.category_span("cat"), t.category_span("s")
    cond = torch.zeros(3, 5)
    cond[0, 2], cond[1, 3], cond[2, 0] = 1, 1, 1  # row 0: cat=c; row 1: s=p; row 2: cat=a
    mask = torch.tensor([[1.0, 0], [0, 1], [1, 0]])
    by_hand = (-torch.log_softmax(raw[0, cs.start:cs.stop], 0)[2] - torch.log_softmax(raw[1, ss.start:ss.stop], 0)[0]
               - torch.log_softmax(raw[2, cs.start:cs.stop], 0)[0]) / 3
    assert conditional_loss(raw, cond, mask, spans).item() == pytest.approx(by_hand.item(), rel=1e-6)


# --- training, resume, sampling ----------------------------------------------------------------------------


def _interrupt(monkeypatch, cls, at):
    real = cls.train_step

    def crashing(self, step, batches):
        if step == at:
            raise KeyboardInterrupt
        return real(self, step, batches)

    monkeypatch.setattr(cls, "train_step", crashing)
    return real


@pytest.mark.parametrize("model", ["ctgan", "fairgan"])
def test_resume_is_bitwise_identical(toy, tmp_path, monkeypatch, model):
    if model == "ctgan":
        cfg, cls = CTGANConfig(**{**TINY_CTGAN, "checkpoint_every": 4}), CTGANObjective
    else:
        cfg, cls = FairGANConfig(**{**TINY_FAIRGAN, "checkpoint_every": 4}), FairGANObjective
    full = fit(toy, tmp_path / "full", cfg, progress=False)
    steps = load_checkpoint(full / "checkpoint")[2]["step"]
    assert steps >= 8
    real = _interrupt(monkeypatch, cls, at=steps // 2 + 1)  # crash after the checkpoint at steps//2 (a multiple of 4)
    with pytest.raises(KeyboardInterrupt):
        fit(toy, tmp_path / "resumed", cfg, progress=False)
    assert not (tmp_path / "resumed" / "generator.safetensors").exists()
    monkeypatch.setattr(cls, "train_step", real)
    resumed = fit(toy, tmp_path / "resumed", cfg, progress=False)
    a, b = load_checkpoint(full / "checkpoint")[0], load_checkpoint(resumed / "checkpoint")[0]
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    ga, gb = load_tensors(full / "generator.safetensors"), load_tensors(resumed / "generator.safetensors")
    assert ga.keys() == gb.keys() and all(torch.equal(ga[k], gb[k]) for k in ga)
    # it trained: the generator moved from its initialisation
    init = cls(cfg, *_init_args(toy, cfg)).G.state_dict()
    assert not torch.equal(init["out.weight"], ga["G.out.weight"])


def _init_args(toy, cfg):
    from fairlatent.tabular.synthesizer import build_objective

    obj = build_objective(toy, cfg)[0]
    if cfg.model == "ctgan":
        return obj.transformer, None, obj.sampler
    return obj.transformer, None, None, np.array([90, 90]), 0, 0


def test_resume_refuses_other_settings_or_data(toy, tmp_path, monkeypatch):
    cfg = CTGANConfig(**TINY_CTGAN)
    fit(toy, tmp_path / "r", cfg, progress=False, stop_at_step=2)
    with pytest.raises(FairlatentError, match="embedding_dim"):
        fit(toy, tmp_path / "r", cfg.model_copy(update={"embedding_dim": 4}), progress=False)
    other = toy_table(seed=5)
    with pytest.raises(FairlatentError, match="other data"):
        fit(other, tmp_path / "r", cfg, progress=False)


@pytest.fixture(scope="module")
def ctgan_run(toy, tmp_path_factory):
    return fit(toy, tmp_path_factory.mktemp("ctgan") / "run", CTGANConfig(**TINY_CTGAN), progress=False)


@pytest.fixture(scope="module")
def fairgan_run(toy, tmp_path_factory):
    return fit(toy, tmp_path_factory.mktemp("fairgan") / "run", FairGANConfig(**TINY_FAIRGAN), progress=False)


@pytest.mark.parametrize("which", ["ctgan_run", "fairgan_run"])
def test_conditional_sampling_returns_exactly_the_requested_categories(which, request, toy):
    synth = Synthesizer(request.getfixturevalue(which))
    df = synth.sample(50, {"cat": "c", "s": "u"}, seed=3)
    assert len(df) == 50 and set(df["cat"]) == {"c"} and set(df["s"]) == {"u"}
    assert list(df.columns) == toy.columns
    assert df["x2"].std() > 0  # rows differ: a distribution, not one row repeated
    again = synth.sample(50, {"cat": "c", "s": "u"}, seed=3)
    pd.testing.assert_frame_equal(df, again)  # a pure function of the seed
    free = synth.sample(300, seed=0)
    assert set(free["cat"]) <= {"a", "b", "c"} and free["s"].nunique() == 2


def test_sampling_refuses_unseen_values_and_continuous_conditions(ctgan_run):
    synth = Synthesizer(ctgan_run)
    with pytest.raises(FairlatentError, match=r"cat='zzz'.*never saw.*\['a', 'b', 'c'\]"):
        synth.sample(5, {"cat": "zzz"})
    with pytest.raises(FairlatentError, match="continuous column"):
        synth.sample(5, {"x1": "1.0"})
    with pytest.raises(FairlatentError, match="no such column"):
        synth.sample(5, {"nope": "1"})


def test_sampling_stops_with_the_acceptance_rate_when_a_combination_is_too_rare(ctgan_run):
    synth = Synthesizer(ctgan_run)
    with pytest.raises(FairlatentError, match=r"only \d+ of 1000000 rows .*acceptance"):
        synth.sample(1_000_000, {"cat": "b"}, batch_size=100, max_draws=300)


def test_an_unfinished_run_cannot_be_sampled(toy, tmp_path):
    out = fit(toy, tmp_path / "r", CTGANConfig(**TINY_CTGAN), progress=False, stop_at_step=1)
    with pytest.raises(FairlatentError, match="not finished"):
        Synthesizer(out)
    # resumed: the run record names the step this session started from (an int, not whether it resumed)
    from fairlatent.utils.io import read_json

    fit(toy, out, CTGANConfig(**TINY_CTGAN), progress=False, stop_at_step=2)
    rec = read_json(out / "config.json")
    assert (type(rec["step"]), rec["step"], rec["done"]) == (int, 1, False)


@pytest.mark.slow
def test_fairgan_second_discriminator_falls_toward_chance(tmp_path):
    """Planted: x1 ~ N(2s, 0.5) reveals s (a probe's AUC ≈ 0.99 on real rows). Trained without the fairness
    phase (λ = 0) the generated (x, y) still reveal s; with it (λ = 1), a fresh probe is near chance and D2's
    own loss ends near log 2."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    g = np.random.default_rng(0)
    n = 400
    s = g.integers(0, 2, n)
    df = pd.DataFrame({"x1": g.normal(2.0 * s, 0.5), "x2": g.normal(0, 1, n), "s": np.where(s, "p", "u")})
    df["y"] = (df["x2"] > 0).astype(int).astype(str)
    data = prepare_tables({"train": df, "test": df.iloc[:40]}, name="planted", source="planted",
                          continuous=["x1", "x2"], categorical=["s", "y"], target="y", positive="1",
                          protected=[("s", "p")])

    def probe(t):
        x, target = np.c_[t["x1"], t["x2"], t["y"] == "1"], (t["s"] == "p").to_numpy()
        h = len(t) // 2
        return roc_auc_score(target[h:], LogisticRegression().fit(x[:h], target[:h]).predict_proba(x[h:])[:, 1])

    assert probe(df) > 0.95
    base = dict(batch_size=50, plain_epochs=10, fair_epochs=10, generator_dims=(32,), discriminator_dims=(32,),
                embedding_dim=8, lr_g=2e-3, lr_d=2e-3, log_every=8)
    auc = {}
    for lam in (0.0, 1.0):
        run = fit(data, tmp_path / f"l{lam}", FairGANConfig(**base, fairness_weight=lam), progress=False)
        auc[lam] = probe(Synthesizer(run).sample(2000, seed=1))
    log = pd.read_csv(tmp_path / "l1.0" / "log.csv")
    assert auc[0.0] > 0.85, auc  # s is recoverable from what the plain GAN generates
    assert auc[1.0] < 0.75 and auc[1.0] < auc[0.0] - 0.15, auc
    assert (log["loss_d2"].iloc[:8] == 0).all()  # phase 1: no fairness discriminator
    assert log["loss_d2"].iloc[-3:].mean() > 0.6  # D2's cross-entropy near chance, log 2 = 0.693


@pytest.mark.slow
def test_fairgan_demographic_parity_penalty_removes_the_planted_risk_difference(tmp_path):
    """Planted: P(y=1 | s=p) = 0.8, P(y=1 | s=u) = 0.2 (risk difference 0.6), and x1 ~ N(2s, 0.5) reveals s.
    Without the fairness phase the generated rows keep most of the gap; with the TabFairGAN penalty the gap
    of the generated rows falls below a third of it, while x1 still follows s (only ŷ is asked to be fair)."""
    from fairlatent.tabular.evaluate import risk_difference

    g = np.random.default_rng(1)
    n = 600
    s = g.integers(0, 2, n)
    df = pd.DataFrame({"x1": g.normal(2.0 * s, 0.5), "s": np.where(s, "p", "u"),
                       "y": np.where(g.random(n) < 0.2 + 0.6 * s, "1", "0")})
    data = prepare_tables({"train": df, "test": df.iloc[:40]}, name="planted", source="planted",
                          continuous=["x1"], categorical=["s", "y"], target="y", positive="1", protected=[("s", "p")])
    assert risk_difference(data, df) > 0.5
    base = dict(batch_size=50, plain_epochs=10, fair_epochs=10, generator_dims=(32,), discriminator_dims=(32,),
                embedding_dim=8, lr_g=2e-3, lr_d=2e-3, log_every=12, fair_loss="demographic_parity")
    rd, x1_gap = {}, {}
    for lam in (0.0, 2.0):
        run = fit(data, tmp_path / f"l{lam}", FairGANConfig(**base, fairness_weight=lam), progress=False)
        syn = Synthesizer(run).sample(3000, seed=1)
        rd[lam] = risk_difference(data, syn)
        x1_gap[lam] = syn.loc[syn["s"] == "p", "x1"].mean() - syn.loc[syn["s"] == "u", "x1"].mean()
    assert rd[0.0] > 0.35, rd
    assert abs(rd[2.0]) < 0.2 and abs(rd[2.0]) < rd[0.0] / 3, rd
    assert x1_gap[2.0] > 1.0, x1_gap  # the features still carry s: the penalty is on ŷ alone
    log = pd.read_csv(tmp_path / "l2.0" / "log.csv")
    assert (log["loss_d2"] == 0).all()  # no fairness discriminator in this mode


def test_fairgan_on_a_chosen_many_valued_protected_attribute(tmp_path):
    g = np.random.default_rng(0)
    n = 160
    df = pd.DataFrame({"x": g.normal(size=n), "r": g.choice(["a", "b", "c"], n), "sex": g.choice(["f", "m"], n),
                       "y": g.choice(["0", "1"], n)})
    data = prepare_tables({"train": df, "test": df.iloc[:20]}, name="t", source="t", continuous=["x"],
                          categorical=["r", "sex", "y"], target="y", positive="1",
                          protected=[("sex", "m"), ("r", "b")])
    run = fit(data, tmp_path / "run", FairGANConfig(**{**TINY_FAIRGAN, "protected": "r"}), progress=False)
    synth = Synthesizer(run)
    assert synth.state["s_column"] == "r" and synth.state["s_values"] == ["a", "b", "c"]
    assert synth.objective.G.body[0].fc.in_features == 8 + 3  # z ⊕ one-hot of all three values
    rows = synth.sample(30, {"r": "c", "sex": "f"})
    assert set(rows["r"]) == {"c"} and set(rows["sex"]) == {"f"}
    with pytest.raises(FairlatentError, match="'nope' is not a protected attribute"):
        fit(data, tmp_path / "run2", FairGANConfig(**{**TINY_FAIRGAN, "protected": "nope"}), progress=False)
