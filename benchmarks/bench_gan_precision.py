"""GAN step time by numeric setting: float32 (the default) against ``fused_optimizer`` and ``precision="bf16"``.

The same trainer (``bench_gan.job_runner``: ``GANTrainer.train_step`` fed by ``BatchSource``, under the
autocast the training engine enters for it) takes steps for each setting on the same images; rounds
alternate between the settings so a busy CPU slows all of them alike. Prints seconds per step and the
speed-up over float32 with the per-tensor Adam loop. bf16 pays only on CPUs with bf16 matrix units (Intel
AMX, AVX-512 BF16: the flags are printed); elsewhere it can be slower. Results round differently in each
setting, so this measures time, not quality (``benchmarks/infogan_mnist.py --precision bf16`` measures
what bf16 training reaches).

    python benchmarks/bench_gan_precision.py [--archs infogan_mnist dcgan] [--steps 10] [--rounds 3] [--threads 2]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from bench_gan import job_runner  # this folder is on sys.path when the script runs

from fairlatent.train.gan import GANConfig

SETTINGS = {"fp32": {}, "fp32 + fused Adam": {"fused_optimizer": True}, "bf16": {"precision": "bf16"},
            "bf16 + fused Adam": {"precision": "bf16", "fused_optimizer": True}}  # fmt: skip
ARCHS = {  # the reference InfoGAN MNIST networks at their batch; the default ToyFaces DCGAN
    "infogan_mnist": dict(arch="infogan_mnist", loss="ns", width=64, batch_size=128, latent_dim=62,
                          info_categorical=[10], info_continuous=2, d_minibatch_std=0, flip=False),
    "dcgan": dict(),
}  # fmt: skip


def cpu_flags() -> str:
    try:
        flags = set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        return "unknown"
    return ", ".join(f for f in ("amx_bf16", "avx512_bf16", "avx512f") if f in flags) or "none of amx_bf16/avx512_bf16"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--archs", nargs="+", default=list(ARCHS), choices=list(ARCHS))
    ap.add_argument("--steps", type=int, default=10, help="timed steps per setting and round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s), CPU bf16 flags: {cpu_flags()}")
    images = np.random.default_rng(0).integers(0, 256, (2048, 32, 32, 3), dtype=np.uint8)
    for arch in args.archs:
        runs = {name: job_runner(GANConfig(**ARCHS[arch], **extra), 32, images)[1] for name, extra in SETTINGS.items()}
        for run in runs.values():
            run(2)  # warm-up: allocations, kernel selection
        times = {name: [] for name in runs}
        for _ in range(args.rounds):
            for name, run in runs.items():
                t = time.perf_counter()
                run(args.steps)
                times[name].append((time.perf_counter() - t) / args.steps)
        base = float(np.median(times["fp32"]))
        print(f"\n{arch} (batch {GANConfig(**ARCHS[arch]).batch_size}): median s/step over {args.rounds} rounds "
              f"of {args.steps} steps")
        for name, ts in times.items():
            med = float(np.median(ts))
            print(f"  {name:<18} {med:7.3f} s/step   speed-up over fp32 {base / med:4.2f}x")


if __name__ == "__main__":
    main()
