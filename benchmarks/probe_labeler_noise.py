"""Why f_t labels most of G(z) as positive in the demo (issue 13): the labeler's false positives under pixel
noise, beside the labelled cells of G(z).

For a finished pipeline run (``fairlatent run`` / ``demo``) it prints, for the target labeler f_t at its
calibrated threshold on the run's real ``test_balanced`` split:

- P(f_t = 1) per (target, protected) cell of the clean images (the labeler's own accuracy and any reliance
  on the protected attribute);
- the false-positive rate per protected group and the true-positive rate after adding Gaussian pixel noise
  of σ = 4, 8 and 16 (out of 255): how much of a "positive" is a reaction to noise;

and, for the run's first ``--n`` latents, the rate of each labelled cell among G(z) against the real train
split. Writes a grid of the G(z) that f_t/f_g put in each cell (``--grids DIR``) to look at.

    python benchmarks/probe_labeler_noise.py --run runs/demo [--n 2000] [--grids probe/]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, required=True, help="A finished pipeline run folder.")
    ap.add_argument("--n", type=int, default=2000, help="Latents of the run's latents stage to render.")
    ap.add_argument("--grids", type=Path, default=None, help="Folder for one PNG grid of G(z) per labelled cell.")
    ap.add_argument("--labeler", type=Path, default=None, help="Another f_t to probe (a classifier directory "
                    "predicting the target) instead of the run's own.")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(1)

    from fairlatent.data.dataset import load_dataset
    from fairlatent.models.classifier import load_classifier
    from fairlatent.models.generator import load_generator
    from fairlatent.utils.io import read_json

    data = read_json(args.run / "config.json")["data"]  # raw: runs of older versions hold retired keys
    target, protected = data["target"], data["protected"]
    labeler = read_json(args.run / "labeler" / "stage.json")["outputs"]
    f_t, f_g = load_classifier(args.labeler or labeler["t"]), load_classifier(labeler["g"])
    thr_t = f_t.thresholds[target]["calibrated"]
    thr_g = f_g.thresholds[protected]["calibrated"]
    ds = load_dataset(read_json(args.run / "data" / "stage.json")["outputs"]["path"])

    idx = ds.split_indices("test_balanced")
    images = np.asarray(ds.images[idx])
    t, g = ds.labels(target, idx), ds.labels(protected, idx)
    col = f_t.attributes.index(target)
    print(f"{args.run}: f_t = {target} at its calibrated threshold {thr_t:.4g}; real test_balanced, n = {len(idx)}")
    clean = f_t.predict_scores(images)[:, col] > thr_t
    for tv in (0, 1):
        for gv in (0, 1):
            m = (t == tv) & (g == gv)
            print(f"  clean  t={tv} g={gv}: P(f_t = 1) = {clean[m].mean():.3f}  (n = {m.sum()})")
    rng = np.random.default_rng(args.seed)
    for sigma in (4, 8, 16):
        noisy = np.clip(images.astype(np.float32) + rng.normal(0, sigma, images.shape), 0, 255).astype(np.uint8)
        p = f_t.predict_scores(noisy)[:, col] > thr_t
        print(f"  noise σ = {sigma:2d}/255: FPR g=0 {p[(t == 0) & (g == 0)].mean():.3f}, "
              f"g=1 {p[(t == 0) & (g == 1)].mean():.3f}; TPR {p[t == 1].mean():.3f}")

    z = np.load(args.run / "latents" / "z.npy")[: args.n]
    gen = load_generator(read_json(args.run / "gan" / "stage.json")["outputs"]["path"])
    fake = gen.render(z)
    pt = f_t.predict_scores(fake)[:, col] > thr_t
    pg = f_g.predict_scores(fake)[:, f_g.attributes.index(protected)] > thr_g
    tr = ds.split_indices("train")
    rt, rg = ds.labels(target, tr), ds.labels(protected, tr)
    print(f"labelled G(z), n = {len(z)}, against the real train split:")
    for tv in (0, 1):
        for gv in (0, 1):
            gen_rate = float(np.mean((pt == tv) & (pg == gv)))
            real_rate = float(np.mean((rt == tv) & (rg == gv)))
            print(f"  t={tv} g={gv}: G(z) {gen_rate:.3f}  real {real_rate:.3f}  ratio {gen_rate / real_rate:.2f}")
            if args.grids is not None:
                from fairlatent.utils.images import save_png

                sel = np.flatnonzero((pt == tv) & (pg == gv))[:32]
                if sel.size >= 8:
                    rows = sel.size // 8
                    grid = np.concatenate([np.concatenate(list(fake[sel[r * 8:(r + 1) * 8]]), axis=1)
                                           for r in range(rows)], axis=0)
                    args.grids.mkdir(parents=True, exist_ok=True)
                    save_png(args.grids / f"gz_t{tv}_g{gv}.png", grid, scale=3)


if __name__ == "__main__":
    main()
