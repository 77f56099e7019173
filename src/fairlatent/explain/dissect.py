"""Dissect one layer of a network over a probe set: thresholds, pooled IoUs and a formula for every unit.

The steps, each in its own module:

1. :mod:`~fairlatent.explain.activations` runs the probe through the network in batches; each batch's maps
   of the layer go to a temporary float32 file on disk (not memory) and to :class:`~fairlatent.explain.
   quantile.TopQuantile`, which yields each unit's exact top-quantile threshold at the end.
2. :mod:`~fairlatent.explain.tally` reads the maps back in batches with the concepts' masks and counts pixel
   patterns (unit masks = bilinearly upsampled maps ``> T_u``).
3. :mod:`~fairlatent.explain.search` runs compexp's beam search for every unit on the counts.

Memory is bounded by the batch size (plus ``O(units · quantile · N·h·w)`` for the thresholds and the pattern
table); the temporary file holds ``N·U·h·w·4`` bytes (20,000 probe images × 64 units × 8×8: 330 MB) and is
deleted at the end. The dissection also keeps, for each unit, the maps of its ``keep_top`` most activating
images (by maximum activation), for pictures.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn as nn

from fairlatent.errors import FairlatentError
from fairlatent.explain.activations import resolve_layer, stream_activations
from fairlatent.explain.concepts import ConceptSet
from fairlatent.explain.quantile import TopQuantile, check_quantile
from fairlatent.explain.search import Explanation, check_search, explain_units
from fairlatent.explain.tally import PatternCounter, PatternTally, iou_from_counts

#: Network dissection's detector rule: a unit detects a concept when their IoU exceeds this.
DETECTOR_IOU = 0.04


@dataclass
class Dissection:
    """Everything the dissection of one layer found; :meth:`table` is the per-unit summary."""

    layer: str
    concepts: ConceptSet
    thresholds: np.ndarray  # (U,) float64
    tally: PatternTally
    explanations: list[Explanation]
    map_shape: tuple[int, int]
    peak: np.ndarray  # (N, U) float32: each probe image's maximum activation per unit
    top_images: np.ndarray  # (U, keep_top) probe rows, most activating first
    top_maps: np.ndarray  # (U, keep_top, h, w) float32
    outputs: np.ndarray | None = None  # (N, …) the network's outputs on the probe (logits of a classifier)
    settings: dict[str, Any] = field(default_factory=dict)
    timings_s: dict[str, float] = field(default_factory=dict)

    @property
    def units(self) -> int:
        return len(self.thresholds)

    def concept_ious(self) -> np.ndarray:
        """``(U, K)`` pooled IoU of every unit with every single concept."""
        return iou_from_counts(self.tally.concept_hits(), self.tally.concept_pixels[None, :],
                               self.tally.unit_pixels[:, None])

    def ious_by_length(self) -> dict[int, np.ndarray]:
        """``{k: (U,) IoU of the best formula of at most k concepts}`` for k = 1 … the search's length: the
        same beam search stopped after k − 1 steps (k = 1: the best single concept), on the same counts, so
        how much longer formulas explain (Mu & Andreas' figure of IoU against formula length) costs only the
        searches, not another pass over the probe. Beam search's best IoU never falls as k grows."""
        length = int(self.settings.get("length", 1))
        beam, penalty = int(self.settings.get("beam", 5)), float(self.settings.get("penalty", 1.0))
        out = {k: np.array([e.iou for e in explain_units(self.tally, length=k, beam=beam, penalty=penalty)])
               for k in range(1, length)}
        out[length] = np.array([e.iou for e in self.explanations])
        return out

    def table(self) -> pd.DataFrame:
        """One row per unit: threshold, firing share, best formula and its IoU, best single concept."""
        names = self.concepts.names
        total = int(self.tally.pixels.sum())
        rows = []
        for u, e in enumerate(self.explanations):
            rows.append({
                "unit": u,
                "threshold": float(self.thresholds[u]),
                "fires_share": float(self.tally.unit_pixels[u]) / total if total else float("nan"),
                "formula": e.formula.to_str(names) if e.formula is not None else "",
                "length": e.formula.length if e.formula is not None else 0,
                "iou": e.iou,
                "score": e.score,
                "concept": e.single.to_str(names) if e.single is not None else "",
                "concept_iou": e.single_iou,
                "detector": bool(e.single_iou > DETECTOR_IOU),
                "explained": bool(e.iou > DETECTOR_IOU),
            })
        return pd.DataFrame(rows)


def dissect(module: nn.Module, images: np.ndarray, concepts: ConceptSet, *, layer: str | None = None,
            quantile: float = 0.005, length: int = 3, beam: int = 5, penalty: float = 1.0,
            batch_size: int = 256, keep_top: int = 6, image_size: int | None = None) -> Dissection:
    """Dissect ``layer`` of ``module`` (eval mode) on ``images[concepts.indices]`` (uint8 N×H×W×3).

    ``layer`` is a module path (default: the last convolutional stage); ``quantile`` the top share of
    activations above each unit's threshold; ``length``, ``beam`` and ``penalty`` the beam search's."""
    quantile = check_quantile(quantile)
    check_search(length, beam, penalty)
    image_size = int(image_size or images.shape[1])
    name, sub = resolve_layer(module, layer, image_size)
    idx = concepts.indices
    n = len(idx)
    if n == 0:
        raise FairlatentError("the probe set is empty: no images to dissect the layer with")
    module.eval()
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="fairlatent-explain-") as tmp:
        store = None
        tq = None
        peak = None
        outputs = []
        for start, acts, out in stream_activations(module, sub, images, idx, batch_size=batch_size):
            b, u, h, w = acts.shape
            outputs.append(out.numpy())
            if store is None:
                store = np.lib.format.open_memmap(f"{tmp}/acts.npy", mode="w+", dtype=np.float32, shape=(n, u, h, w))
                tq = TopQuantile(u, n * h * w, quantile)
                peak = np.empty((n, u), dtype=np.float32)
            store[start:start + b] = acts.numpy()
            tq.add(acts.permute(1, 0, 2, 3).reshape(u, -1))
            peak[start:start + b] = acts.amax(dim=(2, 3)).numpy()
        thresholds = tq.thresholds()
        timings["activations_s"] = time.perf_counter() - t0

        t1 = time.perf_counter()
        counter = PatternCounter(concepts.n_spatial, concepts.n_image, thresholds, concepts.mask_size)
        for start in range(0, n, batch_size):
            rows = slice(start, min(n, start + batch_size))
            counter.add(torch.from_numpy(np.ascontiguousarray(store[rows])), concepts.spatial(rows), concepts.image(rows))
        tally = counter.result()
        timings["tally_s"] = time.perf_counter() - t1

        k = min(int(keep_top), n)
        top_images = np.argsort(-peak, axis=0, kind="stable")[:k].T  # (U, k)
        top_maps = np.stack([store[top_images[j], j] for j in range(store.shape[1])]).astype(np.float32)
        h, w = store.shape[2:]
        del store
    t2 = time.perf_counter()
    explanations = explain_units(tally, length=length, beam=beam, penalty=penalty)
    timings["search_s"] = time.perf_counter() - t2
    return Dissection(
        layer=name, concepts=concepts, thresholds=thresholds, tally=tally, explanations=explanations,
        map_shape=(int(h), int(w)), peak=peak, top_images=top_images, top_maps=top_maps,
        outputs=np.concatenate(outputs),
        settings=dict(layer=name, quantile=quantile, length=int(length), beam=int(beam), penalty=float(penalty),
                      probe_images=int(n), detector_iou=DETECTOR_IOU),
        timings_s=timings,
    )
