"""``fairlatent explain`` end to end on a tiny ToyFaces set and classifier, the audit's numbers, and bad input."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from fairlatent.data.dataset import load_dataset, write_dataset
from fairlatent.train.classifier import ClassifierConfig, train_classifier


@pytest.fixture(scope="module")
def tiny_model(toyfaces_small, tmp_path_factory):
    cfg = ClassifierConfig(width=8, epochs=2, batch_size=32, lr=3e-3, seed=0)
    return train_classifier([toyfaces_small], ["Wearing_Hat", "Eyeglasses"], tmp_path_factory.mktemp("m") / "clf", cfg,
                            progress=False)


@pytest.fixture(scope="module")
def audit(toyfaces_small, tiny_model):
    from fairlatent.explain import audit_classifiers

    return audit_classifiers({"base": tiny_model}, toyfaces_small, target="Wearing_Hat", protected="Eyeglasses",
                             quantile=0.02, n_boot=40)


def test_cli_writes_table_summary_and_page(cli, toyfaces_small, tiny_model, tmp_path):
    out = tmp_path / "explain"
    res = cli(["explain", "--model", tiny_model, "--model", f"<b>twin</b>={tiny_model}", "--data", toyfaces_small,
               "--out", out, "--quantile", "0.02", "--n-boot", "30", "--protected", "Eyeglasses", "--target", "Wearing_Hat"])
    assert res.code == 0, res
    units = pd.read_csv(out / "units.csv")
    summary = json.loads((out / "summary.json").read_text())
    assert set(units["model"]) == {"clf", "<b>twin</b>"}
    assert len(units) == 2 * 32  # width 8 → last stage 32 units, per model
    assert summary["protected_concepts"] == ["Eyeglasses", "glasses"]
    clf = summary["models"]["clf"]
    assert clf["layer"] == "blocks.2" and clf["units"] == 32
    assert sorted(units.loc[(units.model == "clf") & units.protected_unit, "unit"]) == clf["protected_units"]
    assert set(clf["metrics"]) == {"intact", "ablated", "control"} and set(clf["metrics"]["intact"]) == {"AP", "DEO", "BA"}
    # the two entries are the same network: same explanations
    a, b = (units[units.model == m].reset_index(drop=True) for m in ("clf", "<b>twin</b>"))
    assert a["formula"].equals(b["formula"]) and a["iou"].equals(b["iou"])
    page = (out / "explain.html").read_text()
    assert "&lt;b&gt;twin&lt;/b&gt;" in page and "<b>twin</b>" not in page
    assert page.count("data:image/png;base64,") >= 2
    assert "clf: layer blocks.2" in res.out


def test_audit_numbers_are_consistent(audit, toyfaces_small):
    a = audit.audits["base"]
    d = a.dissection
    names = d.concepts.names
    for u in a.protected_units:
        e = d.explanations[u]
        assert e.iou > 0.04 and {"Eyeglasses", "glasses"} & {names[k] for k in e.formula.concepts()}
    table = a.unit_table()
    assert table["protected_unit"].sum() == len(a.protected_units)
    assert (table.loc[table.protected_unit, "involves_protected"]).all()
    summary = audit.to_json()
    json.dumps(summary, allow_nan=False, default=str)  # serialisable
    assert summary["models"]["base"]["protected_share"] == len(a.protected_units) / d.units
    assert not set(a.control_units) & set(a.protected_units) and len(a.control_units) == len(a.protected_units)


def test_contribution_is_the_exact_logit_drop_at_the_last_stage(audit, toyfaces_small, tiny_model):
    """At the last stage (average pool + linear head) gradient × activation is exactly what zeroing a unit
    removes from the target logit: sum of the zeroed units' contributions = logit(intact) − logit(zeroed)."""
    from fairlatent.explain.activations import capturing, image_batches, zeroing_units
    from fairlatent.explain.audit import target_contributions
    from fairlatent.models.classifier import load_classifier

    h = load_classifier(tiny_model)
    layer = h.module.blocks[2]
    data = load_dataset(toyfaces_small)
    idx = data.split_indices("test")[:40]
    per_image = target_contributions(h, layer, data.images, idx, 0, 16)
    units = [1, 5, 9]
    with torch.inference_mode():
        x = next(image_batches(data.images, idx, 40, "cpu"))[1]
        with capturing(layer) as store:
            intact = h.module(x)[:, 0]
        with zeroing_units(layer, units):
            zeroed = h.module(x)[:, 0]
    np.testing.assert_allclose((intact - zeroed).numpy(), per_image[:, units].sum(1), rtol=1e-4, atol=1e-5)
    w = h.module.head.weight[0].detach()
    np.testing.assert_allclose(per_image, (store[0].mean(dim=(2, 3)) * w).numpy(), rtol=1e-4, atol=1e-6)


