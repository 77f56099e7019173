"""Compositional beam search for the formula that best explains each unit, computed from pattern counts.

The search is compexp's (``NeuronOperator.compute_best_iou``), step for step:

1. IoU of every single concept; the ``beam`` best with IoU > 0, in descending order (ties: concept order),
   form the beam; the first is the unit's best single concept. No concept with IoU > 0: no explanation.
2. ``length − 1`` times: combine every beam formula ``f`` (in beam order) with every concept ``c`` (in concept
   order) under ``OR``, ``AND``, ``AND NOT`` (in that order), giving ``(f OR c)``, ``(f AND c)``,
   ``(f AND NOT c)``; score each by ``IoU · penalty^(len − 1)`` (compexp's ``len``: ``NOT c`` counts 2;
   default penalty 1 = none); keep the ``beam`` best of the old beam followed by the new formulas (a stable
   sort, so ties go to the earlier entry).
3. The unit's explanation is the best of the final beam.

Where this differs from compexp: formulas are keyed by how they are written, so a formula derived again
(``(A OR B)`` from ``A`` when it is already in the beam) keeps its one beam entry; compexp keys them by object
identity and can fill two beam slots with the same formula. IoU has no ``+1e-10`` in the denominator (an
empty union gives 0, as there).

Why counts: with the tally of :mod:`fairlatent.explain.tally`, the counts of all ``3·K`` extensions of a
formula ``f`` come from two matrix–vector products: with ``x_c = |f ∧ c ∧ M|`` and ``s_c = |f ∧ c|``,
``|f∨c ∧ M| = |f∧M| + |c∧M| − x_c``, ``|f ∧ ¬c ∧ M| = |f∧M| − x_c``, and likewise for sizes. All in int64,
so every IoU is the same float as :func:`fairlatent.explain.reference.reference_search` computes from full
boolean masks (``tests/test_explain_search.py`` checks equality, formulas and IoUs).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fairlatent.errors import FairlatentError
from fairlatent.explain.formula import OPS, Formula
from fairlatent.explain.tally import PatternTally, iou_from_counts


@dataclass(frozen=True)
class Explanation:
    """The search's answer for one unit."""

    formula: Formula | None  # None: no concept overlaps the unit at all
    iou: float  # of ``formula``, without penalty
    score: float  # iou · penalty^(len − 1): what the search ranks by
    single: Formula | None  # best single concept
    single_iou: float


def check_search(length: int, beam: int, penalty: float) -> None:
    if int(length) < 1:
        raise FairlatentError(f"length must be >= 1 (concepts per formula), got {length}")
    if int(beam) < 1:
        raise FairlatentError(f"beam must be >= 1, got {beam}")
    if not 0.0 < float(penalty) <= 1.0:
        raise FairlatentError(f"penalty must be in (0, 1] (1 = no complexity penalty), got {penalty}")


def penalised(iou: np.ndarray | float, penalty_length: int, penalty: float):
    """compexp's score: ``iou · penalty^(len − 1)``."""
    return iou * (float(penalty) ** (penalty_length - 1))


def top_stable(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` largest scores, descending, ties in index order (``Counter.most_common``)."""
    return np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")[:k]


def explain_unit(bits: np.ndarray, pixels: np.ndarray, hits: np.ndarray, *, length: int = 3, beam: int = 5,
                 penalty: float = 1.0) -> Explanation:
    """Beam search for one unit from its pattern counts: ``bits`` (K, P) bool, ``pixels`` (P,), ``hits`` (P,)."""
    bits_i = bits.astype(np.int64)
    unit = int(hits.sum())
    c_inter = bits_i @ hits  # (K,)
    c_size = bits_i @ pixels
    c_iou = iou_from_counts(c_inter, c_size, unit)
    nonzero = np.flatnonzero(c_iou > 0)
    if nonzero.size == 0:
        return Explanation(None, 0.0, 0.0, None, 0.0)
    order = nonzero[top_stable(c_iou[nonzero], beam)]
    formulas = [Formula.leaf(k) for k in order]
    ious = [float(c_iou[k]) for k in order]
    scores = list(ious)  # penalty^0
    truth = [bits[k] for k in order]
    single, single_iou = formulas[0], ious[0]
    plen_op = np.array([1, 1, 2])  # penalty_length added by OR, AND, AND NOT
    for _ in range(int(length) - 1):
        t = np.stack(truth).astype(np.int64)  # (b, P)
        f_inter, f_size = t @ hits, t @ pixels  # (b,)
        x = (t * hits) @ bits_i.T  # (b, K): |f ∧ c ∧ M|
        s = (t * pixels) @ bits_i.T  # (b, K): |f ∧ c|
        inter = np.stack([f_inter[:, None] + c_inter[None] - x, x, f_inter[:, None] - x], axis=2)  # (b, K, 3)
        size = np.stack([f_size[:, None] + c_size[None] - s, s, f_size[:, None] - s], axis=2)
        iou = iou_from_counts(inter, size, unit)
        plen = np.array([f.penalty_length for f in formulas])[:, None, None] + plen_op[None, None, :]
        factor = np.array([float(penalty) ** (p - 1) for p in range(int(plen.max()) + 1)])  # as the reference
        score = iou * factor[plen]
        # a candidate already in the beam (derived again from its own left part) keeps its old entry
        fresh = np.ones(iou.shape, dtype=bool)
        position = {f: i for i, f in enumerate(formulas)}
        for f in formulas:
            if f.left is not None and f.left in position:
                fresh[position[f.left], f.right, OPS.index(f.op)] = False
        flat = np.flatnonzero(fresh.ravel())
        all_scores = np.concatenate([np.asarray(scores), score.ravel()[flat]])
        keep = top_stable(all_scores, beam)
        new_formulas, new_ious, new_scores, new_truth = [], [], [], []
        for j in keep:
            if j < len(formulas):
                new_formulas.append(formulas[j]), new_ious.append(ious[j]), new_scores.append(scores[j])
                new_truth.append(truth[j])
            else:
                b, c, o = np.unravel_index(flat[j - len(formulas)], iou.shape)
                f = formulas[b].combine(OPS[o], int(c))
                new_formulas.append(f), new_ious.append(float(iou[b, c, o])), new_scores.append(float(score[b, c, o]))
                new_truth.append(f.evaluate(bits))
        formulas, ious, scores, truth = new_formulas, new_ious, new_scores, new_truth
    return Explanation(formulas[0], ious[0], scores[0], single, single_iou)


def explain_units(tally: PatternTally, *, length: int = 3, beam: int = 5, penalty: float = 1.0) -> list[Explanation]:
    """:func:`explain_unit` for every unit of a tally."""
    check_search(length, beam, penalty)
    return [explain_unit(tally.bits, tally.pixels, tally.hits[u], length=length, beam=beam, penalty=penalty)
            for u in range(tally.hits.shape[0])]
