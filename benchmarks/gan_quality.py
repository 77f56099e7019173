"""GAN quality bar on ToyFaces 32 px: attribute rates of generated images vs the training data.

Steps: make ToyFaces (32 px, ~20k faces; optionally with some attributes drawn faintly), train the GAN
with the default :class:`GANConfig` (plus ``--set key=value`` overrides), train a multi-attribute
classifier on the real data, generate 10k images, and compare per attribute

    rate_generated = mean(classifier score > threshold)   over the 10k generated images
    rate_train     = mean(label)                          over the real train split

for both of the classifier's thresholds ("calibrated": predicted rate = label rate on validation;
"f1": best F1 on validation). The bar: |rate_generated − rate_train| ≤ 5 points for every attribute
(judged with the calibrated threshold). As controls the same classifier is applied to the real train
images, and its accuracy on the validation split is printed (a gap the judge itself makes on real data is
not the GAN's). Blurry generated details can sit near the threshold, so a large difference between the
two thresholds' rates flags attributes whose rate is decided by the judge rather than by the images.
With ``--second-judge`` an independently trained classifier (another seed and width) scores the same
generated images too: where both judges agree on nearly every image, the generated rate is a property
of the images, not of one judge's decision boundary.
Prints a table and the timings; saves the 8×8 grid of the final generator next to the run.

    python benchmarks/gan_quality.py [--work DIR] [--set steps=4000 --set lr_g=2e-4 ...] [--faint Wearing_Hat=0.5]
    python benchmarks/gan_quality.py --eval-run DIR     # score an existing run, no training
    python benchmarks/gan_quality.py --every 1000 --set steps=16000   # learning curve of the gaps

With ``--every K`` the run is trained in legs of K steps (each leg resumes the previous one's checkpoint,
which ends bitwise identical to one uninterrupted run) and the gaps are printed after every leg: whether
more training closes a gap or the generator has settled with it.
"""

from __future__ import annotations

import argparse
import json
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


def _parse_set(items: list[str]) -> dict:
    """``key=value`` pairs; values parsed as JSON when possible (numbers, lists, booleans), else strings."""
    out = {}
    for item in items:
        key, _, value = item.partition("=")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def read_log_elapsed(run: Path) -> float:
    """Training seconds of a run so far (last ``elapsed_s`` of its log, which adds up resumed legs)."""
    import pandas as pd

    return float(pd.read_csv(run / "log.csv")["elapsed_s"].iloc[-1])


def _label_rates(ds, clf) -> np.ndarray:
    tr_idx = ds.split_indices("train")
    return np.array([ds.labels(a, tr_idx).mean() for a in clf.attributes])


