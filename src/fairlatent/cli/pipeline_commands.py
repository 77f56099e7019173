"""``fairlatent run`` and ``fairlatent demo``: the de-biasing pipeline end to end."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import List

import typer

from fairlatent.cli.app import app


def _builtin_config(name: str):
    from fairlatent.pipeline.config import load_config

    with resources.as_file(resources.files("fairlatent.pipeline") / "configs" / f"{name}.toml") as path:
        return load_config(path)


def _run_and_report(cfg, out: Path, *, quiet: bool) -> None:
    """The pipeline writes report.json; the report layer renders report.html and prints the tables from it."""
    from rich.console import Console

    from fairlatent.pipeline.run import run_pipeline
    from fairlatent.report import build_report

    console = Console()
    run_pipeline(cfg, out, console=console, progress=not quiet)
    build_report(out, console=console)


@app.command("run")
def run_command(
    config: Path = typer.Argument(..., help="Pipeline config (TOML). See `fairlatent demo` for a built-in one."),
    out: Path = typer.Option(None, "--out", help="Run directory (default: runs/<config name>)."),
    set_: List[str] = typer.Option([], "--set", help="Override a config value, e.g. --set gan.steps=2000 or "
                                                     "--set seed=1 (TOML value; repeatable)."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bars."),
) -> None:
    """Run (or resume) the whole pipeline: data → GAN → classifiers → latents → hyperplanes → pairs →
    retraining of each method → evaluation → report. Unchanged stages are skipped."""
    from fairlatent.pipeline.config import load_config

    cfg = load_config(config, overrides=set_)
    _run_and_report(cfg, out or Path("runs") / cfg.name, quiet=quiet)


@app.command("demo")
def demo_command(
    out: Path = typer.Option(Path("runs/demo"), "--out", help="Run directory."),
    fast: bool = typer.Option(False, "--fast", help="A tiny version (for tests); shows the mechanics, not the effect."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bars."),
) -> None:
    """The built-in demo: ToyFaces, target Wearing_Hat, protected Eyeglasses, training skew 0.9."""
    cfg = _builtin_config("demo_fast" if fast else "demo")
    _run_and_report(cfg, out, quiet=quiet)


@app.command("report")
def report_command(
    run_dir: Path = typer.Argument(..., help="A run directory holding report.json (written by `fairlatent run`)."),
) -> None:
    """Re-render report.html and the terminal tables of a finished run from its report.json; runs nothing."""
    from rich.console import Console

    from fairlatent.report import build_report

    build_report(run_dir, console=Console())
