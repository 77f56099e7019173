"""Long-tailed MNIST or CelebA hair colour: the class-preserving regularized autoencoder against its competitors.

Writes ``docs/benchmarks/imbalance.md``, ``imbalance.json`` and ``imbalance_mnist_samples.png`` (with
``--benchmark celeba-hair --celeba DATASET_DIR``: ``imbalance_celeba_hair.md/.json/_samples.png``; see
:mod:`fairlatent.oversample.benchmark` for the profiles, methods and metrics). The same as
``fairlatent benchmark imbalance``. Run it on one thread; the ``cpu`` profile takes ~15 minutes per seed
on one thread of a busy 2-core machine::

    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/imbalance.py --mnist ../shared/data/mnist \
        --work /tmp/imbalance --out-dir docs/benchmarks --seeds 0,1,2
"""

from __future__ import annotations

import argparse
import shlex
import sys

import torch


def main(argv: list[str] | None = None) -> None:
    from fairlatent.oversample.benchmark import BENCHMARKS, METHODS, run_imbalance_benchmark, write_outputs

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--benchmark", default="mnist-lt", choices=BENCHMARKS)
    p.add_argument("--mnist", help="folder of the MNIST IDX files (t10k-images/labels), for mnist-lt")
    p.add_argument("--celeba", help="data set made by `fairlatent data celeba --size 64`, for celeba-hair")
    p.add_argument("--work", required=True, help="folder for the trained autoencoders (resumable)")
    p.add_argument("--out-dir", default="docs/benchmarks")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--profile", default="cpu")
    p.add_argument("--methods", default=",".join(METHODS))
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    if (a.mnist if a.benchmark == "mnist-lt" else a.celeba) is None:
        p.error(f"--benchmark {a.benchmark} needs {'--mnist' if a.benchmark == 'mnist-lt' else '--celeba'}")
    record = run_imbalance_benchmark(benchmark=a.benchmark, mnist=a.mnist, celeba=a.celeba, work=a.work,
                                     seeds=[int(s) for s in a.seeds.split(",")], profile=a.profile, methods=a.methods.split(","),
                                     log=lambda s: print(s, flush=True))
    command = "python benchmarks/imbalance.py " + " ".join(shlex.quote(x) for x in (argv or sys.argv[1:]))
    for path in write_outputs(record, a.out_dir, command=command).values():
        print(path)


if __name__ == "__main__":
    main()
