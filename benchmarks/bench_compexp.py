"""Compositional explanations: fairlatent.explain's count-based search vs the plain reference, and a whole audit.

On one ToyFaces set (default 10,000 faces at 64 px; 8 part masks + 9 image-level attributes = 17 concepts)
and the last stage of a classifier (width 16: 64 units at 8×8), in one invocation:

1. **reference** — compexp's algorithm written plainly (:func:`fairlatent.explain.reference.reference_search`):
   every candidate formula is a full boolean mask over all N×64×64 pixels, intersected with the unit's mask and
   counted. It is given the unit masks ready-made (their upsampling is not timed) and is timed on
   ``--ref-units`` units spread over the layer; its time for the whole layer is extrapolated linearly (each
   unit's search is independent and costs about the same: beam × concepts × 3 candidates per step);
2. **fairlatent** — from the same activations and masks: pattern tally (which includes upsampling the maps and
   thresholding them) + beam search for *every* unit; its answers for the reference's units must be identical
   (formula and IoU, exactly), which is checked and printed;
3. **audit** — the whole ``audit_classifiers`` of one classifier (activations, tally, search, contributions,
   three ablation passes, 500 bootstrap resamples), with ``torch.set_num_threads(1)`` and with 2 threads.

    python benchmarks/bench_compexp.py [--n 10000] [--size 64] [--ref-units 2] [--model DIR] [--epochs 1]

Without ``--model`` a classifier (width 16) is trained for ``--epochs`` epochs first (not timed).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=10000)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--length", type=int, default=3)
    ap.add_argument("--beam", type=int, default=5)
    ap.add_argument("--quantile", type=float, default=0.005)
    ap.add_argument("--ref-units", type=int, default=2)
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--data", type=Path, default=None, help="an existing ToyFaces set (default: rendered)")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--skip-audit", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)

    from fairlatent.data.dataset import load_dataset
    from fairlatent.data.toyfaces import make_toyfaces
    from fairlatent.explain.activations import resolve_layer, stream_activations
    from fairlatent.explain.audit import audit_classifiers
    from fairlatent.explain.concepts import dataset_concepts
    from fairlatent.explain.quantile import TopQuantile
    from fairlatent.explain.reference import reference_search, reference_unit_masks
    from fairlatent.explain.search import explain_units
    from fairlatent.explain.tally import PatternCounter
    from fairlatent.models.classifier import load_classifier
    from fairlatent.train.classifier import ClassifierConfig, train_classifier

    tmp = Path(tempfile.mkdtemp(prefix="bench-compexp-"))
    t = time.perf_counter()
    data_path = args.data or make_toyfaces(tmp / "toy", n=args.n, size=args.size, seed=0, progress=False)
    print(f"data: {data_path} ({time.perf_counter() - t:.0f} s)")
    model = args.model
    if model is None:
        t = time.perf_counter()
        model = train_classifier([data_path], ["Wearing_Hat", "Eyeglasses"], tmp / "clf",
                                 ClassifierConfig(width=args.width, epochs=args.epochs, seed=0), progress=False)
        print(f"classifier trained ({args.epochs} epoch(s), {time.perf_counter() - t:.0f} s, not timed below)")
    data = load_dataset(data_path)
    handle = load_classifier(model)
    concepts = dataset_concepts(data)
    name, layer = resolve_layer(handle.module, None, handle.image_size)

    # activations and thresholds (shared by both; not part of the comparison)
    chunks, tq = [], None
    for start, acts, _ in stream_activations(handle.module, layer, data.images, concepts.indices):
        if tq is None:
            tq = TopQuantile(acts.shape[1], len(concepts.indices) * acts.shape[2] * acts.shape[3], args.quantile)
        tq.add(acts.permute(1, 0, 2, 3).reshape(acts.shape[1], -1))
        chunks.append(acts.numpy())
    acts = np.concatenate(chunks)
    thresholds = tq.thresholds()
    n, units = acts.shape[:2]
    print(f"layer {name}: {units} units, maps {acts.shape[2]}×{acts.shape[3]}, {n} images, masks {concepts.mask_size}, "
          f"{len(concepts)} concepts; length {args.length}, beam {args.beam}")

    # fairlatent: tally (upsampling + thresholding included) + search for every unit
    t = time.perf_counter()
    counter = PatternCounter(concepts.n_spatial, concepts.n_image, thresholds, concepts.mask_size)
    for start in range(0, n, 256):
        rows = slice(start, min(n, start + 256))
        counter.add(torch.from_numpy(acts[rows]), concepts.spatial(rows), concepts.image(rows))
    tally = counter.result()
    t_tally = time.perf_counter() - t
    t = time.perf_counter()
    ours = explain_units(tally, length=args.length, beam=args.beam)
    t_search = time.perf_counter() - t
    ours_total = t_tally + t_search
    print(f"fairlatent: {ours_total:.2f} s for all {units} units (tally {t_tally:.2f} s, {tally.bits.shape[1]} "
          f"patterns; search {t_search:.2f} s)")

    # reference on the same masks, for a few units spread over the layer
    full = concepts.full_masks()
    picked = np.linspace(0, units - 1, args.ref_units).round().astype(int)
    masks = reference_unit_masks(acts[:, picked], thresholds[picked], concepts.mask_size)
    ref_times, same = [], True
    for j, u in enumerate(picked):
        t = time.perf_counter()
        ref = reference_search(masks[j], full, length=args.length, beam=args.beam)
        ref_times.append(time.perf_counter() - t)
        mine = ours[u]
        same &= (ref.formula == mine.formula and ref.iou == mine.iou and ref.single == mine.single)
        text = ref.formula.to_str(concepts.names) if ref.formula else "(none)"
        print(f"  reference unit {u}: {ref_times[-1]:.1f} s, {text} IoU {ref.iou:.4f}")
    per_unit = float(np.mean(ref_times))
    ref_total = per_unit * units
    print(f"reference: {per_unit:.1f} s per unit, timed on {len(picked)} of {units} units (units {picked.tolist()}), "
          f"extrapolated linearly to {ref_total:.0f} s for all {units}")
    print(f"speed-up: {ref_total / ours_total:.0f}x (reference extrapolated / fairlatent measured); "
          f"identical results on the timed units: {same}")
    del full, masks, acts

    if args.skip_audit:
        return
    for threads in (1, 2):
        torch.set_num_threads(threads)
        t = time.perf_counter()
        result = audit_classifiers({"m": model}, data_path, target="Wearing_Hat", protected="Eyeglasses",
                                   quantile=args.quantile, length=args.length, beam=args.beam)
        total = time.perf_counter() - t
        a = result.audits["m"]
        parts = ", ".join(f"{k} {v:.1f} s" for k, v in a.dissection.timings_s.items())
        print(f"whole audit, {threads} thread(s): {total:.1f} s ({parts}; the rest: contributions, 3 ablation "
              f"passes over val+test, 500 bootstrap resamples); {len(a.protected_units)} protected units")
    print(f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores during the run)")


if __name__ == "__main__":
    main()