def test_small_batches_give_the_same_dissection(toyfaces_small, tiny_model):
    from fairlatent.explain.concepts import dataset_concepts
    from fairlatent.explain.dissect import dissect
    from fairlatent.models.classifier import load_classifier

    h = load_classifier(tiny_model)
    data = load_dataset(toyfaces_small)
    c = dataset_concepts(data, np.arange(200))
    big = dissect(h.module, data.images, c, quantile=0.02, batch_size=200)
    small = dissect(h.module, data.images, c, quantile=0.02, batch_size=7)
    assert big.thresholds.tolist() == small.thresholds.tolist()
    pd.testing.assert_frame_equal(big.table(), small.table())


def test_bad_input_is_one_clear_line(cli, toyfaces_small, tiny_model, tmp_path):
    base = ["explain", "--model", tiny_model, "--data", toyfaces_small, "--n-boot", "10"]
    cli.user_error(base + ["--out", tmp_path / "a", "--layer", "blocks.9"], "unknown layer 'blocks.9'", "blocks.2",
                   "blocks.1.conv2")
    cli.user_error(base + ["--out", tmp_path / "b", "--protected", "Unicorn"], "unknown protected concept 'Unicorn'",
                   "glasses", "Eyeglasses")
    cli.user_error(base + ["--out", tmp_path / "c", "--target", "Smiling"], "has no attribute 'Smiling'",
                   "Wearing_Hat, Eyeglasses")
    cli.user_error(base + ["--out", tmp_path / "d", "--quantile", "1.5"], "--quantile", "(0, 1)")
    cli.user_error(base + ["--out", toyfaces_small], "is the --data input")
    assert not any((tmp_path / n).exists() for n in "abcd")


def test_data_without_masks_or_attributes_is_refused(cli, tiny_model, tmp_path):
    images = np.zeros((4, 32, 32, 3), np.uint8)
    table = pd.DataFrame({"id": [f"g{i}" for i in range(4)], "split": "train"})
    bare = write_dataset(tmp_path / "bare", images, table, {"source": "generated", "unlabelled": True})
    cli.user_error(["explain", "--model", tiny_model, "--data", bare, "--out", tmp_path / "o"],
                   f"{bare}: no concepts", "no part masks", "no attribute columns")


def test_intact_scores_reuse_the_probe_pass(audit, toyfaces_small, tiny_model):
    """The intact variant's scores come from the dissection's forward pass: they must equal a fresh pass."""
    from fairlatent.explain.audit import target_scores
    from fairlatent.models.classifier import load_classifier

    h = load_classifier(tiny_model)
    data = load_dataset(toyfaces_small)
    a = audit.audits["base"]
    ev = data.split_indices("test")
    fresh = target_scores(h, h.module.blocks[2], data.images, ev, 0, [], 64)
    reused = 1 / (1 + np.exp(-a.dissection.outputs[ev, 0].astype(np.float64)))
    np.testing.assert_allclose(reused, fresh, rtol=1e-5, atol=1e-6)


