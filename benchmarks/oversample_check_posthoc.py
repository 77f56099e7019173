"""How the labelers read latent_oversample's decoded images, for pipeline runs made before the pipeline
measured it (the ``oversample_check`` stage).

Runs of ``latent_oversample`` finished before that stage existed have the labelers, the autoencoder and its
decoded set but not the figure. This reads each run's data set, decoded set, labelers and threshold kind and
prints, per decoded cell, the share of decoded images that f_t and f_g put in that cell, beside the share of
the cell's real training images — the stage's own computation
(:func:`fairlatent.pipeline.latent_oversample.labelers_read_oversampled`). By default it reads only::

    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/oversample_check_posthoc.py runs/toyfaces_os/pairs/*/seed*

``--write`` also records the figures as the run's ``oversample_check`` stage, under the key the pipeline gives
it (its config and the keys of the run's finished ``data``, ``labeler`` and ``oversample`` stages), so a later
run of the pipeline on that folder skips the stage and its report shows the figures. Nothing else is touched.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def main(argv: list[str] | None = None) -> None:
    from rich.console import Console

    from fairlatent.data.dataset import load_dataset
    from fairlatent.pipeline.latent_oversample import labelers_read_oversampled
    from fairlatent.pipeline.run import load_labelers
    from fairlatent.pipeline.stages import StageRunner

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", help="pipeline run folders (with config.json, data/, labeler/, oversample/)")
    p.add_argument("--write", action="store_true", help="record the figures as each run's oversample_check stage")
    args = p.parse_args(argv)
    print("| run | cell | decoded images | f_t, f_g put them in the cell | real training images | in the cell |")
    print("|---|---|---:|---:|---:|---:|")
    for run in map(Path, args.runs):
        cfg = json.loads((run / "config.json").read_text())
        runner = StageRunner(run, console=Console(quiet=True))
        stages = {name: runner.load_finished(name) for name in ("data", "labeler", "oversample")}
        threshold = cfg["latent"].get("threshold", "f1")
        out = labelers_read_oversampled(load_dataset(stages["data"].outputs["path"]),
                                        load_dataset(stages["oversample"].dir / "dataset"), cfg["data"]["target"],
                                        cfg["data"]["protected"], load_labelers(stages["labeler"].outputs), threshold)
        if args.write:
            runner.run("oversample_check", {"threshold": threshold}, lambda _dir: out,
                       deps=("data", "labeler", "oversample"))
        for c, d in out["decoded"].items():
            r = out["real"][c]
            print(f"| {run.parent.name}/{run.name} | {c} | {d['images']} | {d['in_cell']:.1%} | {r['images']} | "
                  f"{r['in_cell']:.1%} |")


if __name__ == "__main__":
    main()
