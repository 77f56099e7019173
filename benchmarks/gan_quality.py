"""GAN quality bar on ToyFaces 32 px: attribute rates of generated images vs the training data.

Steps: make ToyFaces (32 px, ~20k faces), train the GAN with the default :class:`GANConfig`, train a
multi-attribute classifier on the real data, generate 10k images, and compare per attribute

    rate_generated = mean(classifier score > calibrated threshold)   over the 10k generated images
    rate_train     = mean(label)                                    over the real train split

The bar: |rate_generated − rate_train| ≤ 5 points for every attribute. As a control the same classifier
is applied to the real train images (its own error shows how much of a gap is the judge's, not the GAN's).
Prints a table and the timings; saves the 8×8 grid of the final generator next to the run.

    python benchmarks/gan_quality.py [--work DIR] [--steps N] [--width W] [--batch-size B] ...
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from fairlatent.data import load_dataset
from fairlatent.data.toyfaces import make_toyfaces
from fairlatent.models.classifier import load_classifier
from fairlatent.models.generator import load_generator
from fairlatent.train.classifier import ClassifierConfig, train_classifier
from fairlatent.train.gan import GANConfig, train_gan
from fairlatent.utils.images import image_grid, save_png


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", default="/tmp/fairlatent-gan-quality")
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--n-generated", type=int, default=10000)
    for name in ("steps", "width", "batch_size"):
        ap.add_argument(f"--{name.replace('_', '-')}", type=int, default=None)
    for name in ("lr_g", "lr_d", "ema_decay"):
        ap.add_argument(f"--{name.replace('_', '-')}", type=float, default=None)
    ap.add_argument("--arch", default=None)
    ap.add_argument("--loss", default=None)
    ap.add_argument("--tag", default="default")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: unchanged)")
    args = ap.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch threads: {torch.get_num_threads()}", flush=True)

    data = work / "toyfaces32"
    if not (data / "meta.json").exists():
        t = time.perf_counter()
        make_toyfaces(data, n=args.n, size=32, seed=0, progress=False)
        print(f"ToyFaces made in {time.perf_counter() - t:.1f} s", flush=True)
    ds = load_dataset(data)
    attrs = ds.attribute_names

    overrides = {k: getattr(args, k) for k in ("steps", "width", "batch_size", "lr_g", "lr_d", "ema_decay", "arch", "loss")}
    cfg = GANConfig(**{k: v for k, v in overrides.items() if v is not None})
    print("GAN config:", cfg.model_dump(), flush=True)
    t = time.perf_counter()
    run = train_gan(data, work / f"gan-{args.tag}", cfg, progress=False)
    gan_s = time.perf_counter() - t
    import pandas as pd

    log = pd.read_csv(run / "log.csv")
    print(f"GAN trained in {gan_s:.1f} s this call; log elapsed {log['elapsed_s'].iloc[-1]:.1f} s, "
          f"{cfg.steps / log['elapsed_s'].iloc[-1]:.2f} steps/s, median {log['images_per_s'].median():.0f} img/s", flush=True)  # fmt: skip

    clf_dir = work / "classifier"
    t = time.perf_counter()
    train_classifier([data], attrs, clf_dir, ClassifierConfig(), progress=False)
    print(f"classifier ready in {time.perf_counter() - t:.1f} s", flush=True)
    clf = load_classifier(clf_dir)

    gen = load_generator(run)
    t = time.perf_counter()
    fake, _ = gen.sample(args.n_generated, seed=123)
    print(f"{args.n_generated} images generated in {time.perf_counter() - t:.1f} s", flush=True)
    save_png(work / f"grid-{args.tag}.png", image_grid(fake[:64], nrow=8), scale=4)

    tr_idx = ds.split_indices("train")
    real_pred = clf.predict(np.asarray(ds.images[tr_idx])).mean(0)  # score > calibrated threshold
    fake_pred = clf.predict(fake).mean(0)
    print(f"\n{'attribute':<22}{'train labels':>13}{'clf on train':>13}{'generated':>11}{'gap (pts)':>11}")
    worst = 0.0
    for j, a in enumerate(clf.attributes):
        label_rate = ds.labels(a, tr_idx).mean()
        gap = 100 * (fake_pred[j] - label_rate)
        worst = max(worst, abs(gap))
        print(f"{a:<22}{100 * label_rate:>12.1f}%{100 * real_pred[j]:>12.1f}%{100 * fake_pred[j]:>10.1f}%{gap:>+11.1f}")
    print(f"\nworst |gap| = {worst:.1f} points -> {'PASS' if worst <= 5 else 'FAIL'} (bar: 5)")
    print(f"grid: {work / f'grid-{args.tag}.png'}")


if __name__ == "__main__":
    main()