def test_contribution_pass_logits_are_the_intact_scores(toyfaces_small, tiny_model):
    """The intact variant's evaluation scores come from the contribution pass's logits when the probe does not
    cover the evaluation split (a subsampled probe): they must equal a fresh inference pass."""
    from fairlatent.explain.audit import target_contributions, target_scores
    from fairlatent.models.classifier import load_classifier

    h = load_classifier(tiny_model)
    data = load_dataset(toyfaces_small)
    ev = data.split_indices("test")
    logits: list[np.ndarray] = []
    target_contributions(h, h.module.blocks[2], data.images, ev, 0, 16, logits=logits)
    fresh = target_scores(h, h.module.blocks[2], data.images, ev, 0, [], 64)
    assert sum(len(x) for x in logits) == len(ev)
    np.testing.assert_allclose(1 / (1 + np.exp(-np.concatenate(logits).astype(np.float64))), fresh, rtol=1e-5,
                               atol=1e-6)


def test_max_images_subsamples_the_probe_reproducibly(toyfaces_small, tiny_model):
    from fairlatent.errors import FairlatentError
    from fairlatent.explain import audit_classifiers

    a = audit_classifiers({"m": tiny_model}, toyfaces_small, quantile=0.02, n_boot=10, max_images=200)
    b = audit_classifiers({"m": tiny_model}, toyfaces_small, quantile=0.02, n_boot=10, max_images=200)
    idx = a.audits["m"].dissection.concepts.indices
    assert len(idx) == 200 and a.settings["probe_images"] == 200 and np.all(np.diff(idx) > 0)
    np.testing.assert_array_equal(idx, b.audits["m"].dissection.concepts.indices)
    assert a.audits["m"].metrics == b.audits["m"].metrics
    full = len(load_dataset(toyfaces_small))
    assert audit_classifiers({"m": tiny_model}, toyfaces_small, quantile=0.02, n_boot=10,
                             max_images=10 ** 6).settings["probe_images"] == full
    with pytest.raises(FairlatentError, match="max_images"):
        audit_classifiers({"m": tiny_model}, toyfaces_small, max_images=0)


def test_image_level_protected_concept_bound_is_stated(toyfaces_small, tiny_model, tmp_path):
    """An image-level concept on a share p of the probe caps a unit's IoU with it at min(q, p) / max(q, p);
    when that is below the detector level for every protected concept, the audit says so (and not otherwise)."""
    from fairlatent.explain import audit_classifiers
    from fairlatent.explain.audit import image_level_bounds
    from fairlatent.explain.concepts import dataset_concepts

    data = load_dataset(toyfaces_small)
    concepts = dataset_concepts(data)
    p = float(data.labels("Eyeglasses").mean())
    b = image_level_bounds(concepts, ["Eyeglasses", "glasses"], 0.005)
    assert set(b) == {"Eyeglasses"} and b["Eyeglasses"]["prevalence"] == pytest.approx(p)
    assert b["Eyeglasses"]["max_single_iou"] == pytest.approx(0.005 / p)
    # and no unit beats it: the pooled IoU of every unit with the image-level concept, from the tally
    res = audit_classifiers({"m": tiny_model}, toyfaces_small, protected="Eyeglasses", target="Wearing_Hat",
                            quantile=0.005, n_boot=10)
    d = res.audits["m"].dissection
    k = d.concepts.names.index("Eyeglasses")
    assert d.concept_ious()[:, k].max() <= b["Eyeglasses"]["max_single_iou"] + 1e-9
    assert res.audits["m"].notes == []  # the part "glasses" is spatial: no cap, no note
    # without masks (attributes only) the cap is the whole story for Eyeglasses: stated in the notes
    bare = write_dataset(tmp_path / "nomask", np.asarray(data.images), data.table.copy(),
                         {k: v for k, v in data.meta.items() if k not in ("format", "version", "n", "image_size",
                                                                           "attributes", "splits", "parts")})
    res = audit_classifiers({"m": tiny_model}, bare, protected="Eyeglasses", target="Wearing_Hat", quantile=0.005,
                            n_boot=10)
    assert any("Eyeglasses is image-level" in n and f"{0.005 / p:.3f}" in n for n in res.audits["m"].notes)
    assert not any("image-level" in n for n in audit_classifiers(
        {"m": tiny_model}, bare, protected="Eyeglasses", target="Wearing_Hat", quantile=0.2, n_boot=10).audits["m"].notes)
