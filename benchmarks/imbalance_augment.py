"""Does augmentation, or the method, lift the class-preserving autoencoder on long-tailed MNIST?

The imbalance benchmark's ``cpu-augment`` profile (``fairlatent benchmark imbalance --profile cpu-augment``)
trains the autoencoder and every competitor's CNN on images augmented as the reference code augments them
(geometric ops, p = 0.5; :mod:`fairlatent.oversample.augment`), at 600 steps. This script trains the same
models at the same 600 steps **without** augmentation, on the same splits and seeds (the ``cpu-augment``
profile with augmentation off: the ``cpu`` profile's settings at 600 steps), and prints both side by side, so
that two questions get separate answers:

- the reference's protocol: the augmented autoencoder against competitors trained as they are usually run,
  without augmentation (what the issue's target, "+3 ACSA over SMOTE on pixels", compares);
- the fair one: every model given the same augmentation (the ``cpu-augment`` page's own table).

::

    OMP_NUM_THREADS=1 fairlatent benchmark imbalance --profile cpu-augment --mnist ../shared/data/mnist \\
        --work /tmp/imb_aug --out-dir docs/benchmarks --seeds 0,1,2
    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/imbalance_augment.py --mnist ../shared/data/mnist \\
        --work /tmp/imb_plain --seeds 0,1,2 --out docs/benchmarks/imbalance_augment_plain.json \\
        --augmented docs/benchmarks/imbalance_cpu_augment.json

Prints a JSON line per seed while it runs, then the table (ACSA, percent, mean ± sd over the seeds).
``--out`` keeps the plain runs' scores (resumable: a seed already in it is not rerun).

``--every-op`` also trains ``rae`` with all of the reference's ops (flips, colour and cutout besides the
geometric ones; p = 0.5, otherwise the ``cpu-augment`` settings) and adds its row: why the profile keeps
the geometric ones.

``--adversarial`` also trains ``rae`` with the two ingredients of the reference's protocol that the CPU
profiles leave out: the conditional WGAN-GP decoder term and the augmentation probability adapted by its
critic (ADA), with the reference's decoder loss (no reconstruction term, ``decoder_recon_weight = 0``).
Everything else is ``cpu-augment``'s (widths, lr, batch, the geometric ops); 3,000 engine steps, so that at
one main step in every ``period`` = 5 the encoder and probe get the same 600 updates as in ``cpu-augment``.

``--one-critic`` trains the ``--adversarial`` setting with one critic update per adversarial step instead of
the reference's 5: whether the critic's effect on the decoder survives at a fraction of its cost.
``--one-critic-fixed`` trains that with ``cpu-augment``'s fixed p = 0.5 instead of the adaptive p (which a
weak critic keeps near 0, leaving the probe unaugmented).

With the critic the decoder may draw better digits, so ``--adversarial`` also scores the two methods that train
``cpu-augment``'s CNN on decoded samples (``latent_smote``, ``rae_augment``) on that autoencoder.

``--grids DIR`` writes each variant's decoded samples of the first of ``--seeds`` (one row per class) to
``DIR/imbalance_mnist_samples_<variant>.png``; for a recorded seed it reads the finished autoencoder and trains
nothing.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

METHODS = ["rae", "rae_nomixer", "ce", "reweighted", "ros", "smote_pixels", "latent_smote"]


def plain_profile() -> dict:
    """``cpu-augment`` with augmentation off everywhere: the ``cpu`` profile's models at 600 steps."""
    from fairlatent.oversample.benchmark import PROFILES

    prof = PROFILES["cpu-augment"]
    rae = {k: v for k, v in prof["rae"].items() if not k.startswith("augment")}
    cnn = {**prof["cnn"], "augment_p": 0.0}
    return {"rae": rae, "cnn": cnn}


