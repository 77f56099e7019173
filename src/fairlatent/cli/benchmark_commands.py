"""``fairlatent benchmark celeba``: the paper's protocol on real CelebA faces (see fairlatent.benchmark.celeba)."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import typer

from fairlatent.cli.app import benchmark_app
from fairlatent.errors import FairlatentError

# A test-sized benchmark: a few hundred images, tiny models; shows the mechanics in about a minute.
TEST_PRESET: dict[str, Any] = {
    "limit": 600, "size": 32, "min_positives": 20,
    "gan": {"arch": "dcgan", "width": 16, "steps": 400, "batch_size": 32, "checkpoint_every": 200, "sample_every": 200},
    "classifier": {"width": 8, "epochs": 6, "stages": 2},
    # calibrated: a tiny labeler's F1-best threshold can sit below every score and label all of G(z) alike
    "latent": {"n_fit": 200, "n_holdout": 100, "n_pairs": 100, "batch_size": 128, "threshold": "calibrated"},
    "evaluation": {"n_boot": 20, "n_generative": 100},
    "skews": [0.5, 0.7],
}


def _csv(value: str | None, cast=str) -> list | None:
    if value is None:
        return None
    items = [v.strip() for v in value.split(",") if v.strip()]
    try:
        return [cast(v) for v in items]
    except ValueError:
        raise FairlatentError(f"cannot read {value!r} as a comma-separated list of {cast.__name__}") from None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def _take_lock(out: Path, *, check_only: bool = False) -> Path:
    """One benchmark per output folder: a second one would interleave writes to the same files."""
    out.mkdir(parents=True, exist_ok=True)
    lock = out / "benchmark.pid"
    if lock.is_file():
        try:
            pid = int(lock.read_text().strip())
        except ValueError:
            pid = -1
        if pid > 0 and pid != os.getpid() and _pid_alive(pid):
            raise FairlatentError(f"{out}: another benchmark (pid {pid}) is running in this folder; wait for it "
                                  f"or stop it (kill {pid}); its log is {out / 'benchmark.log'}")
    if not check_only:
        lock.write_text(str(os.getpid()))
    return lock


@benchmark_app.command("celeba")
def celeba_command(
    root: Path = typer.Option(Path("../shared/data/celeba"), "--root", help="CelebA folder (images or zip + labels)."),
    out: Path = typer.Option(Path("runs/celeba"), "--out", help="Benchmark folder (resumable)."),
    targets: str = typer.Option(None, "--targets", help="Comma-separated targets (default: the paper's 26 with "
                                                        "enough positives in each protected group)."),
    protected: str = typer.Option("Male", "--protected"),
    size: int = typer.Option(None, "--size", help="Image size (default 64)."),
    seeds: str = typer.Option("0", "--seeds", help="Comma-separated seeds, e.g. 0,1,2."),
    skew_target: str = typer.Option(None, "--skew-target", help="Target of the skew sweep (default Smiling; "
                                                                "'none' for no sweep)."),
    skews: str = typer.Option(None, "--skews", help="Comma-separated skews (default 0.5,0.7,0.9)."),
    min_positives: int = typer.Option(None, "--min-positives", help="Per protected group (default 150)."),
    preset: str = typer.Option("default", "--preset", help="'default' or 'test' (a few hundred images, tiny models)."),
    set_: list[str] = typer.Option([], "--set", help="Override a config value, e.g. --set gan.steps=2000 or "
                                                     "--set classifier.lr=1e-3 (TOML value; repeatable)."),
    background: bool = typer.Option(False, "--background", help="Detach; write the log to OUT/benchmark.log."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bars."),
) -> None:
    """Run (or resume) the CelebA benchmark: one GAN and one protected-attribute classifier, then baseline,
    reweighting and latent de-biasing for every target with bootstrap metrics; results.json and results.md
    in OUT are rewritten as targets finish."""
    from rich.console import Console

    from fairlatent.benchmark.celeba import CelebABenchmarkConfig, run_celeba_benchmark

    if preset not in ("default", "test"):
        raise FairlatentError(f"--preset {preset!r}: choose 'default' or 'test'")
    raw: dict[str, Any] = copy.deepcopy(TEST_PRESET) if preset == "test" else {}
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
    from fairlatent.utils.settings import apply_overrides, parse_overrides, validate_settings

    sets = parse_overrides(set_)
    cfg = validate_settings(CelebABenchmarkConfig, apply_overrides(raw, sets), "benchmark celeba",
                            {k: "--set" for k in sets})

    if background:
        _take_lock(out, check_only=True)  # refuse now if one is already running there; the child takes it
        log = out / "benchmark.log"
        argv = [a for a in sys.argv[1:] if a != "--background"]
        with open(log, "a") as fh:
            proc = subprocess.Popen([sys.executable, "-m", "fairlatent.cli", *argv, "--quiet"], stdout=fh,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        typer.echo(f"benchmark running in the background (pid {proc.pid}); log: {log}; "
                   f"results as targets finish: {out / 'results.md'}")
        return
    lock = _take_lock(out)
    try:
        console = Console(width=140) if quiet else None
        run_celeba_benchmark(cfg, out, console=console, progress=not quiet)
    finally:
        lock.unlink(missing_ok=True)
