"""Attribute classifier: architecture, training (concatenation, weights, resume, determinism), handle, scores, CLI."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file
from sklearn.metrics import average_precision_score

from fairlatent.data.dataset import load_dataset, write_dataset
from fairlatent.errors import FairlatentError
from fairlatent.models.classifier import AttributeClassifier, load_classifier, score_dataset
from fairlatent.train.classifier import (
    ClassifierConfig,
    collect_training_rows,
    reweighting_weights,
    train_classifier,
)
from fairlatent.models.thresholds import calibrated_threshold, f1_best_threshold

SIZE = 16
FAST = dict(width=4, depth=1, epochs=2, batch_size=32, lr=3e-3)


def _make_set(path, n, seed, *, squares=True, n_val=None, all_train=False):
    """Dark noise images; ``square`` = a bright 5×5 square somewhere (when ``squares``), ``noise`` = coin flip.

    With ``squares=False`` no image has a square and every ``square`` label is 0: such a set alone cannot
    teach the attribute.
    """
    r = np.random.default_rng(seed)
    imgs = r.integers(0, 90, size=(n, SIZE, SIZE, 3), dtype=np.uint8)
    sq = (r.random(n) < 0.5) if squares else np.zeros(n, bool)
    for i in np.flatnonzero(sq):
        y, x = r.integers(0, SIZE - 5, 2)
        imgs[i, y : y + 5, x : x + 5] = 250
    n_val = n // 3 if n_val is None else n_val
    split = np.array(["train"] * n) if all_train else np.where(np.arange(n) < n - n_val, "train", "val")
    table = pd.DataFrame({
        "id": [f"s{seed}_{i}" for i in range(n)], "split": split,
        "square": sq.astype(int), "noise": (r.random(n) < 0.5).astype(int),
    })
    return write_dataset(path, imgs, table, {"source": "test"})


@pytest.fixture(scope="module")
def easy(tmp_path_factory):
    return _make_set(tmp_path_factory.mktemp("data") / "easy", 360, seed=1)


@pytest.fixture(scope="module")
def trained(easy, tmp_path_factory):
    cfg = ClassifierConfig(**{**FAST, "epochs": 3}, seed=0)
    return train_classifier([easy], ["square", "noise"], tmp_path_factory.mktemp("m") / "clf", cfg, progress=False)


# --- architecture -------------------------------------------------------------------------------------


@pytest.mark.parametrize("size,stem_out", [(32, 32), (64, 32), (128, 32), (16, 16)])
def test_architecture_shapes_and_stem_downsampling(size, stem_out):
    m = AttributeClassifier(n_outputs=5, image_size=size, width=8, depth=2, stages=3).eval()
    x = torch.zeros(2, 3, size, size)
    assert m.stem(x).shape[-1] == stem_out  # the first stage works at 32 px or less
    assert m(x).shape == (2, 5)
    assert m.features(x).shape == (2, m.feature_dim) and m.feature_dim == 32
    assert len(m.blocks) == 6


# --- training -----------------------------------------------------------------------------------------


def test_loss_decreases_and_easy_attribute_is_learned(trained, easy):
    h = load_classifier(trained)
    cfg = h.config
    losses = [e["train_loss"] for e in cfg["history"]]
    assert losses[-1] < losses[0]
    assert cfg["val_metrics"]["square"]["ap"] > 0.97
    assert cfg["val_metrics"]["noise"]["ap"] < 0.8  # coin-flip labels stay unlearnable
    # best epoch = argmax of the recorded mean validation AP
    means = [e["val_mean_ap"] for e in cfg["history"]]
    assert cfg["best_epoch"] == int(np.argmax(means)) + 1


def test_handle_reproduces_saved_thresholds_and_metrics(trained, easy):
    """Scores from the loaded handle equal those the trainer used: recomputed thresholds/AP match."""
    h = load_classifier(trained)
    data = load_dataset(easy)
    idx = data.split_indices("val")
    scores = h.predict_scores(np.asarray(data.images[idx]))  # the trainer's batching: bitwise equal scores
    assert scores.dtype == np.float32 and scores.shape == (len(idx), 2)
    np.testing.assert_allclose(h.predict_scores(np.asarray(data.images[idx]), batch_size=7), scores, atol=1e-6)
    for a, name in enumerate(h.attributes):
        y = data.labels(name, idx)
        assert h.thresholds[name]["calibrated"] == calibrated_threshold(y, scores[:, a])
        assert h.thresholds[name]["f1"] == f1_best_threshold(y, scores[:, a])
        assert h.config["val_metrics"][name]["ap"] == pytest.approx(average_precision_score(y, scores[:, a]), abs=1e-9)
    logits = h.predict_logits(np.asarray(data.images[idx]))
    np.testing.assert_allclose(torch.sigmoid(torch.from_numpy(logits)).numpy(), scores, rtol=1e-6, atol=1e-7)
    feats = h.features(np.asarray(data.images[idx]))
    assert feats.shape == (len(idx), h.module.feature_dim) and feats.dtype == np.float32
    pred = h.predict(np.asarray(data.images[idx]))
    assert (pred == (scores > np.array([h.thresholds[a]["calibrated"] for a in h.attributes]))).all()


def test_concatenation_uses_the_second_set(tmp_path):
    """Set A never shows a square (all labels 0); only set B can teach it, so high AP proves B was used."""
    a = _make_set(tmp_path / "a", 240, seed=2, squares=False)
    b = _make_set(tmp_path / "b", 200, seed=3, n_val=0, all_train=True)
    val = _make_set(tmp_path / "val", 120, seed=4)
    rows = collect_training_rows([load_dataset(a), load_dataset(b)], ["square"], "train", None, None)
    assert len(rows) == 160 + 200 and set(np.unique(rows.source)) == {0, 1}
    img = rows.gather(np.array([0, 160, 161]))
    np.testing.assert_array_equal(img[1], load_dataset(b).images[0])
    np.testing.assert_array_equal(img[0], load_dataset(a).images[0])
    out = train_classifier([a, b], ["square"], tmp_path / "m", ClassifierConfig(**FAST), val_set=val, progress=False)
    assert json.loads((out / "config.json").read_text())["val_metrics"]["square"]["ap"] > 0.95


def test_label_overrides_by_id_and_by_position(easy):
    data = load_dataset(easy)
    idx = data.split_indices("train")
    ids = data.ids[idx]
    soft = np.linspace(0, 1, len(idx))
    by_id = pd.DataFrame({"id": ids[::-1], "square": soft[::-1], "noise": 1 - soft[::-1]})  # shuffled order
    rows = collect_training_rows([data], ["square", "noise"], "train", None, [by_id])
    np.testing.assert_allclose(rows.labels[:, 0], soft.astype(np.float32))
    np.testing.assert_allclose(rows.labels[:, 1], (1 - soft).astype(np.float32))
    aligned = pd.DataFrame({"square": soft, "noise": soft})
    np.testing.assert_allclose(collect_training_rows([data], ["square"], "train", None, [aligned]).labels[:, 0], soft.astype(np.float32))
    with pytest.raises(FairlatentError, match=r"no row for id"):
        collect_training_rows([data], ["square"], "train", None, [by_id.iloc[1:]])
    with pytest.raises(FairlatentError, match=r"column 'square': value 2.0 is not in \[0, 1\]"):
        collect_training_rows([data], ["square"], "train", None, [aligned.assign(square=2.0)])
    with pytest.raises(FairlatentError, match="no column 'Hat'"):
        collect_training_rows([data], ["Hat"], "train", None, [aligned])


def test_zero_weight_on_positives_learns_all_negative(easy, trained, tmp_path):
    data = load_dataset(easy)
    idx = data.split_indices("train")
    w = (data.labels("square", idx) == 0).astype(float)  # positives weigh nothing
    out = train_classifier([easy], ["square", "noise"], tmp_path / "w", ClassifierConfig(**{**FAST, "epochs": 3}),
                           sample_weights=[w], progress=False)
    vi = data.split_indices("val")
    pos = data.labels("square", vi) == 1
    weighted = load_classifier(out).predict_scores(np.asarray(data.images[vi]))[:, 0]
    plain = load_classifier(trained).predict_scores(np.asarray(data.images[vi]))[:, 0]
    # Same seed and schedule; only the weights differ. Told only "negative", the weighted model scores the
    # positives lower than the plain one does (and below its negatives' level of ~0.45 at this early stage).
    assert weighted[pos].mean() < 0.4
    assert weighted[pos].mean() < plain[pos].mean() - 0.1


def test_resume_equals_uninterrupted_and_seed_determinism(easy, trained, tmp_path):
    """Interrupt after epochs 1 and 2, resume: bitwise the uninterrupted ``trained`` model (same config)."""
    from fairlatent.train.checkpoint import load_checkpoint

    cfg = ClassifierConfig(**{**FAST, "epochs": 3}, seed=0)
    attrs = ["square", "noise"]
    part = tmp_path / "part"
    train_classifier([easy], attrs, part, cfg, progress=False, stop_after_epoch=1)
    assert (part / "checkpoint").is_dir() and not (part / "config.json").exists()
    with pytest.raises(FairlatentError, match="interrupted"):
        load_classifier(part)
    after_one = load_checkpoint(part / "checkpoint")[0]
    train_classifier([easy], attrs, part, cfg, progress=False, stop_after_epoch=2)
    train_classifier([easy], attrs, part, cfg, progress=False)  # resumes at epoch 3
    assert not (part / "checkpoint").exists()
    wa, wb = load_file(str(trained / "model.safetensors")), load_file(str(part / "model.safetensors"))
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    ca, cb = (json.loads((p / "config.json").read_text()) for p in (trained, part))
    assert ca["history"] == cb["history"] and ca["thresholds"] == cb["thresholds"]
    # another seed → other weights after the same epoch
    other = tmp_path / "other"
    train_classifier([easy], attrs, other, cfg.model_copy(update={"seed": 1}), progress=False, stop_after_epoch=1)
    other_one = load_checkpoint(other / "checkpoint")[0]
    assert not torch.equal(after_one["model.head.weight"], other_one["model.head.weight"])
    # an identical call on a finished directory returns it; a different one is refused
    assert train_classifier([easy], attrs, part, cfg, progress=False) == part
    with pytest.raises(FairlatentError, match="different trained classifier"):
        train_classifier([easy], ["square"], part, cfg, progress=False)
    with pytest.raises(FairlatentError, match="different training run"):
        train_classifier([easy], ["square"], other, cfg, progress=False)


def test_val_weights_drive_the_recorded_ap(easy, tmp_path):
    data = load_dataset(easy)
    vi = data.split_indices("val")
    vw = np.where(data.labels("noise", vi) == 1, 3.0, 0.5)
    out = train_classifier([easy], ["square", "noise"], tmp_path / "vw", ClassifierConfig(**{**FAST, "epochs": 1}),
                           val_weights=vw, progress=False)
    h = load_classifier(out)
    scores = h.predict_scores(np.asarray(data.images[vi]))
    best = h.config["history"][h.config["best_epoch"] - 1]
    for a, name in enumerate(h.attributes):
        y = data.labels(name, vi)
        assert best["val_ap"][name] == pytest.approx(average_precision_score(y, scores[:, a], sample_weight=vw), abs=1e-9)
    unweighted = average_precision_score(data.labels("noise", vi), scores[:, 1])
    assert best["val_ap"]["noise"] != pytest.approx(unweighted, abs=1e-6)


# --- reweighting --------------------------------------------------------------------------------------


def test_reweighting_makes_target_and_protected_independent():
    r = np.random.default_rng(0)
    t = (r.random(1000) < 0.4).astype(int)
    g = np.where(r.random(1000) < 0.85, t, 1 - t)  # strongly correlated
    w = reweighting_weights(t, g)
    joint = np.array([[w[(t == a) & (g == b)].sum() for b in (0, 1)] for a in (0, 1)]) / w.sum()
    np.testing.assert_allclose(joint, np.outer(joint.sum(1), joint.sum(0)), atol=1e-12)
    np.testing.assert_allclose(joint.sum(0), [0.5, 0.5])
    np.testing.assert_allclose(joint.sum(1), [np.mean(t == 0), np.mean(t == 1)])  # class balance kept
    assert w.sum() == pytest.approx(len(t))
    n1, n11 = (t == 1).sum(), ((t == 1) & (g == 1)).sum()
    assert w[(t == 1) & (g == 1)][0] == pytest.approx(n1 / (2 * n11))
    with pytest.raises(FairlatentError, match="target=1 and protected=0"):
        reweighting_weights([1, 1, 0, 0], [1, 1, 0, 1])
    with pytest.raises(FairlatentError, match="not 0 or 1"):
        reweighting_weights([1, 2], [0, 1])


# --- scores and errors --------------------------------------------------------------------------------


def test_score_dataset_csv_round_trip(trained, easy, tmp_path):
    out = score_dataset(trained, easy, tmp_path / "scores.csv")
    table = pd.read_csv(out, dtype={"id": str})
    data = load_dataset(easy)
    assert list(table.columns) == ["id", "square", "noise"]
    assert (table["id"].to_numpy() == data.ids).all()
    expect = load_classifier(trained).predict_scores(np.asarray(data.images))
    np.testing.assert_array_equal(table[["square", "noise"]].to_numpy().astype(np.float32), expect)
    val = pd.read_csv(score_dataset(trained, easy, tmp_path / "val.csv", split="val"), dtype={"id": str})
    assert len(val) == len(data.split_indices("val"))


def test_errors(trained, easy, tmp_path):
    h = load_classifier(trained)
    with pytest.raises(FairlatentError, match=r"expects 16×16 images, got 32×32"):
        h.predict_scores(np.zeros((2, 32, 32, 3), np.uint8))
    with pytest.raises(FairlatentError, match="uint8"):
        h.predict_scores(np.zeros((2, 16, 16, 3), np.float32))
    with pytest.raises(FairlatentError, match=r"no attribute 'Smiling'; attributes are: square, noise"):
        train_classifier([easy], ["Smiling"], tmp_path / "x", ClassifierConfig(**FAST), progress=False)
    with pytest.raises(FairlatentError, match="sample_weights\\[0\\]"):
        train_classifier([easy], ["square"], tmp_path / "x", ClassifierConfig(**FAST), sample_weights=[np.ones(3)], progress=False)
    with pytest.raises(FairlatentError, match="has only negatives"):
        train_classifier([easy], ["square"], tmp_path / "x", ClassifierConfig(**FAST),
                         val_set=_make_set(tmp_path / "nosq", 30, seed=9, squares=False), progress=False)
    # truncated weights
    bad = tmp_path / "trunc"
    bad.mkdir()
    (bad / "config.json").write_text((trained / "config.json").read_text())
    (bad / "model.safetensors").write_bytes((trained / "model.safetensors").read_bytes()[:500])
    with pytest.raises(FairlatentError, match="truncated"):
        load_classifier(bad)
    # config that does not match the weights
    cfg = json.loads((trained / "config.json").read_text())
    cfg["arch"]["width"] = 8
    (bad / "model.safetensors").write_bytes((trained / "model.safetensors").read_bytes())
    (bad / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(FairlatentError, match="do not fit the AttributeClassifier"):
        load_classifier(bad)
    with pytest.raises(FairlatentError, match="not a classifier directory"):
        load_classifier(tmp_path / "nope")


def test_cli_train_reweight_and_score(easy, tmp_path):
    from fairlatent.cli import main

    out = tmp_path / "cli_model"
    main_args = ["train-classifier", "--data", str(easy), "--attributes", "square", "--out", str(out),
                 "--weights", "reweight", "--target", "square", "--protected", "noise", "--epochs", "1",
                 "--width", "4", "--batch-size", "64", "--quiet"]
    with pytest.raises(SystemExit) as exc:
        main(main_args)
    assert exc.value.code == 0
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["sample_weighted"] and cfg["attributes"] == ["square"]
    with pytest.raises(SystemExit) as exc:
        main(["score", "--model", str(out), "--data", str(easy), "--out", str(tmp_path / "s.csv")])
    assert exc.value.code == 0
    assert list(pd.read_csv(tmp_path / "s.csv").columns) == ["id", "square"]
    with pytest.raises(SystemExit) as exc:
        main(["train-classifier", "--data", str(easy), "--attributes", "square,Hat", "--out", str(tmp_path / "y")])
    assert exc.value.code == 2


def test_noise_augmentation_draws_per_image_sigmas_and_leaves_the_default_untouched():
    """noise_std: each image's noise has std ~ U(0, noise_std) / 127.5 in model units, the same noise for a
    seed and step, sliced per rank from the global batch; the default (0) keeps the old cache key."""
    from types import SimpleNamespace

    from fairlatent.train.classifier import ClassifierObjective

    cfg = ClassifierConfig(noise_std=16.0, seed=3, channels_last=False)
    obj = SimpleNamespace(config=cfg, channels_last=False)
    x = torch.zeros(400, 3, 16, 16)
    whole = SimpleNamespace(part=slice(0, 400), global_size=400)
    out = ClassifierObjective._add_noise(obj, x.clone(), 7, whole)
    sd = out.flatten(1).std(dim=1) * 127.5  # per image, in pixel units
    assert float(sd.max()) <= 16.0 * 1.15 and float(sd.min()) < 2.0  # U(0, 16): some nearly clean images
    assert abs(float(sd.mean()) - 8.0) < 1.0  # E[U(0, 16)] = 8
    again = ClassifierObjective._add_noise(obj, x.clone(), 7, whole)
    assert torch.equal(out, again)  # seeded by (seed, step)
    assert not torch.equal(out, ClassifierObjective._add_noise(obj, x.clone(), 8, whole))
    second_half = ClassifierObjective._add_noise(obj, x[200:].clone(), 7, SimpleNamespace(part=slice(200, 400),
                                                                                          global_size=400))
    assert torch.equal(second_half, out[200:])  # a rank's part of the global batch's noise
    clipped = ClassifierObjective._add_noise(obj, torch.ones(8, 3, 4, 4), 7, SimpleNamespace(part=slice(0, 8),
                                                                                              global_size=8))
    assert float(clipped.max()) <= 1.0
    assert ClassifierConfig().cache_key() == ClassifierConfig(noise_std=0.0).cache_key()
    assert ClassifierConfig().cache_key() != ClassifierConfig(noise_std=8.0).cache_key()
    assert "noise_std" not in json.dumps(ClassifierConfig().cache_key())


def test_domain_heads_train_each_image_through_its_group_and_score_by_the_mean():
    from fairlatent.models.classifier import build_classifier
    from fairlatent.train.classifier import weighted_bce

    torch.manual_seed(0)
    model = AttributeClassifier(2, SIZE, width=4, domains=2).eval()
    x = torch.rand(6, 3, SIZE, SIZE) * 2 - 1
    per = model.domain_logits(x)
    assert per.shape == (6, 2, 2)
    torch.testing.assert_close(model(x), per.mean(dim=1))  # inference: the mean of the groups' heads
    d = torch.tensor([0, 1, 1, 0, 1, 0])
    torch.testing.assert_close(model(x, d), per[torch.arange(6), d])
    assert model.arch()["domains"] == 2 and "domains" not in AttributeClassifier(2, SIZE, width=4).arch()
    assert build_classifier(model.arch()).domains == 2
    # a batch of group-0 images moves group 0's head only
    model.train()
    weighted_bce(model, x, torch.ones(6, 2), None, domain=torch.zeros(6, dtype=torch.long)).backward()
    grad = model.head.weight.grad.view(2, 2, -1)  # (domain, attribute, feature), the head's row layout
    assert grad[0].abs().sum() > 0 and grad[1].abs().sum() == 0


def test_domain_independent_training_end_to_end_and_its_errors(easy, tmp_path):
    cfg = ClassifierConfig(**{**FAST, "epochs": 3}, seed=0)
    out = train_classifier([easy], ["square"], tmp_path / "di", cfg, domain_attribute="noise", progress=False)
    h = load_classifier(out)
    assert h.module.domains == 2 and h.config["domain_attribute"] == "noise"
    ds = load_dataset(easy)
    va = ds.split_indices("val")
    images = np.asarray(ds.images[va])
    s = h.predict_scores(images)[:, 0]
    assert average_precision_score(ds.labels("square", va), s) > 0.9
    with torch.no_grad():  # the handle scores with the mean of the two heads' logits
        x = (torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1).to(h.device)
        want = torch.sigmoid(h.module.domain_logits(x).mean(dim=1))[:, 0].cpu().numpy()
    np.testing.assert_allclose(s, want, atol=1e-5)
    # the same call without domains is another training (its fingerprint differs)
    with pytest.raises(FairlatentError, match="already holds a different trained classifier"):
        train_classifier([easy], ["square"], out, cfg, progress=False)
    table = ds.table.copy()
    table["one_group"] = 1
    bad = write_dataset(tmp_path / "bad", np.asarray(ds.images), table, {"source": "test"})
    with pytest.raises(FairlatentError, match=r"bad: no attribute 'nothing'; attributes are: square, noise, one_group"):
        train_classifier([bad], ["square"], tmp_path / "m0", cfg, domain_attribute="nothing", progress=False)
    with pytest.raises(FairlatentError, match="no training row has one_group = 0"):
        train_classifier([bad], ["square"], tmp_path / "m1", cfg, domain_attribute="one_group", progress=False)


def test_discriminative_head_trains_on_each_images_cell_and_scores_with_the_group_summed_out():
    """Domain-discriminative training (Wang et al. 2020): a softmax over the (value, group) cells of each
    attribute; the loss is torch's cross-entropy of the image's own cell, inference P(1) = Σ_d P(1, d)."""
    import torch.nn.functional as F

    from fairlatent.models.classifier import build_classifier
    from fairlatent.train.classifier import weighted_bce

    torch.manual_seed(0)
    model = AttributeClassifier(2, SIZE, width=4, domains=2, domain_head="discriminative").eval()
    x = torch.rand(6, 3, SIZE, SIZE) * 2 - 1
    cells = model.cell_logits(x)
    assert cells.shape == (6, 2, 2, 2)  # [n, value, group, attribute]
    for a in range(2):  # the cells' probabilities by an explicit softmax over the four cells of attribute a
        p = torch.softmax(cells[..., a].reshape(6, 4), dim=1).view(6, 2, 2)
        torch.testing.assert_close(torch.sigmoid(model(x)[:, a]), p[:, 1].sum(dim=1))
    torch.testing.assert_close(model(x, torch.zeros(6, dtype=torch.long)), cells)
    # the loss: the mean over attributes of the cross-entropy of cell (y, d), index y·2 + d in the flat softmax
    y = torch.tensor([[1, 0], [0, 0], [1, 1], [0, 1], [1, 0], [0, 1]], dtype=torch.float32)
    d = torch.tensor([0, 1, 1, 0, 1, 0])
    want = torch.stack([F.cross_entropy(cells[..., a].reshape(6, 4), (y[:, a].long() * 2 + d), reduction="none")
                        for a in range(2)], dim=1).mean(dim=1)
    w = torch.tensor([1.0, 2.0, 0.0, 0.5, 1.0, 3.0])
    torch.testing.assert_close(weighted_bce(model, x, y, w, domain=d), (want * w).mean())
    torch.testing.assert_close(weighted_bce(model, x, y, None, reduction="sum", domain=d), want.sum())
    # a soft label mixes the two cells of the image's group
    soft = torch.full((6, 2), 0.25)
    logp = F.log_softmax(cells.flatten(1, 2), dim=1).view_as(cells)[torch.arange(6), :, d]
    torch.testing.assert_close(weighted_bce(model, x, soft, None, domain=d),
                               -(0.25 * logp[:, 1] + 0.75 * logp[:, 0]).mean(dim=1).mean())
    assert model.arch()["domain_head"] == "discriminative"
    assert "domain_head" not in AttributeClassifier(2, SIZE, width=4, domains=2).arch()
    rebuilt = build_classifier(model.arch())
    assert rebuilt.discriminative and rebuilt.head.out_features == 2 * 2 * 2
    with pytest.raises(FairlatentError, match="cell_logits: only a discriminative head"):
        AttributeClassifier(2, SIZE, width=4, domains=2).cell_logits(x)
    with pytest.raises(FairlatentError, match="domain_head must be one of independent, discriminative, got 'both'"):
        AttributeClassifier(2, SIZE, width=4, domains=2, domain_head="both")
    with pytest.raises(FairlatentError, match="needs domains ≥ 2, got 1"):
        AttributeClassifier(2, SIZE, width=4, domain_head="discriminative")


def test_domain_discriminative_training_end_to_end_and_its_errors(easy, tmp_path):
    cfg = ClassifierConfig(**{**FAST, "epochs": 3}, seed=0)
    cfg6 = ClassifierConfig(**{**FAST, "epochs": 6}, seed=0)  # four cells to learn, not one logit: more epochs
    out = train_classifier([easy], ["square"], tmp_path / "dd", cfg6, domain_attribute="noise",
                           domain_head="discriminative", progress=False)
    h = load_classifier(out)
    assert h.module.discriminative and h.config["domain_head"] == "discriminative"
    ds = load_dataset(easy)
    va = ds.split_indices("val")
    images = np.asarray(ds.images[va])
    s = h.predict_scores(images)[:, 0]
    assert average_precision_score(ds.labels("square", va), s) > 0.9
    with torch.no_grad():  # the handle scores P(square) as the two square cells' probability
        x = (torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1).to(h.device)
        p = torch.softmax(h.module.cell_logits(x)[..., 0].reshape(len(x), 4), dim=1).cpu()
    np.testing.assert_allclose(s, (p[:, 2] + p[:, 3]).numpy(), atol=1e-5)
    # independent heads in the same folder are another training (the fingerprint names the head)
    with pytest.raises(FairlatentError, match="already holds a different trained classifier"):
        train_classifier([easy], ["square"], out, cfg6, domain_attribute="noise", progress=False)
    with pytest.raises(FairlatentError, match="domain_head 'discriminative' needs a domain_attribute"):
        train_classifier([easy], ["square"], tmp_path / "m0", cfg, domain_head="discriminative", progress=False)
    with pytest.raises(FairlatentError, match="domain_head must be one of independent, discriminative, got 'cells'"):
        train_classifier([easy], ["square"], tmp_path / "m1", cfg, domain_attribute="noise", domain_head="cells",
                         progress=False)
    assert not (tmp_path / "m0").exists() and not (tmp_path / "m1").exists()


def test_narrow_models_train_in_nchw_on_cpu_where_onednn_channels_last_corrupts_memory(easy, tmp_path, capsys):
    """A ResNet narrower than 8 channels has strided 1×1 shortcuts with under 8 input channels, whose
    channels_last weight gradient crashes oneDNN's AVX2 kernel (fairlatent.train.memory_format): such a model
    trains in NCHW on CPU, bitwise as with ``channels_last = false``, and says so; wider ones keep NHWC."""
    from fairlatent.train.memory_format import channels_last_trainable, faulty_onednn_convolutions

    narrow, wide = AttributeClassifier(2, SIZE, width=4), AttributeClassifier(2, SIZE, width=8)
    assert faulty_onednn_convolutions(narrow) == ["blocks.1.shortcut.0"]
    assert faulty_onednn_convolutions(wide) == []
    assert faulty_onednn_convolutions(AttributeClassifier(2, SIZE, width=4, stages=1)) == []  # no downsampling
    assert not channels_last_trainable(narrow, "cpu") and channels_last_trainable(narrow, "meta")
    assert channels_last_trainable(wide, "cpu")
    base = ClassifierConfig(**{**FAST, "epochs": 1, "width": 4}, seed=0, device="cpu")  # a CPU rule, also beside a GPU
    runs = {cl: train_classifier([easy], ["square"], tmp_path / str(cl), base.model_copy(update={"channels_last": cl}),
                                 progress=cl) for cl in (True, False)}  # fmt: skip
    assert "training in NCHW, not channels_last" in capsys.readouterr().out
    wa, wb = (load_file(str(runs[cl] / "model.safetensors")) for cl in (True, False))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
