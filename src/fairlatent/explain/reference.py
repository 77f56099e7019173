"""The plain reference: network dissection and compexp's beam search on full boolean masks.

Written the way compexp does it — every candidate formula is materialised as a boolean mask over the whole
probe set (``N × H × W``) and intersected with the unit's mask — and kept deliberately simple, so that the
fast implementation (:mod:`fairlatent.explain.tally`, :mod:`fairlatent.explain.search`) can be checked
against it for exact equality and timed against it (``benchmarks/bench_compexp.py``). Nothing here streams:
it is for small data and for timing, not for use.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from fairlatent.explain.formula import OPS, Formula
from fairlatent.explain.search import Explanation, penalised
from fairlatent.explain.tally import iou_from_counts, upsample_maps


def reference_thresholds(acts: np.ndarray, quantile: float) -> np.ndarray:
    """``np.percentile`` over images and positions of each unit of ``acts`` (N, U, h, w)."""
    from fairlatent.explain.quantile import percentile_of

    per_unit = np.moveaxis(np.asarray(acts), 1, 0).reshape(acts.shape[1], -1)
    return np.array([float(np.percentile(row, percentile_of(quantile))) for row in per_unit])


def reference_unit_masks(acts: np.ndarray, thresholds: np.ndarray, size: tuple[int, int]) -> list[np.ndarray]:
    """Every map upsampled (no skipping) and thresholded: one bool (N, H, W) mask per unit."""
    out = []
    for u in range(acts.shape[1]):
        out.append((upsample_maps(np.ascontiguousarray(acts[:, u]), size) > float(thresholds[u])).numpy())
    return out


def reference_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Pooled IoU of two boolean masks over all images and pixels."""
    inter = int(np.count_nonzero(a & b))
    return float(iou_from_counts(inter, int(np.count_nonzero(a)), int(np.count_nonzero(b))))


def reference_search(unit_mask: np.ndarray, concept_masks: Sequence[np.ndarray], *, length: int = 3,
                     beam: int = 5, penalty: float = 1.0) -> Explanation:
    """compexp's ``compute_best_iou`` for one unit, candidate by candidate on full masks.

    Formulas are keyed by their text (see :mod:`fairlatent.explain.search` for the one difference)."""
    unit = int(np.count_nonzero(unit_mask))

    def iou_of(mask: np.ndarray) -> float:
        return float(iou_from_counts(int(np.count_nonzero(mask & unit_mask)), int(np.count_nonzero(mask)), unit))

    names = [str(k) for k in range(len(concept_masks))]
    ious = {k: iou_of(m) for k, m in enumerate(concept_masks)}
    nonzero = [(k, v) for k, v in ious.items() if v > 0]
    if not nonzero:
        return Explanation(None, 0.0, 0.0, None, 0.0)
    nonzero.sort(key=lambda kv: kv[1], reverse=True)  # stable: ties in concept order
    beam_f: dict[str, tuple[Formula, float, float]] = {}
    for k, v in nonzero[:beam]:
        f = Formula.leaf(k)
        beam_f[f.to_str(names)] = (f, v, v)
    first = next(iter(beam_f.values()))
    single, single_iou = first[0], first[1]
    for _ in range(int(length) - 1):
        new: dict[str, tuple[Formula, float, float]] = {}
        for f, _iou, _score in beam_f.values():
            for c in range(len(concept_masks)):
                for op in OPS:
                    g = f.combine(op, c)
                    v = iou_of(g.evaluate(concept_masks))
                    new[g.to_str(names)] = (g, v, float(penalised(v, g.penalty_length, penalty)))
        beam_f.update(new)
        ranked = sorted(beam_f.items(), key=lambda kv: kv[1][2], reverse=True)[:beam]
        beam_f = dict(ranked)
    best = next(iter(beam_f.values()))
    return Explanation(best[0], best[1], best[2], single, single_iou)
