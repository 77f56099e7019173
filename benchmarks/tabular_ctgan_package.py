"""Our CTGAN against the `ctgan` package (SDV, BSL-1.1) on the same data, epochs and threads, in one run.

The package is never a dependency of fairlatent: this script creates a benchmark-only virtual environment
(``--env``, default ``OUT/ctgan_env``) with the pinned torch and ``ctgan``, and runs the package there in a
subprocess. Both sides get the same training rows (our reader's split, written to ``OUT/train.csv``), the same
discrete columns, the same epochs and the same number of torch threads.

- **Time per epoch** is the slope of the fit time between ``--epochs-short`` and ``--epochs`` epochs, on each
  side: ``(T(long) − T(short)) / (long − short)``. The fixed costs (reading the table, fitting the Gaussian
  mixtures) cancel, so the ratio is about the training loop. Run it on an otherwise idle machine.
- **Fidelity and efficacy** of the ``--epochs`` models, one per seed of ``--seeds``: both synthetic tables (as
  many rows as the training split) are scored by ``fairlatent.tabular.evaluate`` with the same classifiers, on
  the real test split (Adult: the official test file). The verdicts compare the means over seeds. Timing uses
  the first seed only.

::

    python benchmarks/tabular_ctgan_package.py --data ../shared/data/tabular/adult.data --out runs/ctgan_pkg \\
        --epochs 30 --epochs-short 5 --threads 2 --seeds 0,1,2 --json docs/benchmarks/tabular_ctgan_package.json

prints one JSON object (also written to ``--json``): seconds per epoch of each side and their ratio (package /
ours), fidelity (column shapes, column pair trends), efficacy (mean F1 of the classifiers, logistic
regression AUC), and whether ours is at least equal on each.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

PACKAGE = "ctgan==0.12.1"

RUNNER = r'''
import json, sys, time
import pandas as pd, torch
from ctgan import CTGAN
train, discrete, epochs, threads, seed, n, out = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3]), \
    int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]), sys.argv[7]
torch.set_num_threads(threads)
torch.manual_seed(seed)
df = pd.read_csv(train, dtype={c: str for c in discrete}, keep_default_na=False)
t0 = time.perf_counter()
model = CTGAN(epochs=epochs, cuda=False, verbose=False)
model.set_random_state(seed)
model.fit(df, discrete_columns=discrete)
fit_s = time.perf_counter() - t0
if n > 0:
    model.sample(n).to_csv(out, index=False)
print(json.dumps({"fit_seconds": fit_s}))
'''


def ensure_env(env: Path, torch_version: str) -> Path:
    """A venv with the pinned torch and the ctgan package; reused when it already imports ctgan."""
    py = env / "bin" / "python"
    if py.is_file() and subprocess.run([str(py), "-c", "import ctgan"], capture_output=True).returncode == 0:
        return py
    clean = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # nothing of ours leaks into the env
    subprocess.run(["python3", "-m", "venv", str(env)], check=True, env=clean)
    subprocess.run([str(py), "-m", "pip", "install", "-q", f"torch=={torch_version}"], check=True, env=clean)
    subprocess.run([str(py), "-m", "pip", "install", "-q", PACKAGE], check=True, env=clean)
    return py


def package_fit(py: Path, train: Path, discrete: list[str], epochs: int, threads: int, seed: int, n: int,
                out: Path) -> float:
    res = subprocess.run([str(py), "-c", RUNNER, str(train), json.dumps(discrete), str(epochs), str(threads),
                          str(seed), str(n), str(out)], check=True, capture_output=True, text=True,
                         env={"OMP_NUM_THREADS": str(threads), "PATH": "/usr/bin:/bin"})
    return float(json.loads(res.stdout.strip().splitlines()[-1])["fit_seconds"])


def ours_fit(data, out: Path, epochs: int, seed: int) -> float:
    from fairlatent.tabular.ctgan import CTGANConfig
    from fairlatent.tabular.synthesizer import fit

    t0 = time.perf_counter()
    fit(data, out, CTGANConfig(epochs=epochs, seed=seed, checkpoint_every=10**6), resume=False, progress=False)
    return time.perf_counter() - t0


def scores(rep: dict, name: str) -> dict:
    s = rep["synthetic"][name]
    eff = {k: v for k, v in s["efficacy"].items() if "f1" in v}
    return {"column_shapes": s["fidelity"]["column_shapes"], "column_pair_trends": s["fidelity"]["column_pair_trends"],
            "f1_mean": sum(v["f1"] for v in eff.values()) / len(eff),
            "auc_lr": eff["logistic_regression"]["auc"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True, help="adult.data (adult.test beside it)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--env", default=None, help="the benchmark-only venv (default OUT/ctgan_env)")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--epochs-short", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seeds", default="0", help="comma-separated; timing on the first")
    ap.add_argument("--n-boot", type=int, default=100)
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    if not 0 < a.epochs_short < a.epochs:
        ap.error("need 0 < --epochs-short < --epochs")
    import torch

    torch.set_num_threads(a.threads)
    from fairlatent.tabular.evaluate import evaluate_tables
    from fairlatent.tabular.readers import read_adult
    from fairlatent.tabular.run import read_table_csv, table_csv
    from fairlatent.tabular.synthesizer import Synthesizer

    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    py = ensure_env(Path(a.env) if a.env else out / "ctgan_env", torch.__version__.split("+")[0])
    data = read_adult(a.data)
    train = out / "train.csv"
    train.write_text(table_csv(data.train))
    discrete = list(data.categorical) + [data.target]
    n = len(data.train)
    seeds = [int(x) for x in a.seeds.split(",")]
    t: dict[str, dict[int, float]] = {"ours": {}, "package": {}}
    per_seed = {}
    for seed in seeds:
        runs = (a.epochs_short, a.epochs) if seed == seeds[0] else (a.epochs,)
        for epochs in runs:
            tag = f"e{epochs}_s{seed}"
            secs_o = ours_fit(data, out / f"ours_{tag}", epochs, seed)
            secs_p = package_fit(py, train, discrete, epochs, a.threads, seed, n if epochs == a.epochs else 0,
                                 out / f"package_rows_s{seed}.csv")
            if seed == seeds[0]:
                t["ours"][epochs], t["package"][epochs] = secs_o, secs_p
            print(f"seed {seed}, {epochs} epochs: ours {secs_o:.1f} s, package {secs_p:.1f} s", flush=True)
        ours_rows = Synthesizer(out / f"ours_e{a.epochs}_s{seed}", data).sample(n, seed=seed)
        pkg_rows = read_table_csv(out / f"package_rows_s{seed}.csv", data)
        rep = evaluate_tables(data, {"ours": ours_rows, "package": pkg_rows}, seed=seed, n_boot=a.n_boot,
                              competitors=False)
        per_seed[seed] = {"ours": scores(rep, "ours"), "package": scores(rep, "package")}
    span = a.epochs - a.epochs_short
    per = {k: (v[a.epochs] - v[a.epochs_short]) / span for k, v in t.items()}
    mean = {side: {k: sum(per_seed[s][side][k] for s in seeds) / len(seeds) for k in per_seed[seeds[0]][side]}
            for side in ("ours", "package")}
    ours, pkg = mean["ours"], mean["package"]
    result = {
        "command": "python " + " ".join(sys.argv), "dataset": "adult", "epochs": a.epochs,
        "epochs_timed": [a.epochs_short, a.epochs], "threads": a.threads, "seeds": seeds, "package": pkg,
        "package_version": PACKAGE, "ours": ours, "per_seed": {str(s): v for s, v in per_seed.items()},
        "fit_seconds": {k: {str(e): round(s, 1) for e, s in v.items()} for k, v in t.items()},
        "seconds_per_epoch": {"ours": per["ours"], "package": per["package"], "ratio": per["package"] / per["ours"]},
        "fidelity_at_least_equal": bool(ours["column_shapes"] >= pkg["column_shapes"]
                                        and ours["column_pair_trends"] >= pkg["column_pair_trends"]),
        "efficacy_at_least_equal": bool(ours["f1_mean"] >= pkg["f1_mean"]),
    }
    text = json.dumps(result, indent=1)
    print(text)
    if a.json:
        Path(a.json).write_text(text + "\n")


if __name__ == "__main__":
    main()
