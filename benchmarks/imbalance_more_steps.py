"""What more training steps buy on long-tailed MNIST: ``rae`` resumed from the imbalance benchmark's runs and
the CNN competitors retrained with as many steps, same splits and seeds.

Each (seed, steps) is the benchmark's own ``run_seed`` on the ``cpu`` profile with both models' ``steps``
raised, so nothing is trained differently from the benchmark but the number of steps. Resume is bitwise, so a
``rae`` extended from 300 to 600 steps equals a 600-step run. Prints one JSON line per (seed, steps) with each
method's ACSA and the autoencoder's training seconds. Reads the 300-step runs from ``--from`` (the benchmark's
``--work``) and extends copies of them in ``--work``, so the benchmark's own folder is left as it is::

    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/imbalance_more_steps.py --from /tmp/ovs_final/work \\
        --work /tmp/ovs_more --seeds 0,1,2 --steps 600,900
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import torch

METHODS = ["rae", "ce", "reweighted", "ros", "smote_pixels"]


def main(argv: list[str] | None = None) -> None:
    from fairlatent.oversample.benchmark import PROFILES, run_seed
    from fairlatent.oversample.data import mnist_long_tailed

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--from", dest="source", required=True, help="the imbalance benchmark's --work folder")
    p.add_argument("--work", required=True, help="where the extended copies go")
    p.add_argument("--mnist", default="../shared/data/mnist")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--steps", default="600,900")
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    base = PROFILES["cpu"]
    for seed in [int(s) for s in a.seeds.split(",")]:
        split = mnist_long_tailed(a.mnist, seed=seed)
        run = Path(a.work) / f"seed{seed}" / "rae"
        if not run.exists():
            shutil.copytree(Path(a.source) / f"seed{seed}" / "rae", run)
        for steps in [int(s) for s in a.steps.split(",")]:
            profile = {part: {**base[part], "steps": steps} for part in ("rae", "cnn")}
            scores, _ = run_seed(split, seed, Path(a.work), profile, METHODS, log=lambda _line: None)
            rec = {"seed": seed, "steps": steps, **{m: scores[m]["acsa"] for m in METHODS},
                   "rae_train_seconds": scores["rae"]["train_seconds"]}
            print(json.dumps(rec), flush=True)


if __name__ == "__main__":
    main()
