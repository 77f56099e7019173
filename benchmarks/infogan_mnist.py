"""InfoGAN on the 10,000 MNIST test digits: does the categorical code find the digits?

Per seed: train the GAN job (``train_gan`` with InfoGAN codes: 62-d noise, one 10-way categorical code,
two U(−1, 1) continuous codes, λ = 1, the reference's learning rates G 1e-3 / D 2e-4, Adam β₁ 0.5, the
non-saturating loss) on all 10,000 images, then score Q on the real images as the paper does: Q's argmax
category for each digit, matched one-to-one to the digit labels by the Hungarian method
(:func:`fairlatent.metrics.cluster.cluster_accuracy`). Also reported: the MI lower bound ln 10 − CE
logged at the end of training (mean of the last log interval; ceiling ln 10 ≈ 2.303) and the wall time.
Training runs in chunks of ``--eval-every`` steps through the job's own resume (bitwise identical to
one uninterrupted run), so the accuracy curve comes for free. Labels are used for scoring only.

``--arch infogan_mnist`` trains the reference's own MNIST networks (openai/InfoGAN: FC 1024 layers, batch
norm in G, D and Q; :class:`fairlatent.models.gan.InfoGANMNISTDiscriminator`) with the reference's settings:
width 64 (= the reference's layer sizes), batch 128, lr D 2e-4 / G 1e-3, Adam β₁ 0.5. The default
``--arch dcgan`` is the project's DCGAN (width 16, batch 64, no batch norm in D), as measured first.

Saves ``OUT/grid_seed{S}.png``: one row per category (in the matched digit order), the two continuous
codes swept over [−2, 2] (left block cont0, right block cont1; the same noise everywhere), and
``OUT/results.json``.

    python benchmarks/infogan_mnist.py --seeds 0,1,2 --steps 4000 [--mnist ../shared/data/mnist] [--out DIR]
    python benchmarks/infogan_mnist.py --arch infogan_mnist --seeds 0,1,2 --steps 800 --eval-every 200
    python benchmarks/infogan_mnist.py --arch infogan_mnist --threads 2 --precision bf16 --fused-optimizer ...
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from fairlatent.data.dataset import write_dataset
from fairlatent.data.mnist import mnist_table, read_mnist
from fairlatent.metrics.cluster import best_matching, cluster_accuracy
from fairlatent.models.infogan import code_spec, load_infogan, predict_codes, sweep_latents
from fairlatent.train.checkpoint import load_checkpoint, load_module_state
from fairlatent.train.gan import GANConfig, GANTrainer, train_gan
from fairlatent.utils.images import image_grid, save_png


# Per architecture: the settings --width and --batch-size default to. dcgan: what the first measurements used;
# infogan_mnist: the reference's (openai/InfoGAN launchers/run_mnist_exp.py: batch 128; its layer sizes = width 64).
ARCH_DEFAULTS = {"dcgan": {"width": 16, "batch_size": 64}, "infogan_mnist": {"width": 64, "batch_size": 128}}


def config(seed: int, steps: int, every: int, args: argparse.Namespace) -> GANConfig:
    settings = dict(
        arch=args.arch, loss="ns", latent_dim=62, info_categorical=[10], info_continuous=2, info_lambda_cat=1.0,
        info_lambda_cont=args.lambda_cont, width=args.width, batch_size=args.batch_size, lr_g=args.lr_g,
        lr_d=args.lr_d, betas=(0.5, 0.999), d_minibatch_std=args.minibatch_std, flip=False, steps=steps, seed=seed,
        checkpoint_every=every, sample_every=every, log_every=min(50, every), precision=args.precision,
        fused_optimizer=args.fused_optimizer,
    )  # fmt: skip
    return GANConfig(**{**settings, **json.loads(args.set)})


def q_accuracy(cfg: GANConfig, run: Path, images: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
    """Cluster accuracy of Q's argmax category on the real images (D and Q from the run's checkpoint)."""
    tr = GANTrainer(cfg, 32)  # eval mode in predict_codes: D's and Q's batch norms use running statistics
    tensors = load_checkpoint(run / "checkpoint")[0]
    load_module_state(tr.D, tensors, "D", source=run / "checkpoint")
    cats, _ = predict_codes(tr.D, images, cfg.info_categorical, cfg.info_continuous)
    return cluster_accuracy(cats[:, 0], labels, 10), cats[:, 0]


def record_into(path: Path, args: argparse.Namespace, results: list[dict]) -> None:
    """Merge the per-seed figures into ``path``'s ``infogan_mnist`` list (atomic write; other keys untouched).

    The list holds one entry per setting that makes a figure comparable (arch, width, batch, λ_cont, steps,
    and precision / fused optimiser / noise when not the default): seeds of the same setting accumulate in
    its entry (a seed recorded again replaces its figures), and another setting gets an entry of its own, so
    seeds of two settings are never averaged together. An entry written as a single dict (before the list)
    is kept as the list's first entry."""
    from fairlatent.utils.io import read_json, write_json

    record = read_json(path) if path.is_file() else {}
    setting = {"arch": args.arch, "width": args.width, "batch_size": args.batch_size, "lambda_cont": args.lambda_cont,
               "steps": args.steps, "data": "the 10,000 MNIST test digits", "script": "benchmarks/infogan_mnist.py"}
    # named only when not the default, so entries recorded before these options existed stay comparable
    if getattr(args, "precision", "fp32") != "fp32":
        setting["precision"] = args.precision
    if getattr(args, "fused_optimizer", False):
        setting["fused_optimizer"] = True
    if getattr(args, "noise", "normal") != "normal":  # set by benchmarks/infogan_mnist_uniform_noise.py
        setting["noise"] = args.noise
    entries = record.get("infogan_mnist") or []
    entries = [entries] if isinstance(entries, dict) else list(entries)
    index = next((i for i, e in enumerate(entries) if e.get("setting") == setting), len(entries))
    seeds = dict(entries[index]["seeds"]) if index < len(entries) else {}
    for r in results:
        seeds[str(r["seed"])] = {"accuracy": r["accuracy"], "mi_cat_final": r["mi_cat_final"], "train_s": r["train_s"],
                                 "per_digit_accuracy": r["per_digit_accuracy"],
                                 "curve": [{k: c[k] for k in ("step", "accuracy", "mi_cat")} for c in r["curve"]]}
    accs = [v["accuracy"] for v in seeds.values()]
    mis = [v["mi_cat_final"] for v in seeds.values()]
    entry = {"setting": setting, "seeds": dict(sorted(seeds.items())), "accuracy_mean": float(np.mean(accs)),
             "accuracy_worst": float(min(accs)), "mi_cat_mean": float(np.mean(mis)), "mi_cat_worst": float(min(mis)),
             "mi_ceiling": math.log(10)}  # fmt: skip
    if getattr(args, "note", None):
        entry["note"] = args.note
    entries[index:index + 1] = [entry]
    record["infogan_mnist"] = entries
    write_json(path, record)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--steps", type=int, default=4000)
    ap.add_argument("--eval-every", type=int, default=500)
    ap.add_argument("--arch", choices=sorted(ARCH_DEFAULTS), default="dcgan",
                    help="dcgan: the project's DCGAN; infogan_mnist: the reference's MNIST networks")
    ap.add_argument("--width", type=int, default=None, help="default: 16 (dcgan), 64 (infogan_mnist, the reference)")
    ap.add_argument("--batch-size", type=int, default=None, help="default: 64 (dcgan), 128 (infogan_mnist)")
    ap.add_argument("--lambda-cont", type=float, default=1.0)
    ap.add_argument("--lr-g", type=float, default=1e-3)
    ap.add_argument("--lr-d", type=float, default=2e-4)
    ap.add_argument("--minibatch-std", type=int, default=0)
    ap.add_argument("--precision", choices=["fp32", "bf16"], default="fp32",
                    help="bf16: training steps under bfloat16 autocast (fast on CPUs with AMX; GANConfig.precision)")
    ap.add_argument("--fused-optimizer", action="store_true", help="Adam's fused kernel (GANConfig.fused_optimizer)")
    ap.add_argument("--set", default="{}", help="more GANConfig settings as JSON")
    ap.add_argument("--mnist", default=str(Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "mnist"))
    ap.add_argument("--out", default="/tmp/infogan_mnist")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--note", default=None, help="with --into: a note stored with the entry (e.g. the machine)")
    ap.add_argument("--into", default=None,
                    help="also record the per-seed figures under 'infogan_mnist' in this JSON (e.g. "
                         "docs/benchmarks/imbalance.json); seeds recorded by earlier invocations are kept")
    args = ap.parse_args()
    for key, value in ARCH_DEFAULTS[args.arch].items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    images, labels = read_mnist(args.mnist, "test")
    data = out / "mnist10k"
    if not (data / "meta.json").is_file():  # every digit in train: InfoGAN is unsupervised, labels score only
        write_dataset(data, images, mnist_table(labels, ["train"] * len(labels)), {"source": "mnist", "part": "test"})
    results = []
    for seed in [int(s) for s in args.seeds.split(",")]:
        cfg = config(seed, args.steps, args.eval_every, args)
        run = out / f"seed{seed}"
        t0, curve = time.perf_counter(), []
        for stop in range(args.eval_every, args.steps + args.eval_every, args.eval_every):
            stop = min(stop, args.steps)
            train_gan(data, run, cfg, progress=False, stop_at_step=stop)
            log = pd.read_csv(run / "log.csv")
            # a resumed folder may already be past `stop`: record the checkpoint's own step, and only once
            stop = int(log["step"].iloc[-1])
            if curve and curve[-1]["step"] == stop:
                continue
            acc, _ = q_accuracy(cfg, run, images, labels)
            curve.append({"step": stop, "accuracy": round(acc, 4), "mi_cat": float(log["mi_cat"].iloc[-1]),
                          "train_s": float(log["elapsed_s"].iloc[-1])})  # fmt: skip
            print(f"seed {seed} step {stop}: accuracy {acc:.4f}  mi_cat {curve[-1]['mi_cat']:.4f}  "
                  f"train {curve[-1]['train_s']:.0f} s", flush=True)
        acc, cats = q_accuracy(cfg, run, images, labels)
        log = pd.read_csv(run / "log.csv")
        mapping = best_matching(cats, labels, 10)
        # grid: rows in matched digit order (the category standing for 0, then 1, …), sweeps over [−2, 2]
        G = load_infogan(run)
        spec = code_spec(cfg.latent_dim, cfg.info_categorical, cfg.info_continuous)
        noise = np.random.default_rng(seed).standard_normal((1, cfg.latent_dim)).astype(np.float32)
        values = np.linspace(-2.0, 2.0, 7)
        order = [next(c for c, d in mapping.items() if d == digit) for digit in range(10)]
        blocks = []
        for sweep in ("cont0", "cont1"):
            imgs = G.decode(sweep_latents(spec, noise, sweep, values)).reshape(10, len(values), 32, 32, 3)[order]
            blocks.append(image_grid(imgs.reshape(-1, 32, 32, 3), nrow=len(values)))
        sep = np.full((blocks[0].shape[0], 8, 3), 128, np.uint8)
        save_png(out / f"grid_seed{seed}.png", np.concatenate([blocks[0], sep, blocks[1]], axis=1), scale=2)
        per_digit = {d: round(float((np.array([mapping[c] for c in cats])[labels == d] == d).mean()), 3) for d in range(10)}
        results.append({"seed": seed, "accuracy": acc, "mi_cat_final": float(log["mi_cat"].iloc[-1]),
                        "nll_cont_final": float(log["nll_cont"].iloc[-1]), "train_s": float(log["elapsed_s"].iloc[-1]),
                        "wall_s": time.perf_counter() - t0, "per_digit_accuracy": per_digit, "curve": curve,
                        "config": cfg.model_dump(mode="json")})  # fmt: skip
        print(f"seed {seed}: accuracy {acc:.4f}  MI bound {results[-1]['mi_cat_final']:.4f} (ceiling "
              f"{math.log(10):.4f})  training {results[-1]['train_s']:.0f} s  per digit {per_digit}", flush=True)
        (out / "results.json").write_text(json.dumps(results, indent=1))
    if args.into:
        record_into(Path(args.into), args, results)
    accs = [r["accuracy"] for r in results]
    mis = [r["mi_cat_final"] for r in results]
    print(f"accuracy: mean {np.mean(accs):.4f}  worst {min(accs):.4f}   MI bound: mean {np.mean(mis):.4f}  worst "
          f"{min(mis):.4f} (ln 10 = {math.log(10):.4f})   training s: mean {np.mean([r['train_s'] for r in results]):.0f}")


if __name__ == "__main__":
    main()
