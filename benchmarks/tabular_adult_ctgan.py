"""CTGAN on Adult at a reduced epoch count: machine-learning efficacy (F1 of >50K) of classifiers trained on
synthetic rows vs on real rows, tested on the official Adult test file. SDGym's CTGAN Adult figure: F1 0.601
(real data 0.669, both averages over SDGym's classifiers).

    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/tabular_adult_ctgan.py --data ../shared/data/tabular/adult.data \
        --out runs/adult_ctgan --epochs 30

Resumable: rerun the same command after an interruption (the engine's checkpoint).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--keep-unknown", action="store_true", help="keep '?' as a category (SDGym's Adult)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n-boot", type=int, default=100)
    a = ap.parse_args()
    torch.set_num_threads(1)
    from fairlatent.tabular.ctgan import CTGANConfig
    from fairlatent.tabular.evaluate import evaluate_tables
    from fairlatent.tabular.readers import read_adult
    from fairlatent.tabular.synthesizer import Synthesizer, fit
    from fairlatent.utils.io import write_json

    t0 = time.time()
    data = read_adult(a.data, keep_unknown=a.keep_unknown)
    cfg = CTGANConfig(epochs=a.epochs, seed=a.seed, checkpoint_every=200)
    fit(data, a.out, cfg, progress=False)
    t_fit = time.time() - t0
    syn = Synthesizer(a.out).sample(len(data.train), seed=a.seed)
    rep = evaluate_tables(data, {"ctgan": syn}, seed=a.seed, n_boot=a.n_boot, competitors=False)
    rep["fit_seconds"] = t_fit
    write_json(Path(a.out) / "evaluation.json", rep)
    summary = {"fit_seconds": round(t_fit), "epochs": a.epochs,
               "fidelity": {k: rep["synthetic"]["ctgan"]["fidelity"][k] for k in ("column_shapes", "column_pair_trends")}}
    for src, eff in (("real", rep["real"]["efficacy"]), ("ctgan", rep["synthetic"]["ctgan"]["efficacy"])):
        summary[src] = {m: {k: round(v[k], 4) for k in ("accuracy", "f1", "auc")} for m, v in eff.items() if "f1" in v}
        summary[src]["mean_f1"] = round(sum(v["f1"] for v in summary[src].values()) / len(summary[src]), 4)
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