def variant_profiles() -> dict[str, dict]:
    """The extra ``rae`` settings the script can add, each ``cpu-augment``'s with one ingredient changed."""
    from fairlatent.oversample.augment import OPS
    from fairlatent.oversample.benchmark import PROFILES
    from fairlatent.oversample.rae import RAEConfig

    rae, cnn = PROFILES["cpu-augment"]["rae"], PROFILES["cpu-augment"]["cnn"]
    period = RAEConfig.model_fields["period"].default  # one main step in every ``period``: as many main steps
    out = {
        "rae_every_op": {"rae": {**rae, "augment_ops": list(OPS)}, "cnn": cnn},
        "rae_adversarial": {"rae": {**rae, "adversarial": True, "augment": "adaptive", "decoder_recon_weight": 0.0,
                                    "steps": period * rae["steps"]}, "cnn": cnn},
    }
    out["rae_adversarial_1critic"] = {"rae": {**out["rae_adversarial"]["rae"], "n_critic": 1}, "cnn": cnn}
    out["rae_adversarial_1critic_fixed"] = {"rae": {**out["rae_adversarial_1critic"]["rae"], "augment": "fixed",
                                                    "augment_p": rae["augment_p"]}, "cnn": cnn}
    return out


#: What each variant trains: its ``rae``, and (with the critic, whose decoder may draw better digits) the two
#: methods that train ``cpu-augment``'s CNN on its decoded samples, for comparison with that page's rows
VARIANT_METHODS = {"rae_every_op": ["rae"], "rae_adversarial": ["rae", "latent_smote", "rae_augment"],
                   "rae_adversarial_1critic": ["rae", "latent_smote", "rae_augment"],
                   "rae_adversarial_1critic_fixed": ["rae", "latent_smote", "rae_augment"]}
VARIANT_LABELS = {"rae_every_op": "`rae`, every reference op",
                  "rae_adversarial": "`rae`, the reference's critic + adaptive p, 3,000 steps (600 main)",
                  "latent_smote_adversarial": "`latent_smote` on that critic-trained autoencoder",
                  "rae_augment_adversarial": "`rae_augment` on that critic-trained autoencoder",
                  "rae_adversarial_1critic": "`rae`, the same with 1 critic update a step (the reference: 5)",
                  "latent_smote_adversarial_1critic": "`latent_smote` on that autoencoder",
                  "rae_augment_adversarial_1critic": "`rae_augment` on that autoencoder",
                  "rae_adversarial_1critic_fixed": "`rae`, 1 critic update a step and a fixed p = 0.5",
                  "latent_smote_adversarial_1critic_fixed": "`latent_smote` on that autoencoder",
                  "rae_augment_adversarial_1critic_fixed": "`rae_augment` on that autoencoder"}


def record_key(variant: str, method: str) -> str:
    """Where a variant's method is recorded: ``rae_adversarial``, ``latent_smote_adversarial``, …"""
    return variant if method == "rae" else f"{method}_{variant.removeprefix('rae_')}"


