"""The pipeline's validation check for runs made before the evaluate stage computed it, against what test said.

For each finished run folder (its ``config.json``, ``data`` and ``train_<method>`` stages and the evaluate
stage's outputs), every trained method is scored on the run's validation split, bootstrapped at its
threshold calibrated there with the run's seed and number of resamples, and paired with the baseline, as the
evaluate stage now does; :func:`fairlatent.pipeline.summary.validation_check` gives the verdict. Beside it,
the same verdict read from the run's paired ΔDEO on test. The table at the end counts how the two agree: how
often a method that raised DEO on test was named on validation, and how often validation named one that
test did not confirm::

    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/validation_check_posthoc.py runs/celeba/targets/*/seed*

Nothing is written into the runs. Post-processing and probe-scored methods are skipped (the first are fitted
on validation; the second need the oversample stage's autoencoder).
"""

from __future__ import annotations

import argparse
import collections
import json
from pathlib import Path

VERDICTS = ("raised", "lowered", "unchanged")


def run_check(run: Path) -> dict[str, tuple[str, str, float, float, float, bool]] | None:
    """Per method: (validation verdict, test verdict, val ΔDEO median, test ΔDEO median, the baseline's val DEO
    median, whether the check finds little to remove); None when the run is not finished."""
    import numpy as np

    from fairlatent.data.dataset import load_dataset
    from fairlatent.metrics.bootstrap import bootstrap_metrics, paired_difference
    from fairlatent.metrics.fairness import calibrated_threshold
    from fairlatent.models.classifier import load_classifier
    from fairlatent.pipeline.summary import paired_verdict, validation_check

    if not (run / "evaluate" / "stage.json").is_file():
        return None
    cfg = json.loads((run / "config.json").read_text())
    outputs = lambda name: json.loads((run / name / "stage.json").read_text())["outputs"]  # noqa: E731
    test = outputs("evaluate")
    ds = load_dataset(outputs("data")["path"])
    va = ds.split_indices("val")
    images = np.asarray(ds.images[va])
    y, g = ds.labels(cfg["data"]["target"], va), ds.labels(cfg["data"]["protected"], va)
    n_boot, ci = cfg["evaluation"]["n_boot"], cfg["evaluation"]["ci"]
    samples, summaries = {}, {}
    for m in cfg["methods"]:
        if not (run / f"train_{m}" / "stage.json").is_file():
            continue
        scores = load_classifier(outputs(f"train_{m}")["path"]).predict_scores(images)[:, 0]
        threshold = float(calibrated_threshold(y, scores))
        summaries[m], samples[m] = bootstrap_metrics(y, scores, sensitive_features=g, threshold=threshold,
                                                     n_boot=n_boot, ci=ci, seed=cfg["seed"], return_samples=True)
    evaluation = {m: {"paired_vs_baseline": {"val": paired_difference(s, samples["baseline"], ci=ci)}}
                  for m, s in samples.items() if m != "baseline"}
    evaluation["baseline"] = {"val": summaries["baseline"]}
    check = validation_check(evaluation) or {"methods": {}}
    base = (check.get("baseline", {}).get("DEO") or {}).get("median", float("nan")), check.get("little_to_remove")
    return {m: (row["verdict"], paired_verdict(test[m]["paired_vs_baseline"]["test"]["DEO"]), row["DEO"]["median"],
                test[m]["paired_vs_baseline"]["test"]["DEO"]["median"], *base)
            for m, row in check["methods"].items()}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", help="finished pipeline run folders")
    args = p.parse_args(argv)
    counts: collections.Counter = collections.Counter()
    print("| run | method | baseline DEO val | little to remove | ΔDEO val | ΔDEO test | validation | test |")
    print("|---|---|---:|---|---:|---:|---|---|")
    for run in map(Path, args.runs):
        rows = run_check(run)
        for m, (v, t, dv, dt, base, little) in (rows or {}).items():
            counts[v, t] += 1
            print(f"| {run.parent.name}/{run.name} | {m} | {base:.1f} | {'yes' if little else 'no'} | {dv:+.1f} | "
                  f"{dt:+.1f} | {v} | {t} |", flush=True)
    print("\n| validation \\ test | " + " | ".join(VERDICTS) + " |\n|---|" + "---:|" * len(VERDICTS))
    for v in (*VERDICTS, "undefined"):
        if v in VERDICTS or any(counts[v, t] for t in VERDICTS):
            print(f"| {v} | " + " | ".join(str(counts[v, t]) for t in VERDICTS) + " |")


if __name__ == "__main__":
    main()
