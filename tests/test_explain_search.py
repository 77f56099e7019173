"""Correctness of fairlatent.explain's dissection and compositional search.

* a planted-unit oracle: a "network" whose units are exactly given formulas of the data set's masks must be
  explained by those formulas with IoU 1;
* thresholds equal numpy's percentile, pooled IoUs and unit masks equal a brute-force numpy computation, and
  the count-based beam search equals the plain full-mask search (formulas and IoUs, exactly).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn as nn

from fairlatent.data.dataset import load_dataset, write_dataset
from fairlatent.explain.concepts import dataset_concepts
from fairlatent.explain.dissect import dissect
from fairlatent.explain.formula import Formula, parse_formula
from fairlatent.explain.quantile import TopQuantile
from fairlatent.explain.reference import (reference_iou, reference_search, reference_thresholds,
                                          reference_unit_masks)
from fairlatent.explain.search import explain_unit
from fairlatent.explain.tally import PatternCounter

S = 16
PARTS = ["p0", "p1", "p2", "p3"]
ATTRS = ["A0", "A1"]


def _planted_data(path, n=48, seed=0):
    """Random rectangles as 4 part masks (overlapping), 2 random image-level attributes; the image encodes the
    part bits in red (code·16) and the attribute bits in green (bits·64), so a network can read them back."""
    r = np.random.default_rng(seed)
    masks = np.zeros((n, len(PARTS), S, S), bool)
    for i in range(n):
        for k in range(len(PARTS)):
            if r.random() < 0.7:
                y0, x0 = r.integers(0, S - 3, 2)
                y1, x1 = y0 + r.integers(2, S - y0 + 1), x0 + r.integers(2, S - x0 + 1)
                masks[i, k, y0:y1, x0:x1] = True
    attrs = (r.random((n, len(ATTRS))) < 0.5).astype(int)
    code = sum(masks[:, k].astype(np.uint8) << k for k in range(len(PARTS)))
    images = np.zeros((n, S, S, 3), np.uint8)
    images[..., 0] = code * 16
    images[..., 1] = (attrs[:, 0] * 64 + attrs[:, 1] * 128)[:, None, None]
    table = pd.DataFrame({"id": [f"i{i}" for i in range(n)], "split": "test", **{a: attrs[:, j] for j, a in enumerate(ATTRS)}})
    return write_dataset(path, images, table, {"source": "test"}, masks=masks, part_names=PARTS)


class Planted(nn.Module):
    """Unit j's activation map is exactly formula j of the concepts (1 inside, 0 outside)."""

    def __init__(self, formulas):
        super().__init__()
        self.formulas = formulas
        self.units = nn.Identity()

    def forward(self, x):
        v = ((x + 1) * 127.5).round().to(torch.int64)
        code, g = v[:, 0] // 16, v[:, 1]
        bits = [((code >> k) & 1).bool() for k in range(len(PARTS))]
        bits += [((g // 64) & 1).bool(), ((g // 128) & 1).bool()]
        maps = torch.stack([torch.from_numpy(f.evaluate([b.numpy() for b in bits])).float() for f in self.formulas], 1)
        return self.units(maps).mean(dim=(2, 3))


@pytest.fixture(scope="module")
def planted_set(tmp_path_factory):
    return load_dataset(_planted_data(tmp_path_factory.mktemp("planted") / "data"))


# Beam search is greedy: a formula is found when its left-deep prefixes rank in the beam. (On this data,
# "(p0 AND A1) OR p2" is not: "p2" alone and its extensions outrank "p0 AND A1" at length 2.)
PLANTED = ["p0", "p1 AND NOT p2", "p0 OR A0", "(p1 OR p3) AND NOT A1", "(p0 OR p2) AND NOT A0",
           "(p3 AND NOT p0) AND A0", "(p2 AND NOT p3) OR p1", "(p1 OR A1) AND NOT p0", "(p0 AND NOT p1) AND NOT p3"]


def test_planted_units_are_explained_by_their_formulas(planted_set):
    concepts = dataset_concepts(planted_set)
    assert concepts.names == PARTS + ATTRS
    formulas = [parse_formula(t, concepts.names) for t in PLANTED]
    full = concepts.full_masks()
    cover = max(float(f.evaluate(full).mean()) for f in formulas)
    # a 0/1 map's top quantile must reach into the zeros for "activation > T" to be the formula's mask
    d = dissect(Planted(formulas), planted_set.images, concepts, layer="units", quantile=min(0.99, cover + 0.05),
                length=3, beam=5)
    assert d.thresholds.tolist() == [0.0] * len(formulas)
    for f, e in zip(formulas, d.explanations):
        assert e.iou == 1.0, (f.to_str(concepts.names), e)
        assert np.array_equal(e.formula.evaluate(full), f.evaluate(full))
        assert sorted(e.formula.concepts()) == sorted(f.concepts())
        assert sorted(e.formula.negated_concepts()) == sorted(f.negated_concepts())
    table = d.table()
    assert table["iou"].tolist() == [1.0] * len(formulas)
    assert table.loc[0, "formula"] == "p0" and table.loc[0, "concept"] == "p0"


def test_formula_text_round_trips():
    names = ["hair", "hat", "glasses"]
    f = Formula.leaf(0).combine("OR", 1).combine("AND NOT", 2)
    assert f.to_str(names) == "(hair OR hat) AND NOT glasses"
    assert parse_formula(f.to_str(names), names) == f
    assert f.length == 3 and f.penalty_length == 4


class TinyNet(nn.Module):
    """A random conv net whose layer ``body`` gives 8×8 maps of 6 units for 16×16 inputs."""

    def __init__(self, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.body = nn.Sequential(nn.Conv2d(3, 6, 3, stride=2, padding=1), nn.ReLU())
        self.head = nn.Linear(6, 2)

    def forward(self, x):
        return self.head(self.body(x).mean(dim=(2, 3)))


def _random_images(planted_set, seed=1):
    r = np.random.default_rng(seed)
    noise = r.integers(0, 60, size=planted_set.images.shape, dtype=np.uint8)
    return np.asarray(planted_set.images) // 2 + noise


@pytest.mark.parametrize("penalty", [1.0, 0.9])
def test_dissection_equals_brute_force_reference(planted_set, penalty):
    images = _random_images(planted_set)
    net = TinyNet().eval()
    concepts = dataset_concepts(planted_set)
    d = dissect(net, images, concepts, layer="body", quantile=0.05, length=3, beam=5, penalty=penalty, batch_size=7)
    with torch.inference_mode():
        acts = net.body(torch.from_numpy(images).permute(0, 3, 1, 2).float().div(127.5).sub(1)).numpy()
    ref_t = reference_thresholds(acts, 0.05)
    assert d.thresholds.tolist() == ref_t.tolist()
    for u in range(acts.shape[1]):
        assert d.thresholds[u] == np.percentile(acts[:, u].ravel(), 95.0)
    unit_masks = reference_unit_masks(acts, ref_t, (S, S))
    full = concepts.full_masks()
    ious = d.concept_ious()
    for u, m in enumerate(unit_masks):
        assert d.tally.unit_pixels[u] == m.sum() > 0
        for k, c in enumerate(full):
            assert ious[u, k] == reference_iou(m, c)
        ref = reference_search(m, full, length=3, beam=5, penalty=penalty)
        got = d.explanations[u]
        assert got.formula == ref.formula and got.iou == ref.iou and got.score == ref.score
        assert got.single == ref.single and got.single_iou == ref.single_iou
    assert any(e.formula.length == 3 for e in d.explanations)  # the comparison reached length-3 formulas


def test_pooled_iou_is_not_a_mean_of_per_image_ious():
    """Two images: the unit covers image 0's concept exactly and 1 pixel of image 1's 15-pixel concept.
    Pooled: (4+1)/(4+15) = 5/19; a mean of per-image IoUs would be (1 + 1/15)/2."""
    concept = np.zeros((2, 4, 4), bool)
    concept[0, :2, :2] = True
    concept[1].flat[:15] = True
    unit = np.zeros((2, 4, 4), bool)
    unit[0, :2, :2] = True
    unit[1, 0, 0] = True
    counter = PatternCounter(1, 0, np.array([0.5]), (4, 4))
    counter.add(torch.from_numpy(unit[:, None].astype(np.float32)), concept[:, None], np.zeros((2, 0), bool))
    tally = counter.result()
    e = explain_unit(tally.bits, tally.pixels, tally.hits[0], length=1)
    assert e.iou == 5 / 19 == reference_iou(unit, concept)


def test_streamed_threshold_is_numpy_percentile():
    r = np.random.default_rng(3)
    values = np.concatenate([r.normal(size=(3, 5000)), np.repeat(r.normal(size=(3, 1)), 40, axis=1)], axis=1)
    values = values.astype(np.float32)
    for q in (0.005, 0.01, 0.3):
        tq = TopQuantile(3, values.shape[1], q)
        for s in range(0, values.shape[1], 333):
            tq.add(torch.from_numpy(values[:, s:s + 333]))
        assert tq.k < values.shape[1] or q > 0.2
        assert tq.thresholds().tolist() == [float(np.percentile(v, 100 - 100 * q)) for v in values]


@pytest.mark.parametrize("shape,size", [((8, 8), (64, 64)), ((7, 5), (16, 16)), ((4, 4), (4, 4)), ((3, 6), (10, 7))])
def test_upsampling_is_torch_bilinear_half_pixel(shape, size):
    from fairlatent.explain.tally import upsample_maps

    maps = torch.from_numpy(np.random.default_rng(0).normal(size=(5, *shape)).astype(np.float32))
    ours = upsample_maps(maps, size)
    torch_ = torch.nn.functional.interpolate(maps.double()[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]
    assert ours.dtype == torch.float64 and ours.shape == (5, *size)
    torch.testing.assert_close(ours, torch_, rtol=0, atol=1e-12)
    assert (ours.amax(dim=(1, 2)) <= maps.double().amax(dim=(1, 2))).all()  # why skipping quiet maps is exact


def test_formula_ious_agree_with_the_compositional_explanations_package(planted_set):
    """Cross-check with an independent implementation (PyPI ``compositional-explanations`` 0.0.3.4, MIT): the
    IoU it computes for each unit's reported formula, from the same concept and unit masks, equals ours."""
    cx_formula = pytest.importorskip("compositional_explanations.formula",
                                     reason="test extra compositional-explanations is not installed")
    from compositional_explanations.metrics import compute_iou_from_masks

    def to_cx(f: Formula):
        leaf = cx_formula.Leaf(f.right)
        if f.left is None:
            return leaf
        left = to_cx(f.left)
        if f.op == "OR":
            return cx_formula.Or(left, leaf)
        if f.op == "AND":
            return cx_formula.And(left, leaf)
        return cx_formula.And(left, cx_formula.Not(leaf))

    images = _random_images(planted_set)
    net = TinyNet().eval()
    concepts = dataset_concepts(planted_set)
    d = dissect(net, images, concepts, layer="body", quantile=0.05, length=3, beam=5, penalty=1.0, batch_size=7)
    with torch.inference_mode():
        acts = net.body(torch.from_numpy(images).permute(0, 3, 1, 2).float().div(127.5).sub(1)).numpy()
    unit_masks = reference_unit_masks(acts, d.thresholds, (S, S))
    masks = {k: torch.from_numpy(c) for k, c in enumerate(concepts.full_masks())}
    checked = 0
    for u, m in enumerate(unit_masks):
        e = d.explanations[u]
        theirs = compute_iou_from_masks(formula=to_cx(e.formula), masks=masks, bitmaps=torch.from_numpy(m))
        assert theirs == pytest.approx(e.iou, abs=1e-12), (u, e.formula.to_str(concepts.names))
        checked += e.formula.length > 1
    assert checked > 0  # compound formulas (AND, OR, AND NOT) were compared, not only single concepts