def acsa_table(plain: dict[str, dict[str, float]], augmented: dict[str, dict[str, float]] | None) -> str:
    """Markdown: one row per method, ACSA mean ± sd (percent) without and with augmentation."""

    def cell(by_seed: dict[str, float] | None) -> str:
        if not by_seed:
            return "–"
        v = 100 * np.array(list(by_seed.values()))
        return f"{v.mean():.1f} ± {v.std(ddof=1) if len(v) > 1 else 0.0:.1f}"

    rows = ["| method | no augmentation | augmented (p = 0.5, geometric) |", "|---|---|---|"]
    for m in METHODS:
        rows.append(f"| `{m}` | {cell(plain.get(m))} | {cell((augmented or {}).get(m))} |")
    for name, label in VARIANT_LABELS.items():
        if name in plain:
            rows.append(f"| {label} | – | {cell(plain[name])} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> None:
    from fairlatent.oversample.benchmark import run_seed, sample_grid
    from fairlatent.oversample.data import mnist_long_tailed
    from fairlatent.oversample.rae import load_rae
    from fairlatent.utils.images import save_png
    from fairlatent.utils.io import read_json, write_json

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mnist", default="../shared/data/mnist")
    p.add_argument("--work", required=True, help="where the plain autoencoders go (resumable)")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--out", required=True, help="JSON of the plain runs' scores (a seed already there is kept)")
    p.add_argument("--augmented", help="the cpu-augment profile's imbalance_cpu_augment.json, for the table")
    p.add_argument("--every-op", action="store_true", help="also rae with every one of the reference's ops")
    p.add_argument("--adversarial", action="store_true", help="also rae with the critic and adaptive augmentation")
    p.add_argument("--one-critic", action="store_true", help="also the --adversarial rae with 1 critic update a step")
    p.add_argument("--one-critic-fixed", action="store_true", help="also that with cpu-augment's fixed p instead")
    p.add_argument("--grids", help="a folder: each variant's decoded samples of the first seed, one row per class, "
                                   "as imbalance_mnist_samples_<variant>.png")
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    out = Path(a.out)
    rec = read_json(out) if out.is_file() else {"profile": plain_profile(), "acsa": {}}
    for seed in [int(s) for s in a.seeds.split(",")]:
        if all(str(seed) in rec["acsa"].get(m, {}) for m in METHODS):
            continue
        split = mnist_long_tailed(a.mnist, seed=seed)
        scores, _ = run_seed(split, seed, Path(a.work), plain_profile(), METHODS, log=lambda _line: None)
        for m in METHODS:
            rec["acsa"].setdefault(m, {})[str(seed)] = scores[m]["acsa"]
        write_json(out, rec)
        print(json.dumps({"seed": seed, **{m: round(100 * scores[m]["acsa"], 2) for m in METHODS}}), flush=True)
    variants = [v for v, on in (("rae_every_op", a.every_op), ("rae_adversarial", a.adversarial),
                                ("rae_adversarial_1critic", a.one_critic),
                                ("rae_adversarial_1critic_fixed", a.one_critic_fixed)) if on]
    for name in variants:
        prof, keys = variant_profiles()[name], {m: record_key(name, m) for m in VARIANT_METHODS[name]}
        for i, seed in enumerate(int(s) for s in a.seeds.split(",")):
            want_grid = a.grids and i == 0
            done = all(str(seed) in rec["acsa"].get(k, {}) for k in keys.values())
            if done and not want_grid:
                continue
            split = mnist_long_tailed(a.mnist, seed=seed)
            folder = Path(a.work) / name.removeprefix("rae_")
            if done:  # recorded: only its grid is wanted, from the finished autoencoder (run_seed's grid)
                grid = sample_grid(load_rae(folder / f"seed{seed}" / "rae"), split.n_classes, seed)
            else:
                scores, grid = run_seed(split, seed, folder, prof, list(keys), log=lambda _line: None)
                for m, k in keys.items():
                    rec["acsa"].setdefault(k, {})[str(seed)] = scores[m]["acsa"]
                rec.setdefault("train_seconds", {}).setdefault(name, {})[str(seed)] = scores["rae"]["train_seconds"]
                write_json(out, rec)
                print(json.dumps({"seed": seed, **{k: round(100 * scores[m]["acsa"], 2) for m, k in keys.items()},
                                  "train_seconds": scores["rae"]["train_seconds"]}), flush=True)
            if want_grid:
                save_png(Path(a.grids) / f"imbalance_mnist_samples_{name.removeprefix('rae_')}.png", grid, scale=2)
    augmented = None
    if a.augmented:
        res = read_json(Path(a.augmented))["benchmarks"]["mnist-lt"]["results"]
        augmented = {m: {s: r["acsa"] for s, r in by_seed.items()} for m, by_seed in res.items()}
    print(acsa_table(rec["acsa"], augmented))


if __name__ == "__main__":
    main()
