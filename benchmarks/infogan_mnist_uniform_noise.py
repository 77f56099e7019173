"""Ablation: InfoGAN on MNIST with the reference's U(−1, 1) noise instead of fairlatent's N(0, I).

openai/InfoGAN draws its 62 noise entries from U(−1, 1); fairlatent draws every generator's noise from
N(0, I) (``docs/infogan.md``, *Noise*), three times the variance per entry beside the same one-hot code. This
script asks whether that deviation is why the categorical code merges digits: it runs
``benchmarks/infogan_mnist.py`` unchanged (same arguments, same scoring) with the training noise drawn as
``2·U[0, 1) − 1`` from the step's own generator, the codes drawn after it as before. Only training changes;
the grid this writes draws N(0, I) noise (it shows the codes, not the run's own noise distribution). With
``--into`` the seeds are recorded under a setting with ``noise: uniform``.

    python benchmarks/infogan_mnist_uniform_noise.py --arch infogan_mnist --seeds 0 --steps 3000 --eval-every 500 \\
        --precision bf16 --fused-optimizer --out runs/infogan_uniform/s0
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from fairlatent.train.gan import GANTrainer


def uniform_noise(self: GANTrainer, g: torch.Generator, n: int) -> torch.Tensor:
    return torch.rand(n, self.config.latent_dim, generator=g) * 2 - 1


def record_uniform(record_into):
    """``record_into`` that files the seeds under a setting naming the noise (``--into``)."""

    def record(path, args, results):
        args.noise = "uniform"
        record_into(path, args, results)

    return record


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import infogan_mnist

    GANTrainer._noise = uniform_noise
    infogan_mnist.record_into = record_uniform(infogan_mnist.record_into)
    infogan_mnist.main()
