"""The imbalance benchmark: the class-preserving autoencoder against its competitors, on fixed profiles.

Two benchmarks (``BENCHMARKS``), one per run: ``mnist-lt``, long-tailed MNIST
(:func:`~fairlatent.oversample.data.mnist_long_tailed`), and ``celeba-hair``, CelebA hair colour with its
natural long tail and an identity-disjoint balanced test set
(:func:`~fairlatent.oversample.data.celeba_hair_split`). For every seed: draw the split (a balanced test set),
fit the autoencoder with the mixer (``rae``) and without it (``rae_nomixer``: uniform random convex weights),
then train the CNN competitors of :mod:`.baselines` on the same split. Scores on the balanced test set: ACSA (mean per-class recall, the reference code's metric), the geometric mean of
per-class recalls (GM, 0 once any class is never recognised) and macro-F1, each with a 95 % bootstrap
interval over test rows (500 resamples) per seed; the report gives mean ± sd over seeds.

Profiles are fixed and named (``PROFILES``), so a figure in ``docs/benchmarks/imbalance.md`` can be re-made
exactly; the ``cpu`` profile shrinks the reference's networks and steps to fit two busy CPU cores, and says so.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from fairlatent.errors import FairlatentError
from fairlatent.metrics.bootstrap import resample_counts
from fairlatent.oversample.augment import GEOMETRIC
from fairlatent.oversample.baselines import CNNSettings, smote, train_cnn
from fairlatent.oversample.data import CELEBA_HAIR_CLASSES, ImbalancedSplit, celeba_hair_split, mnist_long_tailed
from fairlatent.oversample.rae import RAEConfig, fit_rae, load_rae
from fairlatent.train.engine import training_seconds
from fairlatent.utils.seed import rng

__all__ = ["BENCHMARKS", "METHODS", "PROFILES", "class_metrics", "bootstrap_intervals", "run_imbalance_benchmark",
           "sample_grid", "summarise", "write_markdown", "write_outputs"]

BENCHMARKS = ("mnist-lt", "celeba-hair")
#: The decoded-sample grid of each benchmark (one row per class, from the first seed's ``rae``).
GRID_NAMES = {"mnist-lt": "imbalance_mnist_samples.png", "celeba-hair": "imbalance_celeba_hair_samples.png"}

METHODS = ("ce", "reweighted", "ros", "smote_pixels", "latent_smote", "rae_nomixer", "rae", "rae_augment")

#: Fixed benchmark profiles. ``cpu``: the reference's architecture at a quarter of its width (conv 16/32,
#: dense 256), batch 32 pairs, no adversarial decoder term (its 5 critic steps per step would take most of
#: the budget, and the probe — the classifier scored — does not depend on it), the decoder trained on
#: reconstruction instead (weight 20: at weight 1 the re-encoded class loss dominates and, with no critic to
#: stop it, the decoder draws speckle that the encoder reads as the class; MAE 0.18 on long-tailed MNIST
#: at 300 steps against 0.10 at 20, same probe accuracy), lr 1e-3 (the reference's 2e-4 is for 100,001
#: steps); the competitors' CNN has the same encoder, the same lr and as many steps of as many real images.
#: Every model of the ``cpu`` profile gets standing batch-norm statistics after training (exact averages; see
#: :mod:`fairlatent.train.batchnorm`); the ``reference`` profile keeps the reference's EMA-averaged ones for
#: the autoencoder.
PROFILES: dict[str, dict] = {
    "cpu": {
        "rae": dict(z_dim=64, width=16, hidden=256, mixer_hidden=256, batch_size=32, adversarial=False,
                    decoder_recon_weight=20.0, steps=300, lr=1e-3, checkpoint_every=100, log_every=50,
                    standing_statistics=True),
        "cnn": dict(width=16, hidden=256, z_dim=64, steps=300, batch_size=64, lr=1e-3, standing_statistics=True),
    },
    # ``cpu`` at 600 steps with the reference's geometric augmentation for every model (fixed p: no critic to
    # adapt it to; no flips or colour ops: a mirrored digit is not a digit), so that the autoencoder and the
    # competitors are compared on the same augmented images
    "cpu-augment": {
        "rae": dict(z_dim=64, width=16, hidden=256, mixer_hidden=256, batch_size=32, adversarial=False,
                    decoder_recon_weight=20.0, steps=600, lr=1e-3, checkpoint_every=100, log_every=50,
                    standing_statistics=True, augment="fixed", augment_p=0.5, augment_ops=list(GEOMETRIC)),
        "cnn": dict(width=16, hidden=256, z_dim=64, steps=600, batch_size=64, lr=1e-3, standing_statistics=True,
                    augment_p=0.5, augment_ops=GEOMETRIC),
    },
    "reference": {
        "rae": dict(z_dim=64, steps=100_001, standing_statistics=False, augment="adaptive"),
        "cnn": dict(width=64, hidden=1024, z_dim=64, steps=20_000, batch_size=128, lr=2e-4),
    },
}


def class_metrics(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int, weights: np.ndarray | None = None
                  ) -> dict[str, float | list[float]]:  # fmt: skip
    """ACSA, GM, macro-F1 and per-class recall from (optionally row-weighted) labels and predictions."""
    cm = np.bincount(y_true * n_classes + y_pred, weights=weights, minlength=n_classes * n_classes).reshape(n_classes, n_classes)
    support, predicted, tp = cm.sum(1), cm.sum(0), np.diag(cm)
    recall = np.divide(tp, support, out=np.zeros(n_classes), where=support > 0)
    precision = np.divide(tp, predicted, out=np.zeros(n_classes), where=predicted > 0)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros(n_classes), where=precision + recall > 0)
    present = support > 0
    gm = float(np.exp(np.log(recall[present]).mean())) if np.all(recall[present] > 0) else 0.0
    return {"acsa": float(recall[present].mean()), "gm": gm, "macro_f1": float(f1[present].mean()),
            "recall": recall.tolist()}


def bootstrap_intervals(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int, *, seed: int,
                        n_resamples: int = 500) -> dict[str, list[float]]:  # fmt: skip
    """95 % percentile intervals of ACSA, GM and macro-F1 over bootstrap resamples of the test rows."""
    counts = resample_counts(rng(seed, "imbalance-bootstrap"), n_resamples, len(y_true))
    vals = {k: [] for k in ("acsa", "gm", "macro_f1")}
    for w in counts:
        m = class_metrics(y_true, y_pred, n_classes, w.astype(float))
        for k in vals:
            vals[k].append(m[k])
    return {k: [float(np.percentile(v, 2.5)), float(np.percentile(v, 97.5))] for k, v in vals.items()}


def _score(split: ImbalancedSplit, pred: np.ndarray, seed: int, seconds: float, n_boot: int) -> dict:
    m = class_metrics(split.test_labels, pred, split.n_classes)
    m["ci95"] = bootstrap_intervals(split.test_labels, pred, split.n_classes, seed=seed, n_resamples=n_boot)
    m["train_seconds"] = round(seconds, 1)
    return m


def run_seed(split: ImbalancedSplit, seed: int, work: Path, profile: str | dict, methods: Sequence[str], *,
             n_boot: int = 500, log: Callable[[str], None] = print) -> tuple[dict[str, dict], np.ndarray | None]:
    """Every method of ``methods`` on one split; returns scores by method and a grid of decoded samples.

    ``profile``: a name of :data:`PROFILES`, or a profile itself (``{"rae": …, "cnn": …}``), so that a study of
    one setting (e.g. ``benchmarks/imbalance_more_steps.py``, more steps) trains exactly what the benchmark
    trains. An autoencoder already under ``work`` is resumed (its ``steps`` may be larger than its run's).
    """
    prof = PROFILES[profile] if isinstance(profile, str) else profile
    cnn = CNNSettings(**prof["cnn"])
    out: dict[str, dict] = {}
    x, y, k = split.train_images, split.train_labels, split.n_classes
    counts = np.bincount(y, minlength=k)
    models = {}
    for name, mixer in (("rae", "learned"), ("rae_nomixer", "random")):
        needed = name in methods or (name == "rae" and ({"latent_smote", "rae_augment"} & set(methods)))
        if not needed:
            continue
        cfg = RAEConfig(**prof["rae"], mixer=mixer, seed=seed)
        t0 = time.perf_counter()
        d = fit_rae(x, y, work / f"seed{seed}" / name, cfg, class_names=split.class_names, progress=False)
        secs = time.perf_counter() - t0
        rec = training_seconds(d / "log.csv", secs)
        models[name] = load_rae(d)
        if name in methods:
            out[name] = _score(split, models[name].predict(split.test_images), seed, float(rec), n_boot)
            log(f"seed {seed} {name}: ACSA {out[name]['acsa']:.4f} ({rec:.0f} s)")

    def cnn_method(name: str, xs: np.ndarray, ys: np.ndarray, **kw) -> None:
        model, secs = train_cnn(xs, ys, k, cnn, seed=seed, **kw)
        out[name] = _score(split, model.predict(split.test_images), seed, secs, n_boot)
        log(f"seed {seed} {name}: ACSA {out[name]['acsa']:.4f} ({secs:.0f} s)")

    if "ce" in methods:
        cnn_method("ce", x, y)
    if "reweighted" in methods:
        cnn_method("reweighted", x, y, class_weights=len(y) / (k * counts))
    if "ros" in methods:
        cnn_method("ros", x, y, balanced_batches=True)
    if "smote_pixels" in methods:
        xs, ys = smote(x.reshape(len(x), -1).astype(np.float32), y, seed)
        xs = np.clip(np.round(xs), 0, 255).astype(np.uint8).reshape(-1, *x.shape[1:])
        cnn_method("smote_pixels", xs, ys)
    grid = None
    if "rae" in models:
        rae = models["rae"]
        if "latent_smote" in methods:
            z = rae.latents.numpy()
            zs, ys = smote(z, rae.latent_labels.numpy(), seed)
            new = slice(len(z), None)  # imbalanced-learn appends the synthetic rows after the originals
            dec = rae.decode(torch.from_numpy(zs[new]).float(), torch.from_numpy(ys[new]).long())
            cnn_method("latent_smote", np.concatenate([x, dec]), np.concatenate([y, ys[new]]))
        if "rae_augment" in methods:
            xa, ya = rae.sample(rae.balance_counts(), seed=seed)
            cnn_method("rae_augment", np.concatenate([x, xa]), np.concatenate([y, ya]))
        grid = sample_grid(rae, k, seed)
    return out, grid


def sample_grid(rae, n_classes: int, seed: int, per: int = 10) -> np.ndarray:
    """A grid of ``per`` decoded samples of every class, one row per class (RGB uint8)."""
    from fairlatent.utils.images import image_grid

    gx, _ = rae.sample([per] * n_classes, seed=seed)  # the classes in order, ``per`` each
    g = gx if gx.shape[3] == 3 else np.repeat(gx, 3, axis=3)
    return image_grid(g, nrow=per)


def run_imbalance_benchmark(*, work: str | os.PathLike, benchmark: str = "mnist-lt",
                            mnist: str | os.PathLike | None = None, celeba: str | os.PathLike | None = None,
                            seeds: Sequence[int] = (0, 1, 2), profile: str = "cpu", methods: Sequence[str] = METHODS,
                            n_boot: int = 500, log: Callable[[str], None] = print) -> dict:  # fmt: skip
    """Run one benchmark; returns the JSON record (see :func:`summarise`), ``benchmarks`` keyed by its name.

    ``mnist-lt`` reads the MNIST IDX folder ``mnist``; ``celeba-hair`` the fairlatent data set ``celeba`` (made
    by ``fairlatent data celeba --size 64``). The CelebA autoencoders are fitted under ``work/celeba-hair/``, so
    a ``work`` folder shared with an MNIST run never offers one benchmark's checkpoint to the other; the MNIST
    ones stay at ``work/seed*/``, where runs before this choice existed left them (a finished one is reused).
    """
    if benchmark not in BENCHMARKS:
        raise FairlatentError(f"benchmark {benchmark!r}: unknown; choose one of {', '.join(BENCHMARKS)}")
    if profile not in PROFILES:
        raise FairlatentError(f"profile {profile!r}: unknown; choose one of {', '.join(PROFILES)}")
    bad = [m for m in methods if m not in METHODS]
    if bad:
        raise FairlatentError(f"method {bad[0]!r}: unknown; choose from {', '.join(METHODS)}")
    if benchmark == "mnist-lt" and mnist is None:
        raise FairlatentError("benchmark 'mnist-lt' needs the folder of the MNIST IDX files (--mnist; mnist= in Python)")
    if benchmark == "celeba-hair" and celeba is None:
        raise FairlatentError("benchmark 'celeba-hair' needs the CelebA data set made by `fairlatent data celeba "
                              "--size 64` (--celeba DATASET_DIR; celeba= in Python)")
    work = Path(work) if benchmark == "mnist-lt" else Path(work) / benchmark
    results: dict[str, dict[str, dict]] = {}
    grids = {}
    split_info = None
    for seed in seeds:
        if benchmark == "mnist-lt":
            split = mnist_long_tailed(mnist, seed=seed)
            split_info = {"train_counts": split.train_counts(), "test_per_class": split.profile["test_per_class"],
                          "imbalance_ratio": split.profile["imbalance_ratio"]}
        else:
            split = celeba_hair_split(celeba, seed=seed)
            prof = split.profile
            if split_info is None:  # the first seed's split is the one the page describes; the other seeds hold
                split_info = {  # out other people, so their training counts differ a little (kept per seed)
                    "train_counts": split.train_counts(), "test_per_class": prof["test_per_class"],
                    "imbalance_ratio": prof["imbalance_ratio"], "class_names": list(split.class_names),
                    "attributes": prof["attributes"], "data": prof["data"], "image_size": prof["image_size"],
                    "single_label_counts": prof["single_label_counts"], "train_counts_by_seed": {},
                    "held_out_unused_by_seed": {}}  # fmt: skip
            split_info["train_counts_by_seed"][str(seed)] = split.train_counts()
            split_info["held_out_unused_by_seed"][str(seed)] = prof["held_out_unused"]
        scores, grid = run_seed(split, seed, work, profile, methods, n_boot=n_boot, log=log)
        for m, s in scores.items():
            results.setdefault(m, {})[str(seed)] = s
        if grid is not None:
            grids[seed] = grid
    record = {
        "format": "fairlatent-imbalance-benchmark", "version": 1, "profile": profile,
        "profile_settings": PROFILES[profile],
        "benchmarks": {benchmark: {"split": split_info, "seeds": list(seeds),
                                   "results": {m: results[m] for m in METHODS if m in results},
                                   "summary": summarise(results)}},
    }
    record["_grids"] = {benchmark: grids} if grids else {}
    return record


def summarise(results: dict[str, dict[str, dict]]) -> dict[str, dict]:
    """Mean and sd (over seeds, ddof 1) of ACSA, GM and macro-F1, and the mean per-class recall, by method."""
    out = {}
    for m, by_seed in results.items():
        rows = list(by_seed.values())
        s = {}
        for key in ("acsa", "gm", "macro_f1", "train_seconds"):
            v = np.array([r[key] for r in rows], dtype=float)
            s[key] = {"mean": float(v.mean()), "sd": float(v.std(ddof=1)) if len(v) > 1 else 0.0}
        s["recall_mean"] = np.mean([r["recall"] for r in rows], axis=0).tolist()
        out[m] = s
    return out


LABELS = {
    "ce": "cross-entropy", "reweighted": "class-reweighted CE", "ros": "random oversampling",
    "smote_pixels": "SMOTE on pixels", "latent_smote": "SMOTE in the AE's latent space (DeepSMOTE idea)",
    "rae_nomixer": "autoencoder without the mixer (random convex weights)",
    "rae": "class-preserving RAE (mixer), linear probe", "rae_augment": "CNN on real + RAE-decoded samples",
}


def _results_tables(b: dict, class_headers: Sequence[str]) -> list[str]:
    """The summary table and the per-class recall table of one benchmark's entry."""
    summ = b["summary"]
    pct = lambda s: f"{100 * s['mean']:.1f} ± {100 * s['sd']:.1f}"  # noqa: E731
    lines = [
        "Percent, mean ± sd over seeds; in brackets the mean of the per-seed 95 % bootstrap intervals (500 resamples "
        "of the test rows). Training time: seconds per model on one thread of a shared 2-core machine.",
        "",
        "| method | ACSA | GM | macro-F1 | train s |",
        "|---|---|---|---|---|",
    ]
    for m in METHODS:
        if m not in summ:
            continue
        s = summ[m]
        ci = lambda key: np.mean([r["ci95"][key] for r in b["results"][m].values()], axis=0)  # noqa: E731
        cells = [f"{pct(s[key])} [{100 * ci(key)[0]:.1f}, {100 * ci(key)[1]:.1f}]" for key in ("acsa", "gm", "macro_f1")]
        lines.append(f"| {LABELS[m]} (`{m}`) | " + " | ".join(cells) + f" | {s['train_seconds']['mean']:.0f} |")
    k = len(class_headers)
    lines += ["", "### Per-class recall (percent, mean over seeds)", "",
              "| method | " + " | ".join(class_headers) + " |", "|---|" + "---|" * k]
    for m in METHODS:
        if m in summ:
            lines.append(f"| `{m}` | " + " | ".join(f"{100 * r:.0f}" for r in summ[m]["recall_mean"]) + " |")
    return lines


def _grid_lines(grid_name: str | None, alt: str, what: str, kind: str) -> list[str]:
    """The decoded-samples paragraph of a benchmark's section (nothing without a grid)."""
    if not grid_name:
        return []
    return ["", "### Decoded samples", "", f"![decoded samples, {alt}](./{grid_name})", "",
            f"Ten new {what} from the `rae` model of the first seed: mixer-weighted convex combinations of two "
            f"training latents of the {kind}, decoded by the class-conditional decoder."]


def _mnist_section(b: dict, grid_name: str | None) -> list[str]:
    lines = [
        "## Long-tailed MNIST",
        "",
        f"Training counts per digit 0–9: {b['split']['train_counts']} (the reference code's MNIST profile at 1/5 "
        f"scale, imbalance ratio {b['split']['imbalance_ratio']}), drawn from the 10,000 MNIST test images after "
        f"holding out a balanced test set of {b['split']['test_per_class']} images per digit (a new split per seed).",
        "",
        *_results_tables(b, [str(c) for c in range(10)]),
    ]
    return lines + _grid_lines(grid_name, "one row per digit 0–9", "images per digit (rows 0–9)", "digit")


def _celeba_hair_section(b: dict, grid_name: str | None) -> list[str]:
    sp = b["split"]
    names = sp.get("class_names") or [n for n, _ in CELEBA_HAIR_CLASSES]
    first = str(b["seeds"][0]) if b["seeds"] else "?"
    by_seed = "; ".join(f"seed {s}: {c}" for s, c in sp.get("train_counts_by_seed", {}).items())
    lines = [
        "## CelebA hair colour",
        "",
        f"Classes {', '.join(names)} (CelebA attributes {', '.join(f'`{a}`' for a in sp.get('attributes', []))}), "
        f"single-label faces only (exactly one of the five attributes is 1), {sp.get('image_size', 64)} px, from the "
        f"data set `{sp.get('data', '?')}`: {sp.get('single_label_counts')} such faces per class. A balanced test set "
        f"of {sp['test_per_class']} faces per class is held out by identity (no person in both training and test; "
        f"a new split per seed) and training keeps the natural long tail of the rest: {sp['train_counts']} "
        f"(seed {first}, imbalance ratio {sp['imbalance_ratio']}; by seed: {by_seed}).",
        "",
        *_results_tables(b, names),
    ]
    lines += _grid_lines(grid_name, "one row per hair colour", f"faces per class (rows {', '.join(names)})", "class")
    return lines


SECTIONS = {"mnist-lt": _mnist_section, "celeba-hair": _celeba_hair_section}


def write_markdown(record: dict, path: str | os.PathLike, *, command: str, grid_names: dict[str, str] | None = None,
                   notes: str = "") -> None:  # fmt: skip
    """The page of a record holding one benchmark or both: a section per benchmark, in ``BENCHMARKS`` order.

    ``grid_names`` maps a benchmark to the file name of its decoded-sample grid (next to the page).
    """
    from fairlatent.utils.io import write_text

    benches = {k: record["benchmarks"][k] for k in BENCHMARKS if k in record.get("benchmarks", {})}
    if not benches:
        raise FairlatentError(f"{path}: the record holds no benchmark (expected one of {', '.join(BENCHMARKS)})")
    seeds = list(dict.fromkeys(s for b in benches.values() for s in b["seeds"]))
    lines = [
        "# Imbalance benchmark: class-preserving regularized autoencoders",
        "",
        "Minority oversampling with a class-preserving regularized autoencoder (Mondal et al., *Minority "
        "Oversampling for Imbalanced Data via Class-Preserving Regularized Auto-Encoders*, AISTATS 2023, PMLR 206; "
        "reference code github.com/arnabkmondal/OversamplingRAE), `fairlatent.oversample`, against its "
        "competitors on the same splits and seeds.",
        "",
        f"Made by: `{command}` (profile `{record['profile']}`, seeds {', '.join(map(str, seeds))}).",
    ]
    for key, b in benches.items():
        lines += ["", *SECTIONS[key](b, (grid_names or {}).get(key))]
    lines += ["", notes.strip(), ""]
    write_text(path, "\n".join(lines))


NOTES_COMMON = """\
## How to read this

- **Classifier scored.** `rae` and `rae_nomixer` are scored by their own classifier, the EMA encoder + linear
  probe (the method's final classifier). Every other row is a CNN with the same encoder architecture and a
  linear head, trained for as many steps on what that method gives it.
{profile}- **Standing batch-norm statistics, for every model.** After training, each model's batch-norm statistics
  are recomputed exactly over 16 batches drawn as in its training (`fairlatent.train.batchnorm`). The
  encoder's batch norms use Keras' momentum (0.99), and the reference averages their moving statistics into
  the EMA like weights; after a few hundred steps those still carry the initial mean 0 / variance 1 and lag
  the weights. When this was added (2026-12-01) the recomputation alone moved `rae` on long-tailed MNIST,
  seed 0, from 66.6 to 86.9 ACSA (the same weights). The competitors' CNNs share the encoder and get the same
  treatment, so the comparison stays on one footing (`ce` on long-tailed MNIST, mean of 3 seeds: 65.9 before,
  81.5 after).
"""

#: What each profile leaves out of the reference's setting (the page's second note).
PROFILE_NOTES = {
    "cpu": """\
- **Profile `cpu` is not the paper's budget.** The reference trains 100,001 steps of full-width networks
  (conv 64/128, dense 1024) with a conditional WGAN-GP decoder term (5 critic steps per step) and adaptive
  augmentation; here the networks are a quarter as wide, the training is a few hundred steps, the adversarial
  term is off (the decoder learns by reconstruction, weight 20, + re-encoded class loss instead) and there is no
  augmentation. The figures measure the method's latent-space regularisation at this budget, not the paper's
  setting.
""",
    "cpu-augment": """\
- **Profile `cpu-augment` is `cpu` with augmentation, for every model.** As `cpu` (a quarter of the
  reference's widths, no adversarial decoder term), at 600 steps, and every training image of the autoencoder
  and of each competitor's CNN is augmented with probability 0.5 by the reference's geometric ops (shift up to
  12.5 %, rotation up to 45°, zoom-in up to 25 %; `fairlatent.oversample.augment`). The reference adapts the
  probability to its critic and also flips, recolours and cuts out; `cpu` has no critic, and a mirrored digit
  is not a digit. Every row gets the same augmentation, so a gap between rows is not the augmentation's.
""",
    "reference": """\
- **Profile `reference`** is the reference code's setting: full-width networks, 100,001 steps, the
  conditional WGAN-GP decoder term and its adaptive augmentation (every op, p moved by the critic).
""",
}

#: The paper-comparison note of each benchmark (only the abstract of the paper was reachable from here).
PAPER_NOTES = {
    "mnist-lt": """\
- **Paper figures.** Not quoted: only the abstract (proceedings.mlr.press/v206/mondal23a.html, PMLR 206:3440–3465)
  was reachable from here, not the paper's tables, so its long-tailed MNIST ACSA could not be checked. Its split
  also differs (4,000 … 40 training images from the 60,000 MNIST training images, 800 test images per class,
  100,001 steps), so its figures would not be comparable one to one anyway.
""",
    "celeba-hair": """\
- **Paper figures (CelebA).** Not quoted: only the abstract (proceedings.mlr.press/v206/mondal23a.html) was
  reachable from here, so no CelebA figure of the paper could be checked. The split here is this project's own
  (the 10,000 shared CelebA images, single-label faces, 64 px, an identity-disjoint balanced test set), so the
  paper's figures would not be comparable one to one anyway. With a few hundred test faces the per-seed
  bootstrap intervals are wide; compare methods by the spread over seeds as well.
""",
}
NOTES = NOTES_COMMON.format(profile=PROFILE_NOTES["cpu"]) + PAPER_NOTES["mnist-lt"]  # the MNIST page's notes


def notes_for(record: dict) -> str:
    """The "How to read this" notes for the benchmarks a record holds."""
    common = NOTES_COMMON.format(profile=PROFILE_NOTES.get(record.get("profile", "cpu"), ""))
    return common + "".join(PAPER_NOTES[k] for k in BENCHMARKS if k in record.get("benchmarks", {}))


def write_outputs(record: dict, out_dir: str | os.PathLike, *, command: str, stem: str | None = None
                  ) -> dict[str, Path]:  # fmt: skip
    """``{stem}.json``, ``{stem}.md`` and each benchmark's decoded-sample grid (:data:`GRID_NAMES`).

    ``stem`` defaults to ``imbalance`` for a record holding long-tailed MNIST (the names of the committed
    page) and to ``imbalance_celeba_hair`` for a record holding only CelebA hair colour, so a CelebA run
    written into ``docs/benchmarks`` adds its own page instead of replacing the measured MNIST one. A profile
    other than ``cpu`` adds its name (``imbalance_cpu_augment``; the grids too) for the same reason.
    """
    from fairlatent.utils.images import save_png
    from fairlatent.utils.io import write_json

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    grids = record.pop("_grids", {})
    benches = [k for k in BENCHMARKS if k in record.get("benchmarks", {})]
    profile = record.get("profile", "cpu")
    suffix = "" if profile == "cpu" else "_" + profile.replace("-", "_")
    if stem is None:
        stem = "imbalance" if "mnist-lt" in benches or not benches else "imbalance_" + benches[0].replace("-", "_")
        stem += suffix
    paths = {"json": out_dir / f"{stem}.json", "md": out_dir / f"{stem}.md"}
    grid_names = {}
    for key in benches:
        if grids.get(key):
            grid_names[key] = GRID_NAMES[key].replace(".png", f"{suffix}.png")
            paths["grid" if key == "mnist-lt" else f"grid_{key}"] = out_dir / grid_names[key]
            save_png(out_dir / grid_names[key], grids[key][min(grids[key])], scale=2)
    write_json(paths["json"], {**record, "command": command})
    write_markdown(record, paths["md"], command=command, grid_names=grid_names, notes=notes_for(record))
    return paths
