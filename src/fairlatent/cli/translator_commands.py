"""CLI: ``fairlatent train-translator`` (a thin wrapper over :func:`fairlatent.train.cyclegan.train_translator`).

Nothing here imports torch at module level: the CLI sets the thread policy before torch loads.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from fairlatent.cli.app import app


@app.command("train-translator")
def train_translator_command(
    data: Path = typer.Option(..., "--data", help="Data set directory (its train split is used)."),
    protected: str = typer.Option(..., "--protected", help="The 0/1 attribute whose two groups are translated into each other."),
    out: Path = typer.Option(..., "--out", help="Run directory (translator.json, translator.safetensors, checkpoint/, samples/, log.csv)."),
    config: Optional[Path] = typer.Option(None, "--config", help="TOML file of CycleGANConfig settings (any field)."),
    set_: List[str] = typer.Option([], "--set", help="Set any CycleGANConfig field, e.g. --set n_blocks=4 (TOML value; repeatable; wins over every other source)."),
    steps: Optional[int] = typer.Option(None, "--steps", min=1, help="Training steps (default: CycleGANConfig's; or --set epochs=N)."),
    seed: Optional[int] = typer.Option(None, "--seed", min=0, help="Default 0."),
    device: Optional[str] = typer.Option(None, "--device", help="cpu, cuda, …; default: CUDA when available."),
    resume: bool = typer.Option(True, "--resume/--no-resume", help="Continue from OUT/checkpoint (default)."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
) -> None:
    """Train a CycleGAN translator between the two groups of a protected attribute (image-space
    counterfactuals); interrupted runs resume from their last checkpoint.

    Settings, later ones winning: CycleGANConfig's defaults, --config FILE, the flags given, --set KEY=VALUE."""
    from fairlatent.train.cyclegan import CycleGANConfig, train_translator
    from fairlatent.utils.io import check_output_distinct
    from fairlatent.utils.lock import folder_lock
    from fairlatent.utils.settings import settings_from

    check_output_distinct(out, {"--data": data, "--config": config})
    given = dict(steps=steps, seed=seed, device=device)
    spec = settings_from(CycleGANConfig, config=config, given=given, overrides=set_, where="train-translator",
                         given_sources={k: "--" + k for k in given})
    with folder_lock(out, what="train-translator"):  # one training per folder
        path = train_translator(data, protected, out, spec, resume=resume, progress=not quiet)
    typer.echo(f"translator: {path / 'translator.safetensors'}")
