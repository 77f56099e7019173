"""``fairlatent benchmark celeba`` (the paper's protocol on real CelebA faces) and ``fairlatent benchmark toyfaces``
(the pipeline over many ToyFaces cases); see fairlatent.benchmark.celeba and fairlatent.benchmark.toyfaces."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any, Optional

import typer

from fairlatent.cli.app import benchmark_app, relaunch_data_parallel
from fairlatent.cli.options import one_of
from fairlatent.errors import FairlatentError

def _csv(value: str | None, cast=str) -> list | None:
    if value is None:
        return None
    items = [v.strip() for v in value.split(",") if v.strip()]
    try:
        return [cast(v) for v in items]
    except ValueError:
        raise FairlatentError(f"cannot read {value!r} as a comma-separated list of {cast.__name__}") from None


# options every benchmark command has
BACKGROUND = typer.Option(False, "--background", help="Detach; write the log to OUT/benchmark.log.")
QUIET = typer.Option(False, "--quiet", help="No progress bars.")


@benchmark_app.command("celeba")
def celeba_command(
    root: Path = typer.Option(Path("../shared/data/celeba"), "--root", help="CelebA folder (images or zip + labels)."),
    out: Path = typer.Option(Path("runs/celeba"), "--out", help="Benchmark folder (resumable)."),
    targets: str = typer.Option(None, "--targets", help="Comma-separated targets (default: the paper's 26 with "
                                                        "enough positives in each protected group)."),
    protected: str = typer.Option("Male", "--protected"),
    size: int = typer.Option(None, "--size", callback=one_of(32, 64, 128), help="Image size (default 64)."),
    seeds: str = typer.Option("0", "--seeds", help="Comma-separated seeds, e.g. 0,1,2."),
    seed_scope: str = typer.Option(None, "--seed-scope", help="'all' (default): each seed draws its own split, "
                                   "GAN and protected classifier; 'pipeline': one split/GAN/f_g (first seed) for "
                                   "every seed, seeds resample only the pipeline (the layout of earlier versions)."),
    skew_target: str = typer.Option(None, "--skew-target", help="Target of the skew sweep (default Smiling; "
                                                                "'none' for no sweep)."),
    skews: str = typer.Option(None, "--skews", help="Comma-separated skews (default 0.5,0.7,0.9)."),
    min_positives: int = typer.Option(None, "--min-positives", min=1, help="Per protected group (default 150)."),
    preset: str = typer.Option("default", "--preset", help="'default' or 'test' (a few hundred images, tiny models)."),
    set_: list[str] = typer.Option([], "--set", help="Override a config value, e.g. --set gan.steps=2000 or "
                                                     "--set classifier.lr=1e-3 (TOML value; repeatable)."),
    background: bool = BACKGROUND,
    quiet: bool = QUIET,
    nproc: int = typer.Option(1, "--nproc", min=1, help="Run on N processes of this machine (re-launches itself "
                              "under torchrun): shared GANs and classifiers train data-parallel, the (target, "
                              "seed) runs are dealt over the processes. A rerun with any N continues."),
    doc_dir: Optional[Path] = typer.Option(None, "--doc-dir", help="At the end, also write celeba.md, celeba.json "
                                           "and celeba_ap_vs_deo.png here (e.g. docs/benchmarks; text above a "
                                           "'---' line before '## Results' in an existing celeba.md is kept)."),
    doc_name: str = typer.Option("celeba", "--doc-name", help="With --doc-dir: the documents' name (NAME.md, "
                                 "NAME.json, NAME_ap_vs_deo.png), e.g. for a second run beside the main one."),
    run_nothing: bool = typer.Option(False, "--run-nothing", help="Train and run nothing: read the shared "
                                     "stages as finished and rewrite the results (and, with --doc-dir, the "
                                     "documents) from the runs finished earlier, e.g. after an upgrade changed "
                                     "how runs are summarised."),
) -> None:
    """Run (or resume) the CelebA benchmark: per seed a split, a GAN and a protected-attribute classifier,
    then baseline, reweighting and latent de-biasing for every target and seed with bootstrap metrics;
    results.json, results.md, celeba.json and ap_vs_deo.png in OUT are rewritten as runs finish."""
    from fairlatent.benchmark.celeba import CelebABenchmarkConfig, run_celeba_benchmark
    from fairlatent.benchmark.presets import preset as preset_config

    raw: dict[str, Any] = preset_config(preset)
    raw.update({"root": str(root), "protected": protected, "seeds": _csv(seeds, int)})
    if targets:
        raw["targets"] = _csv(targets)
    if size is not None:
        raw["size"] = size
    if skew_target is not None:
        raw["skew_target"] = None if skew_target.lower() == "none" else skew_target
    if skews is not None:
        raw["skews"] = _csv(skews, float)
    if min_positives is not None:
        raw["min_positives"] = min_positives
    if seed_scope is not None:
        raw["seed_scope"] = seed_scope
    from fairlatent.utils.settings import apply_overrides, parse_overrides, validate_settings

    sets = parse_overrides(set_)
    cfg = validate_settings(CelebABenchmarkConfig, apply_overrides(raw, sets), "benchmark celeba",
                            {k: "--set" for k in sets})

    from fairlatent.cli.app import invocation

    command = invocation()
    _launch(out, background=background, nproc=nproc, quiet=quiet,
            run=lambda console, after_run: run_celeba_benchmark(cfg, out, console=console, progress=not quiet,
                                                                after_run=after_run, command=command,
                                                                doc_dir=doc_dir, doc_name=doc_name,
                                                                run_nothing=run_nothing))


def _launch(out: Path, *, background: bool, nproc: int, quiet: bool, run) -> None:
    """What every benchmark command does once its config is valid: detach (``--background``), re-launch on
    N processes (``--nproc``), or run here under the folder's lock; ``run(console, after_run)`` runs it."""
    from rich.console import Console

    from fairlatent.benchmark.lock import benchmark_lock, take_lock
    from fairlatent.report import build_report

    if background:
        take_lock(out, check_only=True)  # refuse now if one is already running there; the child takes it
        log = out / "benchmark.log"
        argv = [a for a in sys.argv[1:] if a != "--background"]
        with open(log, "a") as fh:
            proc = subprocess.Popen([sys.executable, "-m", "fairlatent.cli", *argv, "--quiet"], stdout=fh,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        typer.echo(f"benchmark running in the background (pid {proc.pid}); log: {log}; "
                   f"results as runs finish: {out / 'results.md'}")
        return
    from fairlatent.train.distributed import env_world_size

    if nproc > 1 and env_world_size() <= 1:
        take_lock(out, check_only=True)  # refuse before starting N processes; under torchrun rank 0 takes it
    relaunch_data_parallel(nproc)
    console = Console(width=140) if quiet else Console()
    with benchmark_lock(out):
        # each finished pipeline run gets its report.html and tables, as `fairlatent run` gives one
        run(console, lambda run_dir: build_report(run_dir, console=console))


@benchmark_app.command("toyfaces")
def toyfaces_command(
    out: Path = typer.Option(Path("runs/toyfaces"), "--out", help="Benchmark folder (resumable)."),
    pairs: str = typer.Option(None, "--pairs", help="Comma-separated pair names to run (default: every pair of "
                                                    "the preset; names as in results.md, e.g. "
                                                    "Wearing_Hat-Eyeglasses-s0.9-faintWearing_Hat0.5)."),
    seeds: str = typer.Option(None, "--seeds", help="Comma-separated seeds (default 0,1,2; the test preset: 0)."),
    preset: str = typer.Option("default", "--preset", help="'default' (12 pairs, the demo's settings) or 'test' "
                                                          "(2 pairs, 600 faces, tiny models)."),
    set_: list[str] = typer.Option([], "--set", help="Override a config value, e.g. --set gan.steps=2000 or "
                                                     "--set n=10000 (TOML value; repeatable)."),
    background: bool = BACKGROUND,
    quiet: bool = QUIET,
    nproc: int = typer.Option(1, "--nproc", min=1, help="Run on N processes of this machine (re-launches itself "
                              "under torchrun): the (pair, seed) runs are dealt over the processes. A rerun with "
                              "any N continues."),
    run_nothing: bool = typer.Option(False, "--run-nothing", help="Run no pipeline: rewrite results.json and "
                                     "results.md from the runs finished earlier (e.g. after an upgrade changed "
                                     "how runs are summarised)."),
    adopt: Optional[Path] = typer.Option(None, "--adopt", help="A published results.json (e.g. "
                                         "docs/benchmarks/toyfaces.json): its finished runs of the same settings "
                                         "are taken as done, with the CPU they ran on, and not rerun."),
) -> None:
    """Run (or resume) the ToyFaces benchmark: for every (target, protected, skew, faintness) pair and seed a
    whole pipeline run (data, GAN, labelers, baseline, reweighting, latent de-biasing) with paired bootstrap
    differences to the baseline and the latent diagnostics; results.json and results.md in OUT."""
    from fairlatent.benchmark.presets import TOYFACES_PRESETS
    from fairlatent.benchmark.presets import preset as preset_config
    from fairlatent.benchmark.toyfaces import ToyFacesBenchmarkConfig, run_toyfaces_benchmark, select_pairs
    from fairlatent.utils.settings import apply_overrides, parse_overrides, validate_settings

    raw: dict[str, Any] = preset_config(preset, TOYFACES_PRESETS)
    if seeds is not None:
        raw["seeds"] = _csv(seeds, int)
    sets = parse_overrides(set_)
    raw = apply_overrides(raw, sets)
    if pairs:
        raw = select_pairs(raw, _csv(pairs))
    cfg = validate_settings(ToyFacesBenchmarkConfig, raw, "benchmark toyfaces", {k: "--set" for k in sets})
    _launch(out, background=background, nproc=nproc, quiet=quiet,
            run=lambda console, after_run: run_toyfaces_benchmark(cfg, out, console=console, progress=not quiet,
                                                                  after_run=after_run, run_nothing=run_nothing,
                                                                  adopt_from=adopt))


@benchmark_app.command("compare")
def compare_command(
    a: Path = typer.Argument(..., help="First benchmark folder (or its results.json), e.g. the plain GAN's."),
    b: Path = typer.Argument(..., help="Second benchmark folder, same groups and seeds, e.g. InfoGAN's."),
    names: str = typer.Option("A,B", "--names", help="Two comma-separated names for the folders in the table."),
    method: str = typer.Option("latent_debias", "--method", help="The method whose ΔDEO/ΔAP is compared."),
    out: Optional[Path] = typer.Option(None, "--out", help="Also write the table as markdown to this file."),
) -> None:
    """Two benchmark runs that differ only in the generator, run by run: the latent diagnostics (held-out
    hyperplane accuracy, |cos θ|, flip and keep rates), FID of G(z) and the method's ΔDEO/ΔAP, per group mean ±
    sd over seeds with the per-run difference B − A."""
    from rich.console import Console
    from rich.markdown import Markdown

    from fairlatent.benchmark.compare import compare_latents, comparison_markdown, read_results
    from fairlatent.utils.io import write_text

    pair = _csv(names)
    if pair is None or len(pair) != 2:
        raise FairlatentError(f"--names {names!r}: give two comma-separated names, e.g. --names gan,infogan")
    md = comparison_markdown(compare_latents(read_results(a), read_results(b), method=method), (pair[0], pair[1]))
    Console().print(Markdown(md))
    if out is not None:
        write_text(out, md)


@benchmark_app.command("status")
def status_command(
    out: Path = typer.Argument(..., help="A benchmark folder (the --out of `benchmark celeba|toyfaces`)."),
    as_json: bool = typer.Option(False, "--json", help="Print the status as JSON instead of lines."),
) -> None:
    """Where a benchmark stands, read from its folder (running or not): runs finished, failed, running (rank,
    process) and waiting; every stage begun and not finished, with its training's step and pace; a rough
    time left. Writes nothing."""
    import json

    from fairlatent.benchmark.status import benchmark_status, status_lines

    status = benchmark_status(out)
    typer.echo(json.dumps(status, indent=2) if as_json else "\n".join(status_lines(status)))
