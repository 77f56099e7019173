"""Data-parallel classifier training, and the engine's overhead, side by side in one invocation.

1. **Data parallel.** ``fairlatent train-classifier`` at 64 px on N processes × 1 thread (``--nproc N``,
   gloo on CPU) against 1 process × 1 thread, same data, same global batch, same epochs, with batch-norm
   statistics over the global batch (``dp_batchnorm = "global"``, the default: one all-reduce per layer in
   the forward and one in the backward pass) and per rank (``"local"``); and, as the ceiling with no
   communication at all, two independent one-thread trainings side by side. Throughput is
   training images / the trainer's own training time (``train_seconds_last_session`` in the model's
   config.json: the engine's loop including the per-epoch validation that rank 0 runs, excluding process
   start-up and data loading). Target on the 2-core machine: 2 × 1 ≥ 1.7 × the 1 × 1 throughput.
2. **Engine vs a minimal loop.** In this process at one thread: ``train_classifier`` (the shared engine:
   data order, checkpoints at every epoch end, log.csv, best-epoch tracking) against the shortest
   reasonable hand-written loop over the same model, data, batches, flips and per-epoch validation.
   Target: engine / hand ≥ 0.95.

Runs alternate (A B, B A, …) so load from other processes hits both sides alike; the ratios are the
figures of merit (absolute images/s depend on the CPU).

    python benchmarks/bench_data_parallel.py [--n 6000] [--epochs 2] [--nproc 2] [--repeats 2] [--work DIR]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def make_data(work: Path, n: int, size: int) -> Path:
    from fairlatent.data.toyfaces import make_toyfaces

    out = work / f"toyfaces{size}_{n}"
    if not (out / "meta.json").is_file():
        make_toyfaces(out, n=n, size=size, seed=0, split_fractions=(0.9, 0.05, 0.05), progress=False)
    return out


def cli_train(data: Path, out: Path, nproc: int, epochs: int, batch: int, bn: str = "global") -> float:
    """Training images/s of one ``fairlatent train-classifier`` run on ``nproc`` processes × 1 thread."""
    import json
    import shutil

    shutil.rmtree(out, ignore_errors=True)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "fairlatent.cli", "train-classifier", "--data", str(data), "--attributes",
           "Wearing_Hat,Eyeglasses", "--out", str(out), "--epochs", str(epochs), "--batch-size", str(batch),
           "--quiet", "--nproc", str(nproc), "--set", f"dp_batchnorm={bn}"]  # fmt: skip
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
    rec = json.loads((out / "config.json").read_text())
    return rec["train_rows"] * epochs / rec["train_seconds_last_session"]


def independent_pair(data: Path, work: Path, epochs: int, batch: int) -> float:
    """Summed images/s of two independent one-process, one-thread trainings side by side: the ceiling of
    2 × 1 data parallelism on this machine with zero communication (shared caches and memory bandwidth)."""
    import json
    import shutil

    env = dict(os.environ, OMP_NUM_THREADS="1")
    procs, outs = [], [work / f"independent{k}" for k in range(2)]
    for out in outs:
        shutil.rmtree(out, ignore_errors=True)
        procs.append(subprocess.Popen([sys.executable, "-m", "fairlatent.cli", "train-classifier", "--data", str(data),
                                       "--attributes", "Wearing_Hat,Eyeglasses", "--out", str(out), "--epochs",
                                       str(epochs), "--batch-size", str(batch), "--quiet"], env=env,
                                      stdout=subprocess.DEVNULL))  # fmt: skip
    for p in procs:
        if p.wait():
            raise SystemExit(f"independent training failed ({p.args})")
    recs = [json.loads((out / "config.json").read_text()) for out in outs]
    return sum(r["train_rows"] * epochs / r["train_seconds_last_session"] for r in recs)


def engine_train(data: Path, out: Path, epochs: int, batch: int) -> float:
    import json
    import shutil

    from fairlatent.train.classifier import ClassifierConfig, train_classifier

    shutil.rmtree(out, ignore_errors=True)
    train_classifier([data], ["Wearing_Hat", "Eyeglasses"], out, ClassifierConfig(epochs=epochs, batch_size=batch),
                     progress=False)  # fmt: skip
    rec = json.loads((out / "config.json").read_text())
    return rec["train_rows"] * epochs / rec["train_seconds_last_session"]


def hand_train(data: Path, epochs: int, batch: int) -> float:
    """The same model, data, batches, flips and per-epoch validation AP, written as plainly as possible."""
    import torch
    import torch.nn.functional as F
    from sklearn.metrics import average_precision_score

    from fairlatent.data.dataset import load_dataset
    from fairlatent.models.classifier import AttributeClassifier

    ds = load_dataset(data)
    attrs = ["Wearing_Hat", "Eyeglasses"]
    tr, va = ds.split_indices("train"), ds.split_indices("val")
    images = np.asarray(ds.images)
    y_all = ds.table[attrs].to_numpy(np.float32)
    torch.manual_seed(0)
    model = AttributeClassifier(len(attrs), images.shape[1], 16, 1, 3).to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    g = np.random.default_rng(0)
    t0 = time.perf_counter()
    for _ in range(epochs):
        model.train()
        order, flips = g.permutation(tr), g.random(len(tr)) < 0.5
        for b in range(0, len(order), batch):
            idx, f = order[b : b + batch], flips[b : b + batch]
            xb = images[idx]
            xb[f] = xb[f, :, ::-1]
            x = torch.from_numpy(xb).permute(0, 3, 1, 2).float() / 127.5 - 1.0
            loss = F.binary_cross_entropy_with_logits(model(x), torch.from_numpy(y_all[idx])).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        model.eval()
        with torch.inference_mode():
            s = torch.cat([torch.sigmoid(model(torch.from_numpy(images[va[i : i + 512]]).permute(0, 3, 1, 2).float()
                                               / 127.5 - 1.0)) for i in range(0, len(va), 512)]).numpy()  # fmt: skip
        [average_precision_score(y_all[va, a], s[:, a]) for a in range(len(attrs))]
    return len(tr) * epochs / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=6000, help="ToyFaces images (90 %% train)")
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--nproc", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=2, help="alternating repeats of each comparison")
    ap.add_argument("--work", type=Path, default=None)
    ap.add_argument("--skip", choices=["dp", "engine"], default=None)
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)
    work = args.work or Path(tempfile.mkdtemp(prefix="bench_dp_"))
    data = make_data(work, args.n, args.size)
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, data {data} ({args.size} px), batch {args.batch}, "
          f"{args.epochs} epochs")  # fmt: skip
    if args.skip != "dp":
        runs: dict[str, list[float]] = {"1x1": [], f"{args.nproc}x1 global BN": [], f"{args.nproc}x1 local BN": []}
        variants = [("1x1", 1, "global"), (f"{args.nproc}x1 global BN", args.nproc, "global"),
                    (f"{args.nproc}x1 local BN", args.nproc, "local")]  # fmt: skip
        for r in range(args.repeats):
            for name, k, bn in (variants if r % 2 == 0 else variants[::-1]):
                v = cli_train(data, work / f"dp{k}{bn}", k, args.epochs, args.batch, bn)
                runs[name].append(v)
                print(f"  {name:18s}: {v:7.1f} img/s")
        one = np.median(runs["1x1"])
        pair = independent_pair(data, work, args.epochs, args.batch)
        print(f"ceiling: two independent 1x1 trainings side by side {pair:.1f} img/s together, x{pair / one:.2f}")
        for name in list(runs)[1:]:
            ratio = np.median(runs[name]) / one
            print(f"data parallel {name}: {np.median(runs[name]):.1f} img/s vs 1x1 {one:.1f} img/s, speed-up "
                  f"x{ratio:.2f} (target >= 1.7 on 2 cores) {'OK' if ratio >= 1.7 else 'BELOW TARGET'}")
    if args.skip != "engine":
        eng, hand = [], []
        for r in range(args.repeats):
            for k in (("engine", "hand") if r % 2 == 0 else ("hand", "engine")):
                v = engine_train(data, work / "engine", args.epochs, args.batch) if k == "engine" else \
                    hand_train(data, args.epochs, args.batch)  # fmt: skip
                (eng if k == "engine" else hand).append(v)
                print(f"  {k:6s}: {v:7.1f} img/s")
        ratio = np.median(eng) / np.median(hand)
        print(f"engine vs minimal loop (1 thread): engine {np.median(eng):.1f} img/s, hand {np.median(hand):.1f} "
              f"img/s, ratio {ratio:.3f} (target >= 0.95) {'OK' if ratio >= 0.95 else 'BELOW TARGET'}")


if __name__ == "__main__":
    main()
