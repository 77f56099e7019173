"""How often the labelers are unsure on G(z) against on real faces: does the generator draw the attributes?

For each finished run folder (its ``data``, ``labeler`` and ``latents`` stages), the share of images whose
f_t and f_g score lies in (lo, hi) (default (0.2, 0.8)), on the real validation split and on the labelled
G(z) (the latents stage's stored scores, the images the hyperplanes are fitted on). A labeler that is sure of
nearly every real face but unsure of many generated ones says the generator draws that attribute half-way:
no hyperplane can then separate it in latent space, and an edit cannot flip what is not drawn::

    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/labeler_ambiguity_posthoc.py runs/toyfaces/pairs/*/seed0

Nothing is written into the runs.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def ambiguity(run: Path, lo: float, hi: float) -> dict[str, tuple[float, float]] | None:
    """``{attribute: (share unsure on real validation faces, share unsure on G(z))}``; None when the run lacks
    a stage this needs."""
    import numpy as np

    from fairlatent.data.dataset import load_dataset
    from fairlatent.models.classifier import load_classifier

    needed = [run / s / "stage.json" for s in ("data", "labeler", "latents")]
    if not all(p.is_file() for p in needed):
        return None
    labeler = json.loads((run / "labeler" / "stage.json").read_text())["outputs"]
    if labeler["t"] != labeler["g"]:
        return None  # separate labelers (a given f_g): the stored scores' columns are not one model's
    clf = load_classifier(labeler["t"])
    ds = load_dataset(run / "data" / "dataset")
    real = clf.predict_scores(np.asarray(ds.images[ds.split_indices("val")]))
    generated = np.load(run / "latents" / "scores.npy")
    unsure = lambda p: float(((p > lo) & (p < hi)).mean())  # noqa: E731
    return {a: (unsure(real[:, j]), unsure(generated[:, j])) for j, a in enumerate(clf.attributes)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", type=Path, help="finished pipeline run folders")
    ap.add_argument("--band", nargs=2, type=float, default=(0.2, 0.8), metavar=("LO", "HI"),
                    help="a score in (LO, HI) counts as unsure (default 0.2 0.8)")
    args = ap.parse_args(argv)
    print("| run | attribute | unsure on real val | unsure on G(z) |")
    print("|---|---|---:|---:|")
    for run in args.runs:
        res = ambiguity(run, *args.band)
        if res is None:
            print(f"| {run} | (not finished, or separate labelers) | | |")
            continue
        for attr, (real, gen) in res.items():
            print(f"| {run.parent.name}/{run.name} | {attr} | {real:.3f} | {gen:.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
