"""CLI: ``fairlatent train-classifier`` and ``fairlatent score`` (thin wrappers over the Python API)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console
from rich.table import Table

from fairlatent.cli.app import relaunch_data_parallel, app, data_app  # noqa: F401
from fairlatent.cli.options import positive
from fairlatent.errors import FairlatentError


def _split_names(text: str) -> list[str]:
    names = [a.strip() for a in text.split(",") if a.strip()]
    if not names:
        raise FairlatentError(f"--attributes: no attribute names in {text!r}")
    return names


@app.command("train-classifier")
def train_classifier_command(
    data: Path = typer.Option(..., "--data", help="Real data set directory (its train split trains, its val split selects)."),
    attributes: str = typer.Option(..., "--attributes", help="Comma-separated attributes to predict, e.g. Smiling,Male."),
    out: Path = typer.Option(..., "--out", help="Output model directory (config.json + model.safetensors)."),
    extra_data: Optional[List[Path]] = typer.Option(None, "--extra-data", help="More training sets (e.g. synthetic); repeatable."),
    weights: Optional[str] = typer.Option(None, "--weights", help="'reweight': w(t,g) = N_t / (2·N_{t,g}) on the real train split."),
    target: Optional[str] = typer.Option(None, "--target", help="Target attribute for --weights reweight."),
    protected: Optional[str] = typer.Option(None, "--protected", help="Protected attribute for --weights reweight."),
    config: Optional[Path] = typer.Option(None, "--config", help="TOML file of ClassifierConfig settings (any field)."),
    set_: List[str] = typer.Option([], "--set", help="Set any ClassifierConfig field, e.g. --set weight_decay=1e-4 (TOML value; repeatable; wins over every other source)."),
    epochs: Optional[int] = typer.Option(None, "--epochs", min=1, help="Default 5."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", min=1, help="Default 64."),
    width: Optional[int] = typer.Option(None, "--width", min=1, help="Default 16."),
    depth: Optional[int] = typer.Option(None, "--depth", min=1, help="Default 1."),
    lr: Optional[float] = typer.Option(None, "--lr", callback=positive, help="Default 1e-3."),
    seed: Optional[int] = typer.Option(None, "--seed", min=0, help="Default 0."),
    device: Optional[str] = typer.Option(None, "--device", help="cpu, cuda, …; default: CUDA when available."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing model or checkpoint of another run."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
    nproc: int = typer.Option(1, "--nproc", min=1, help="Train data-parallel on N processes of this machine "
                              "(re-launches itself under torchrun; several machines: run torchrun yourself)."),
) -> None:
    """Train a multi-attribute classifier (resumes from OUT's checkpoint when interrupted).

    Settings, later ones winning: ClassifierConfig's defaults, --config FILE, the flags given, --set KEY=VALUE."""
    from fairlatent.data.dataset import load_dataset
    from fairlatent.models.classifier import read_classifier_config
    from fairlatent.train.classifier import ClassifierConfig, reweighting_weights, train_classifier
    from fairlatent.utils.settings import settings_from

    from fairlatent.utils.io import check_output_distinct
    from fairlatent.utils.lock import folder_lock

    check_output_distinct(out, {"--data": data, "--extra-data": extra_data, "--config": config})
    given = dict(epochs=epochs, batch_size=batch_size, width=width, depth=depth, lr=lr, seed=seed, device=device)
    spec = settings_from(ClassifierConfig, config=config, given=given, overrides=set_, where="train-classifier",
                         given_sources={k: "--" + k.replace("_", "-") for k in given})
    names = _split_names(attributes)
    real = load_dataset(data)
    real.check_attributes(names)
    extras = [load_dataset(p) for p in (extra_data or [])]
    sample_weights = None
    if weights is not None:
        if weights != "reweight":
            raise FairlatentError(f"--weights: unknown scheme {weights!r}; the only scheme is 'reweight'")
        if not target or not protected:
            raise FairlatentError("--weights reweight needs --target and --protected")
        if target == protected:
            raise FairlatentError(f"--target and --protected are both {target!r}; reweighting balances a target "
                                  f"across the groups of another attribute, so they must be different")
        real.check_attributes([target, protected])
        idx = real.split_indices("train")
        w = reweighting_weights(real.labels(target, idx), real.labels(protected, idx))
        sample_weights = [w] + [None] * len(extras)
    elif target or protected:
        raise FairlatentError("--target/--protected only apply with --weights reweight")
    relaunch_data_parallel(nproc)
    with folder_lock(out, what="train-classifier"):  # one training per folder
        path = train_classifier(
            [real, *extras], names, out, spec, sample_weights=sample_weights, progress=not quiet, overwrite=overwrite
        )
    saved = read_classifier_config(path)
    table = Table(title=f"{path} (best epoch {saved['best_epoch']}, validation)")
    for col in ("attribute", "AP", "acc (calibrated)", "calibrated thr", "F1 thr"):
        table.add_column(col)
    for a in saved["attributes"]:
        m, t = saved["val_metrics"][a], saved["thresholds"][a]
        table.add_row(a, f"{m['ap']:.4f}", f"{m['accuracy_calibrated']:.4f}", f"{t['calibrated']:.4g}", f"{t['f1']:.4g}")
    Console().print(table)


@app.command("score")
def score_command(
    model: Path = typer.Option(..., "--model", help="Trained classifier directory."),
    data: Path = typer.Option(..., "--data", help="Data set directory to score."),
    out: Path = typer.Option(..., "--out", help="Output CSV: id, then one sigmoid-score column per attribute."),
    split: Optional[str] = typer.Option(None, "--split", help="Score only this split (default: every row)."),
    batch_size: int = typer.Option(512, "--batch-size", min=1),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing OUT file."),
) -> None:
    """Score every image of a data set with a trained classifier."""
    from fairlatent.models.classifier import score_dataset
    from fairlatent.utils.io import check_output_distinct, check_output_file

    check_output_distinct(out, {"--model": model, "--data": data})
    check_output_file(out, suffixes=(".csv",), overwrite=overwrite, what="CSV")

    path = score_dataset(model, data, out, split=split, batch_size=batch_size)
    Console().print(f"wrote {path}")
