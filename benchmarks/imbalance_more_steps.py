"""What more training steps buy on long-tailed MNIST: ``rae`` resumed from the imbalance benchmark's runs and
the CNN competitors retrained with as many steps, same splits and seeds.

Resume is bitwise, so a ``rae`` extended from 300 to 600 steps equals a 600-step run. Prints one JSON line
per (seed, steps) with each method's ACSA. Reads the 300-step runs from ``--from`` (the benchmark's
``--work``) and extends copies of them in ``--work``, so the benchmark's own folder is left as it is::

    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/imbalance_more_steps.py --from /tmp/ovs_final/work \
        --work /tmp/ovs_more --seeds 0,1,2 --steps 600,900
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import numpy as np
import torch


def main(argv: list[str] | None = None) -> None:
    from fairlatent.oversample.baselines import CNNSettings, smote, train_cnn
    from fairlatent.oversample.benchmark import PROFILES, class_metrics
    from fairlatent.oversample.data import mnist_long_tailed
    from fairlatent.oversample.rae import RAEConfig, fit_rae, load_rae

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--from", dest="source", required=True, help="the imbalance benchmark's --work folder")
    p.add_argument("--work", required=True, help="where the extended copies go")
    p.add_argument("--mnist", default="../shared/data/mnist")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--steps", default="600,900")
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    for seed in [int(s) for s in a.seeds.split(",")]:
        split = mnist_long_tailed(a.mnist, seed=seed)
        x, y, k = split.train_images, split.train_labels, split.n_classes
        counts = np.bincount(y, minlength=k)
        xs, ys = smote(x.reshape(len(x), -1).astype(np.float32), y, seed)
        xs = np.clip(np.round(xs), 0, 255).astype(np.uint8).reshape(-1, *x.shape[1:])
        run = Path(a.work) / f"seed{seed}" / "rae"
        if not run.exists():
            shutil.copytree(Path(a.source) / f"seed{seed}" / "rae", run)
        for steps in [int(s) for s in a.steps.split(",")]:
            rec: dict = {"seed": seed, "steps": steps}
            cfg = RAEConfig(**{**PROFILES["cpu"]["rae"], "steps": steps}, mixer="learned", seed=seed)
            t0 = time.perf_counter()
            fit_rae(x, y, run, cfg, class_names=split.class_names, progress=False)
            rec["rae"] = class_metrics(split.test_labels, load_rae(run).predict(split.test_images), k)["acsa"]
            rec["rae_s_added"] = round(time.perf_counter() - t0, 1)
            cnn = CNNSettings(**{**PROFILES["cpu"]["cnn"], "steps": steps})
            for name, xi, yi, kw in (("ce", x, y, {}), ("reweighted", x, y, {"class_weights": len(y) / (k * counts)}),
                                     ("ros", x, y, {"balanced_batches": True}), ("smote_pixels", xs, ys, {})):
                model, _ = train_cnn(xi, yi, k, cnn, seed=seed, **kw)
                rec[name] = class_metrics(split.test_labels, model.predict(split.test_images), k)["acsa"]
            print(json.dumps(rec), flush=True)


if __name__ == "__main__":
    main()
