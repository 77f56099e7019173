"""How often the labelers are unsure on G(z) against on real faces: does the generator draw the attributes?

For each finished run folder (its ``data``, ``labeler`` and ``latents`` stages), the share of images whose
f_t and f_g score lies in (lo, hi) (default (0.2, 0.8)), on the real validation split and on the labelled
G(z) (the latents stage's stored scores, the images the hyperplanes are fitted on). A labeler that is sure of
nearly every real face but unsure of many generated ones says the generator draws that attribute half-way:
no hyperplane can then separate it in latent space, and an edit cannot flip what is not drawn::

    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/labeler_ambiguity_posthoc.py runs/toyfaces/pairs/*/seed0

With ``--ceiling``, also how well anything fitted on z predicts the labeler's label of G(z) (score > 0.5):
held-out accuracy of a linear SVM (what the hyperplanes stage fits, there at its threshold) and of a one-layer
MLP (256 units) on the stored latents, fit on the first 10,000 and scored on the next 5,000 as the
hyperplanes stage splits them: when even the MLP stays low, no better plane exists and the generator, not
the plane, is at fault. With ``--grid OUT.png`` (one run), also a grid of G(z) from its stored latents: one
row each of 12 images f_g scores below 0.05, in (0.35, 0.65) and above 0.95, to see what an unsure score looks
like. Nothing is written into the runs.
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


def ceiling(run: Path, n_fit: int = 10000, n_holdout: int = 5000) -> dict[int, tuple[float, float]]:
    """``{labeler column: (linear SVM held-out accuracy, MLP held-out accuracy)}`` on the stored latents."""
    import numpy as np
    from sklearn.neural_network import MLPClassifier
    from sklearn.svm import LinearSVC

    z = np.load(run / "latents" / "z.npy").astype(np.float64)
    scores = np.load(run / "latents" / "scores.npy")
    fit, ho = slice(0, n_fit), slice(n_fit, n_fit + n_holdout)
    out = {}
    for j in range(scores.shape[1]):
        y = (scores[:, j] > 0.5).astype(int)
        svm = LinearSVC(max_iter=5000).fit(z[fit], y[fit])
        mlp = MLPClassifier(hidden_layer_sizes=(256,), max_iter=200, random_state=0).fit(z[fit], y[fit])
        out[j] = tuple(float((m.predict(z[ho]) == y[ho]).mean()) for m in (svm, mlp))
    return out


def unsure_grid(run: Path, out: Path, column: int = 1, per_row: int = 12) -> None:
    """Write G(z) of the run's latents in three rows by the labeler's score in ``column`` (1: f_g): sure of 0,
    unsure, sure of 1 (the first ``per_row`` latents of each, in stored order)."""
    import numpy as np
    from PIL import Image

    from fairlatent.models.generator import load_generator
    from fairlatent.utils.images import image_grid

    z = np.load(run / "latents" / "z.npy")
    score = np.load(run / "latents" / "scores.npy")[:, column]
    # the gan stage records where its model is: its own folder, or another run's with `gan_from`
    gen = load_generator(json.loads((run / "gan" / "stage.json").read_text())["outputs"]["path"])
    rows = [gen.decode(z[np.flatnonzero((score >= lo) & (score < hi))[:per_row]])
            for lo, hi in ((0.0, 0.05), (0.35, 0.65), (0.95, 1.01))]
    if any(len(r) < per_row for r in rows):
        raise SystemExit(f"{run}: fewer than {per_row} stored latents in some score band; no grid written")
    grid = image_grid(np.concatenate(rows), nrow=per_row)
    scale = 3
    Image.fromarray(grid).resize((grid.shape[1] * scale, grid.shape[0] * scale), Image.NEAREST).save(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", type=Path, help="finished pipeline run folders")
    ap.add_argument("--band", nargs=2, type=float, default=(0.2, 0.8), metavar=("LO", "HI"),
                    help="a score in (LO, HI) counts as unsure (default 0.2 0.8)")
    ap.add_argument("--ceiling", action="store_true",
                    help="also the held-out accuracy of a linear SVM and an MLP predicting the labels from z")
    ap.add_argument("--grid", type=Path, help="with one run: write its G(z) by f_g's score (see above) to this PNG")
    args = ap.parse_args(argv)
    if args.grid is not None and len(args.runs) != 1:
        ap.error("--grid takes exactly one run folder")
    head = "| run | attribute | unsure on real val | unsure on G(z) |" + (" SVM / MLP on z |" if args.ceiling else "")
    print(head)
    print("|---|---|---:|---:|" + ("---|" if args.ceiling else ""))
    for run in args.runs:
        res = ambiguity(run, *args.band)
        if res is None:
            print(f"| {run} | (not finished, or separate labelers) | | |")
            continue
        fitted = ceiling(run) if args.ceiling else {}
        for j, (attr, (real, gen)) in enumerate(res.items()):
            extra = f" {fitted[j][0]:.3f} / {fitted[j][1]:.3f} |" if args.ceiling else ""
            print(f"| {run.parent.name}/{run.name} | {attr} | {real:.3f} | {gen:.3f} |{extra}")
    if args.grid is not None:
        unsure_grid(args.runs[0], args.grid)
        print(f"wrote {args.grid}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