def _generated_rates(gen, clf, n: int) -> np.ndarray:
    """Share of ``n`` generated images (latent seed 123) the judge calls positive, calibrated threshold."""
    fake, _ = gen.sample(n, seed=123)
    cut = np.array([clf.thresholds[a]["calibrated"] for a in clf.attributes])
    return (clf.predict_scores(fake) > cut).mean(0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", default="/tmp/fairlatent-gan-quality")
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--n-generated", type=int, default=10000)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="GANConfig override (repeatable)")
    ap.add_argument("--faint", action="append", default=[], metavar="ATTR=SHARE",
                    help="draw that share of ATTR faintly (separate data set and classifier)")  # fmt: skip
    ap.add_argument("--tag", default="default")
    ap.add_argument("--eval-run", default=None, help="score this finished run directory instead of training one")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: unchanged)")
    ap.add_argument("--every", type=int, default=None, metavar="K",
                    help="train in legs of K steps and print the gaps after each (learning curve)")  # fmt: skip
    ap.add_argument("--second-judge", action="store_true",
                    help="also score with an independently trained classifier (seed 1, width 24)")  # fmt: skip
    args = ap.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch threads: {torch.get_num_threads()}", flush=True)

    faint = {k: float(v) for k, v in _parse_set(args.faint).items()}
    variant = "toyfaces32" + "".join(f"-faint-{k}-{v:g}" for k, v in sorted(faint.items()))
    data = work / variant
    if not (data / "meta.json").exists():
        t = time.perf_counter()
        make_toyfaces(data, n=args.n, size=32, seed=0, faint=faint or None, progress=False)
        print(f"ToyFaces ({variant}) made in {time.perf_counter() - t:.1f} s", flush=True)
    ds = load_dataset(data)
    attrs = ds.attribute_names

    clf_dir = work / f"classifier-{variant}"
    t = time.perf_counter()
    train_classifier([data], attrs, clf_dir, ClassifierConfig(), progress=False)
    print(f"classifier ready in {time.perf_counter() - t:.1f} s", flush=True)
    clf = load_classifier(clf_dir)
    label_rates = _label_rates(ds, clf)

    if args.eval_run:
        run = Path(args.eval_run)
        print(f"scoring existing run {run}", flush=True)
    else:
        cfg = GANConfig(**_parse_set(args.set))
        print("GAN config:", cfg.model_dump(), flush=True)
        run = work / f"gan-{variant}-{args.tag}"
        legs = list(range(args.every, cfg.steps, args.every)) if args.every else []
        # a run already past a leg cannot be scored there again (only its latest weights are kept)
        done = json.loads((run / "config.json").read_text())["step"] if (run / "config.json").is_file() else 0
        if any(s <= done for s in legs):
            print(f"{run} is already at step {done}: legs up to it are skipped", flush=True)
            legs = [s for s in legs if s > done]
        if legs:
            print(f"\n{'step':>6}{'train s':>9}  " + "".join(f"{a[:8]:>9}" for a in clf.attributes) + f"{'worst':>7}")
        t = time.perf_counter()
        for steps in [*legs, cfg.steps]:
            train_gan(data, run, cfg.model_copy(update={"steps": steps}), progress=False)
            if legs:
                gaps = 100 * (_generated_rates(load_generator(run), clf, args.n_generated) - label_rates)
                print(f"{steps:>6}{read_log_elapsed(run):>9.0f}  " + "".join(f"{g:>+9.1f}" for g in gaps)
                      + f"{np.abs(gaps).max():>7.1f}", flush=True)  # fmt: skip
        gan_s, elapsed = time.perf_counter() - t, read_log_elapsed(run)
        print(f"GAN trained in {gan_s:.1f} s this call; log elapsed {elapsed:.1f} s, "
              f"{cfg.steps / elapsed:.2f} steps/s", flush=True)  # fmt: skip

    gen = load_generator(run)
    t = time.perf_counter()
    fake, _ = gen.sample(args.n_generated, seed=123)
    print(f"{len(fake)} images generated in {time.perf_counter() - t:.1f} s", flush=True)
    grid_path = work / f"grid-{variant}-{args.tag}.png"
    save_png(grid_path, image_grid(fake[:64], nrow=8), scale=4)

    tr_idx, va_idx = ds.split_indices("train"), ds.split_indices("val")
    real_scores = clf.predict_scores(np.asarray(ds.images[tr_idx]))
    val_pred = clf.predict(np.asarray(ds.images[va_idx]))
    fake_scores = clf.predict_scores(fake)
    cut = {k: np.array([clf.thresholds[a][k] for a in clf.attributes]) for k in ("calibrated", "f1")}
    real_pred = (real_scores > cut["calibrated"]).mean(0)
    # "confident" rates: score > 0.9. On real images the judge is sure of nearly every positive, so a
    # generated rate far below the label rate here means the detail is rarely drawn convincingly, even
    # when the (low) calibrated threshold counts faint attempts as positives.
    sure_real, sure_fake = (real_scores > 0.9).mean(0), (fake_scores > 0.9).mean(0)
    fake_rate = {k: (fake_scores > c).mean(0) for k, c in cut.items()}
    # share of generated images whose score lies in the uncertain band 0.1–0.9 (blur shows up here)
    unsure = ((fake_scores > 0.1) & (fake_scores < 0.9)).mean(0)
    print(f"\n{'attribute':<20}{'train':>7}{'val acc':>8}{'clf/train':>10}{'gen cal':>8}{'gap cal':>8}"
          f"{'gen f1':>8}{'gap f1':>8}{'unsure':>8}{'>0.9 real':>10}{'>0.9 gen':>9}")  # fmt: skip
    worst = {"calibrated": 0.0, "f1": 0.0}
    for j, a in enumerate(clf.attributes):
        label_rate = label_rates[j]
        acc = (val_pred[:, j] == ds.labels(a, va_idx)).mean()
        gaps = {k: 100 * (fake_rate[k][j] - label_rate) for k in fake_rate}
        for k in gaps:
            worst[k] = max(worst[k], abs(gaps[k]))
        print(f"{a:<20}{100 * label_rate:>6.1f}%{100 * acc:>7.1f}%{100 * real_pred[j]:>9.1f}%"
              f"{100 * fake_rate['calibrated'][j]:>7.1f}%{gaps['calibrated']:>+8.1f}"
              f"{100 * fake_rate['f1'][j]:>7.1f}%{gaps['f1']:>+8.1f}{100 * unsure[j]:>7.1f}%"
              f"{100 * sure_real[j]:>9.1f}%{100 * sure_fake[j]:>8.1f}%")  # fmt: skip
    for k, w in worst.items():
        print(f"worst |gap| ({k} threshold) = {w:.1f} points -> {'PASS' if w <= 5 else 'FAIL'} (bar: 5)")
    if args.second_judge:
        judge2_dir = work / f"classifier-{variant}-judge2"
        t = time.perf_counter()
        train_classifier([data], attrs, judge2_dir, ClassifierConfig(seed=1, width=24), progress=False)
        print(f"\nsecond judge (seed 1, width 24) ready in {time.perf_counter() - t:.1f} s", flush=True)
        judge2 = load_classifier(judge2_dir)
        assert list(judge2.attributes) == list(clf.attributes)
        pred1, pred2 = fake_scores > cut["calibrated"], judge2.predict(fake)
        real2 = judge2.predict(np.asarray(ds.images[tr_idx])).mean(0)
        print(f"{'attribute':<20}{'train':>7}{'j2/train':>9}{'gen j1':>8}{'gen j2':>8}{'gap j2':>8}{'agree':>8}")
        for j, a in enumerate(clf.attributes):
            label_rate = label_rates[j]
            print(f"{a:<20}{100 * label_rate:>6.1f}%{100 * real2[j]:>8.1f}%{100 * pred1[:, j].mean():>7.1f}%"
                  f"{100 * pred2[:, j].mean():>7.1f}%{100 * (pred2[:, j].mean() - label_rate):>+8.1f}"
                  f"{100 * (pred1[:, j] == pred2[:, j]).mean():>7.1f}%")  # fmt: skip
    print(f"grid: {grid_path}")


if __name__ == "__main__":
    main()
