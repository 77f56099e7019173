"""The pre-flight's labeler check for pipeline runs made before the pipeline measured it.

Runs finished before the ``labeler_check`` stage existed (e.g. the first seeds of the ToyFaces sweep) have
the labelers but not the figure. This reads each run's data set, labelers and threshold kind and prints, per
run, f_t's and f_g's accuracy in every (target, protected) cell of the real validation split, their worst
judged cell and whether :func:`fairlatent.latent.preflight.labeler_checks` passes — the same computation as
the stage (:func:`fairlatent.pipeline.run.labeler_cell_accuracy`). By default it reads only::

    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/labeler_check_posthoc.py runs/toyfaces/pairs/*/seed0

``--write`` also records the figures as the run's ``labeler_check`` stage (``RUN/labeler_check/stage.json``,
written by the pipeline's stage runner under the key the pipeline gives that stage, from the run's own data
and labeler stages), so the benchmarks' re-reading of finished runs (``fairlatent benchmark toyfaces
--run-nothing``) counts the check in each run's pre-flight verdict
(:func:`fairlatent.benchmark.tasks.with_late_labeler_check`). Nothing else in the run is touched.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def main(argv: list[str] | None = None) -> None:
    from fairlatent.data.dataset import load_dataset
    from fairlatent.latent.preflight import PreflightBounds, labeler_checks, worst_cells
    from fairlatent.pipeline.run import labeler_cell_accuracy, load_labelers

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", help="pipeline run folders (with config.json, data/ and labeler/)")
    p.add_argument("--floor", type=float, default=PreflightBounds().min_labeler_acc)
    p.add_argument("--write", action="store_true", help="record the figures as each run's labeler_check stage")
    args = p.parse_args(argv)
    print("| run | f_t worst cell | f_g worst cell | f_t accuracy per cell (t0g0, t0g1, t1g0, t1g1) | check |")
    print("|---|---|---|---|---|")
    for run in map(Path, args.runs):
        cfg = json.loads((run / "config.json").read_text())
        stage = lambda name: json.loads((run / name / "stage.json").read_text())["outputs"]  # noqa: E731
        f_t, f_g = load_labelers(stage("labeler"))
        threshold = cfg["latent"].get("threshold", "f1")
        out = labeler_cell_accuracy(load_dataset(stage("data")["path"]), cfg["data"]["target"],
                                    cfg["data"]["protected"], f_t, f_g, threshold)
        if args.write:
            record_stage(run, threshold, out)
        worst = worst_cells(out["accuracy"], out["counts"])
        checks = labeler_checks(out["accuracy"], out["counts"], bounds=PreflightBounds(min_labeler_acc=args.floor))
        show = lambda w: "–" if w is None else f"{w[1]:.2f} ({w[0]})"  # noqa: E731
        cells = ", ".join(f"{out['accuracy']['t'].get(c, float('nan')):.2f}" for c in ("t0_g0", "t0_g1", "t1_g0", "t1_g1"))
        verdict = "passes" if all(c.passed for c in checks) else "fails: " + ", ".join(c.name for c in checks if not c.passed)
        name = f"{run.parent.name}/{run.name}"
        print(f"| {name} | {show(worst['t'])} | {show(worst['g'])} | {cells} | {verdict} |")


def record_stage(run: Path, threshold: str, outputs: dict) -> None:
    """Write ``outputs`` as the run's ``labeler_check`` stage, keyed as the pipeline keys it (its config and
    the keys of the run's finished ``data`` and ``labeler`` stages)."""
    from rich.console import Console

    from fairlatent.pipeline.stages import StageRunner

    runner = StageRunner(run, console=Console(quiet=True))
    for dep in ("data", "labeler"):
        runner.load_finished(dep)
    runner.run("labeler_check", {"threshold": threshold}, lambda _dir: outputs, deps=("data", "labeler"))


if __name__ == "__main__":
    main()
