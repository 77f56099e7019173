"""CLI: ``fairlatent explain`` — compositional explanations of a classifier's units and a bias audit
(a thin wrapper over :func:`fairlatent.explain.audit_classifiers` and :func:`fairlatent.explain.write_audit`)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from fairlatent.cli.app import app
from fairlatent.cli.options import positive
from fairlatent.errors import FairlatentError


def parse_models(specs: list[str]) -> dict[str, Path]:
    """``DIR`` or ``NAME=DIR`` per ``--model``; a bare ``DIR`` is named after its folder (or its parent's,
    for a pipeline run's ``train_<method>/model``)."""
    models: dict[str, Path] = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep:
            path = spec
            p = Path(spec)
            name = p.parent.name if p.name == "model" and p.parent.name else p.name
        name, path = name.strip(), path.strip()
        if not name or not path:
            raise FairlatentError(f"--model {spec!r}: expected DIR or NAME=DIR")
        if name in models:
            raise FairlatentError(f"--model {spec!r}: two models are named {name!r}; name them with NAME=DIR")
        models[name] = Path(path)
    return models


@app.command("explain")
def explain_command(
    model: List[str] = typer.Option([], "--model", help="Classifier directory, or NAME=DIR; repeat to compare "
                                    "several side by side (e.g. baseline, reweighting, a pipeline run's train_*/model)."),
    data: Optional[Path] = typer.Option(None, "--data", help="Probe data set (part masks from masks.npy and/or attribute columns)."),
    run: Optional[Path] = typer.Option(None, "--run", help="A pipeline run folder: audit its trained classifiers "
                                       "(train_<method>/model) on its data set with its target and protected "
                                       "attribute; --model, --data, --target, --protected, when given, win."),
    out: Path = typer.Option(..., "--out", help="Output folder: units.csv, summary.json, explain.html."),
    layer: Optional[str] = typer.Option(None, "--layer", help="Module path of the layer, e.g. blocks.1 (default: the last convolutional stage)."),
    length: int = typer.Option(3, "--length", min=1, help="Maximum concepts per formula."),
    beam: int = typer.Option(5, "--beam", min=1, help="Beam size of the formula search."),
    quantile: float = typer.Option(0.005, "--quantile", callback=positive, help="Top share of each unit's activations above its threshold (0.005 = 99.5th percentile)."),
    penalty: float = typer.Option(1.0, "--penalty", callback=positive, help="Complexity penalty: score = IoU * penalty^(len-1) (1 = none)."),
    protected: Optional[str] = typer.Option(None, "--protected", help="Protected attribute or part, e.g. Eyeglasses, glasses, Male (default: the data set's)."),
    target: Optional[str] = typer.Option(None, "--target", help="Target attribute the classifier predicts (default: the data set's)."),
    split: Optional[str] = typer.Option(None, "--split", help="Probe only this split (default: all images)."),
    max_images: Optional[int] = typer.Option(None, "--max-images", min=1, help="At most this many probe images, drawn at random (seeded by --seed); bounds the dissection's cost."),
    eval_split: str = typer.Option("test", "--eval-split", help="Split on which AP/DEO/BA with and without the protected units are measured."),
    val_split: str = typer.Option("val", "--val-split", help="Split on which each variant's decision threshold is calibrated."),
    n_boot: int = typer.Option(500, "--n-boot", min=1, help="Bootstrap resamples."),
    seed: int = typer.Option(0, "--seed", min=0),
    batch_size: int = typer.Option(256, "--batch-size", min=1),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing OUT that fairlatent wrote."),
) -> None:
    """Explain every unit of a layer by logical formulas of concepts (compositional explanations of neurons),
    find the units that detect the protected attribute, and measure the target's bias with them zeroed."""
    from fairlatent.explain.audit import audit_classifiers
    from fairlatent.explain.output import PAGE_HTML, write_audit
    from fairlatent.utils.io import check_output_distinct, check_replaceable

    if not quantile < 1:
        raise typer.BadParameter(f"must be in (0, 1) (got {quantile})", param_hint="'--quantile'")
    if penalty > 1:
        raise typer.BadParameter(f"must be in (0, 1] (got {penalty})", param_hint="'--penalty'")
    models = parse_models(model)
    if run is not None:
        from fairlatent.pipeline.audit import run_inputs

        inputs = run_inputs(run)
        for method, why in inputs.skipped.items():
            typer.echo(f"{method}: not audited ({why})", err=True)
        models = models or dict(inputs.models)
        data = data if data is not None else inputs.data
        target = target if target is not None else inputs.target
        protected = protected if protected is not None else inputs.protected
    if not models:
        raise typer.BadParameter("give --model DIR (repeatable) or --run RUN_DIR", param_hint="'--model'")
    if data is None:
        raise typer.BadParameter("give --data DIR or --run RUN_DIR", param_hint="'--data'")
    check_output_distinct(out, {"--model": list(models.values()), "--data": data,
                                **({"--run": run} if run is not None else {})})
    check_replaceable(out, overwrite)
    result = audit_classifiers(models, data, target=target, protected=protected, layer=layer, split=split,
                               eval_split=eval_split, val_split=val_split, quantile=quantile, length=length,
                               beam=beam, penalty=penalty, n_boot=n_boot, seed=seed, batch_size=batch_size,
                               max_images=max_images)
    write_audit(result, out, overwrite=overwrite)
    for name, a in result.audits.items():
        s = a.summary()
        line = f"{name}: layer {s['layer']}, {s['explained_units']}/{s['units']} units explained"
        if "protected_units" in s:
            line += f", {len(s['protected_units'])} detect {result.protected}"
        if "differences" in s and "ablated" in s["differences"]:
            deo = s["differences"]["ablated"].get("DEO", {})
            if deo.get("median") is not None:
                line += f"; DEO with them zeroed: {deo['median']:+.1f} [{deo['lo']:+.1f}, {deo['hi']:+.1f}] pts"
        typer.echo(line)
    typer.echo(f"report: {out / PAGE_HTML}")
