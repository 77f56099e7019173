"""Classifier throughput: fairlatent's training step vs a minimal hand-written loop, and inference variants.

Training: images/s of the step :func:`fairlatent.train.classifier.train_classifier` runs (gather rows from
the uint8 image array with flips → ``batch_tensors`` → ``train_step``) against a bare PyTorch loop doing the
same work on the same model (``channels_last``, as the trainer builds it) and batches. Steps alternate
between the variants (A B C, C B A, …) so that load from other processes hits all alike; the figure that
matters is the ratio to the hand loop (target ≥ 0.95). A third variant, the hand loop with a contiguous
(NCHW) model, shows what the layout buys.

Inference: images/s of the forward pass under ``torch.no_grad`` vs ``torch.inference_mode``, each with
contiguous (NCHW) and ``channels_last`` tensors.

    python benchmarks/bench_classifier.py [--sizes 32 64] [--width 16] [--batch 64] [--steps 20] [--rounds 6]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F

from fairlatent.models.classifier import AttributeClassifier
from fairlatent.train.classifier import TrainingRows, batch_tensors, train_step
from fairlatent.utils.seed import rng


def make_rows(n: int, size: int, n_attr: int, seed: int = 0) -> TrainingRows:
    r = rng(seed, "bench")
    images = r.integers(0, 256, size=(n, size, size, 3), dtype=np.uint8)
    labels = (r.random((n, n_attr)) < 0.5).astype(np.float32)
    return TrainingRows(images=[images], source=np.zeros(n, np.int64), row=np.arange(n), labels=labels,
                        weights=np.ones(n, np.float32))


def fairlatent_step(model, opt, rows: TrainingRows, idx: np.ndarray, flips: np.ndarray) -> None:
    """Exactly what one iteration of ``train_classifier``'s loop does."""
    x, y, w = batch_tensors(rows.gather(idx, flips), rows.labels[idx], rows.weights[idx], torch.device("cpu"))
    train_step(model, opt, x, y, w)


def hand_step(model, opt, images: np.ndarray, labels: np.ndarray, weights: np.ndarray, idx: np.ndarray, flips: np.ndarray) -> None:
    """The same work written as plainly as possible."""
    xb = images[idx]
    xb[flips] = xb[flips, :, ::-1]
    x = torch.from_numpy(xb).permute(0, 3, 1, 2).float() / 127.5 - 1.0
    y, w = torch.from_numpy(labels[idx]), torch.from_numpy(weights[idx])
    loss = (F.binary_cross_entropy_with_logits(model(x), y, reduction="none").mean(1) * w).mean()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def bench_training(size: int, width: int, batch: int, steps: int) -> dict[str, float]:
    """Images/s of each variant; steps are interleaved (A B B A …) so contention drifts hit all alike."""
    rows = make_rows(batch * steps, size, 9)
    torch.manual_seed(0)
    base = AttributeClassifier(9, size, width=width)
    models, opts = {}, {}
    # "fairlatent" is the model as train_classifier builds it (channels_last); the hand loop runs the same
    # model and batches; "hand contiguous" shows what the channels_last layout buys.
    for k in ("fairlatent", "hand", "hand contiguous"):
        m = AttributeClassifier(9, size, width=width)
        m.load_state_dict(base.state_dict())
        if k != "hand contiguous":
            m = m.to(memory_format=torch.channels_last)
        models[k], opts[k] = m.train(), torch.optim.Adam(m.parameters(), lr=1e-3)
    order = rng(0, "order").permutation(len(rows))
    flips = rng(0, "flip").random(len(rows)) < 0.5
    times = {k: 0.0 for k in models}
    keys = list(models)
    for b in range(steps + 1):
        idx, f = order[b * batch % len(rows) :][:batch], flips[b * batch % len(rows) :][:batch]
        for k in keys if b % 2 == 0 else keys[::-1]:
            t0 = time.perf_counter()
            if k.startswith("hand"):
                hand_step(models[k], opts[k], rows.images[0], rows.labels, rows.weights, idx, f)
            else:
                fairlatent_step(models[k], opts[k], rows, idx, f)
            if b > 0:  # step 0 is warm-up
                times[k] += time.perf_counter() - t0
    return {k: batch * steps / v for k, v in times.items()}


def bench_inference(size: int, width: int, batch: int, rounds: int) -> dict[str, float]:
    """Images/s of the forward pass per variant, interleaved batch by batch."""
    torch.manual_seed(0)
    model = AttributeClassifier(9, size, width=width).eval()
    x = torch.randn(batch, 3, size, size)
    variants = {}
    for fmt in ("contiguous", "channels_last"):
        m = AttributeClassifier(9, size, width=width).eval()
        m.load_state_dict(model.state_dict())
        xi = x
        if fmt == "channels_last":
            m, xi = m.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
        for mode in ("no_grad", "inference_mode"):
            ctx = torch.no_grad if mode == "no_grad" else torch.inference_mode
            variants[f"{mode:14s} {fmt:13s}"] = (m, xi, ctx)
    times = {k: 0.0 for k in variants}
    keys = list(variants)
    for r in range(rounds + 1):
        for k in keys if r % 2 == 0 else keys[::-1]:
            m, xi, ctx = variants[k]
            t0 = time.perf_counter()
            with ctx():
                m(xi)
            if r > 0:  # round 0 is warm-up
                times[k] += time.perf_counter() - t0
    return {k: batch * rounds / v for k, v in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[32, 64])
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=20, help="timed training steps per variant")
    ap.add_argument("--rounds", type=int, default=6, help="timed inference batches per variant")
    ap.add_argument("--infer-batch", type=int, default=512)
    ap.add_argument("--threads", type=int, default=None,
                    help="torch intra-op threads; 1 is far more robust when other processes load the CPU")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, width {args.width}, batch {args.batch}")
    for size in args.sizes:
        res = bench_training(size, args.width, args.batch, args.steps)
        hand = res["hand"]
        print(f"train {size:3d}px: " + " | ".join(f"{k} {v:7.1f} img/s (x{v / hand:.3f})" for k, v in res.items()))
    for size in args.sizes:
        res = bench_inference(size, args.width, args.infer_batch, args.rounds)
        best = max(res, key=res.get)
        for k, v in res.items():
            print(f"infer {size:3d}px: {k} {v:9.1f} img/s{'  <- fastest' if k == best else ''}")


if __name__ == "__main__":
    main()
