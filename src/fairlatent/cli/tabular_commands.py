"""CLI: ``fairlatent tabular fit | sample | evaluate`` (thin wrappers over :mod:`fairlatent.tabular`)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from fairlatent.cli.app import app, benchmark_app
from fairlatent.errors import FairlatentError

tabular_app = typer.Typer(help="Tabular data: CTGAN, FairGAN, fair conditional sampling, evaluation.",
                          no_args_is_help=True)
app.add_typer(tabular_app, name="tabular")


def _pairs(items: List[str], flag: str, need_value: bool) -> list[tuple[str, Optional[str]]]:
    out = []
    for item in items:
        col, sep, val = item.partition("=")
        col = col.strip()
        if not col or (need_value and not sep):
            raise FairlatentError(f"{flag} {item!r}: expected COLUMN{'=VALUE' if need_value else '[=VALUE]'}")
        out.append((col, val.strip() if sep else None))
    return out


@tabular_app.command("fit")
def fit_command(
    data: Path = typer.Option(..., "--data", help="Table: adult.data, compas-scores-two-years.csv, german.data (known "
                              "formats, by file name) or any CSV with a header."),
    out: Path = typer.Option(..., "--out", help="Run directory (config.json, model.json, train/test.csv, checkpoint/, "
                             "log.csv, generator.safetensors)."),
    target: Optional[str] = typer.Option(None, "--target", help="Target column (a known format has its own)."),
    protected: List[str] = typer.Option([], "--protected", help="COL or COL=PRIVILEGED_VALUE (repeatable; the first "
                                        "is the one FairGAN and the competitors use)."),
    positive: Optional[str] = typer.Option(None, "--positive", help="Positive target value (needed unless the target "
                                           "is 0/1); a target of more values becomes positive-vs-rest."),
    model: str = typer.Option("ctgan", "--model", help="ctgan | fairgan."),
    fmt: str = typer.Option("auto", "--format", help="auto | csv | adult | compas | german."),
    test: Optional[Path] = typer.Option(None, "--test", help="CSV only: the test table (else a seeded 70/30 split)."),
    missing: str = typer.Option("drop", "--missing", help="drop (rows with a missing value) | error."),
    epochs: Optional[int] = typer.Option(None, "--epochs", min=1, help="CTGAN: epochs (default 300); FairGAN: total, "
                                         "half plain and half fair."),
    config: Optional[Path] = typer.Option(None, "--config", help="TOML file of CTGANConfig / FairGANConfig settings."),
    set_: List[str] = typer.Option([], "--set", help="Any model setting, e.g. --set fairness_weight=2 (repeatable)."),
    seed: Optional[int] = typer.Option(None, "--seed", min=0, help="Model seed and the split's seed (default 0)."),
    resume: bool = typer.Option(True, "--resume/--no-resume", help="Continue from OUT/checkpoint (default)."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
) -> None:
    """Train CTGAN or FairGAN on a table's training split; interrupted runs resume from their checkpoint."""
    from fairlatent.tabular.readers import load_table
    from fairlatent.tabular.synthesizer import config_class, fit
    from fairlatent.utils.io import check_output_distinct
    from fairlatent.utils.lock import folder_lock
    from fairlatent.utils.settings import settings_from

    if missing not in ("drop", "error"):
        raise FairlatentError(f"--missing {missing!r}: one of drop, error")
    check_output_distinct(out, {"--data": data, "--test": test, "--config": config})
    cls = config_class(model)
    given: dict = {"seed": seed}
    if epochs is not None:
        if model == "ctgan":
            given["epochs"] = epochs
        else:
            given["plain_epochs"], given["fair_epochs"] = epochs // 2, epochs - epochs // 2
    spec = settings_from(cls, config=config, given=given, overrides=set_, where=f"tabular fit --model {model}",
                         given_sources={"seed": "--seed", "epochs": "--epochs", "plain_epochs": "--epochs",
                                        "fair_epochs": "--epochs"})
    kw = {"test": test} if test is not None else {}
    table = load_table(data, fmt=fmt, target=target, protected=_pairs(protected, "--protected", False),
                       positive=positive, seed=spec.seed, missing=missing, **kw)
    for note in table.notes:
        typer.echo(f"note: {note}", err=True)
    with folder_lock(out, what="tabular fit"):
        path = fit(table, out, spec, resume=resume, progress=not quiet)
    typer.echo(f"model: {path}")


@tabular_app.command("sample")
def sample_command(
    run: Path = typer.Option(..., "--run", help="A finished `tabular fit` run directory."),
    n: int = typer.Option(..., "--n", min=1, help="Rows to draw."),
    out: Path = typer.Option(..., "--out", help="Output CSV file."),
    condition: List[str] = typer.Option([], "--condition", help="COL=VALUE of a categorical column (repeatable): every "
                                        "row holds these values."),
    fair: bool = typer.Option(False, "--fair", help="Draw the (target, first protected) cells independent, with the real "
                              "marginals (fair conditional sampling)."),
    seed: int = typer.Option(0, "--seed", min=0),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing OUT file."),
) -> None:
    """Draw synthetic rows from a trained tabular model."""
    from fairlatent.tabular.fair_sampling import fair_synthetic
    from fairlatent.tabular.run import table_csv
    from fairlatent.tabular.synthesizer import Synthesizer
    from fairlatent.utils.io import check_output_distinct, check_output_file, write_text

    check_output_file(out, suffixes=(".csv",), overwrite=overwrite)
    check_output_distinct(out, {"--run": run})
    if fair and condition:
        raise FairlatentError("--fair sets the (target, protected) cells itself; leave out --condition")
    synth = Synthesizer(run)
    if fair:
        df = fair_synthetic(synth, synth.data, mode="synthetic", n=n, seed=seed)
    else:
        df = synth.sample(n, dict(_pairs(condition, "--condition", True)), seed=seed)
    write_text(out, table_csv(df))
    typer.echo(f"{len(df)} rows → {out}")


@tabular_app.command("evaluate")
def evaluate_command(
    run: Path = typer.Option(..., "--run", help="A finished `tabular fit` run (its split is the real data)."),
    out: Path = typer.Option(..., "--out", help="Output directory (report.json, synthetic.csv)."),
    synthetic: Optional[Path] = typer.Option(None, "--synthetic", help="A synthetic CSV to judge (default: draw --n "
                                             "rows from the run)."),
    n: Optional[int] = typer.Option(None, "--n", min=1, help="Rows to draw (default: as many as the training split)."),
    n_boot: int = typer.Option(200, "--n-boot", min=0, help="Bootstrap resamples of the fairness intervals."),
    competitors: bool = typer.Option(True, "--competitors/--no-competitors", help="fairlearn ExponentiatedGradient "
                                     "(DP, EO), ThresholdOptimizer, reweighing."),
    fair_sampling: bool = typer.Option(True, "--fair-sampling/--no-fair-sampling", help="Also score real + fair "
                                       "synthetic rows (independent target and protected)."),
    classifiers: str = typer.Option("logistic_regression,gradient_boosting,mlp", "--classifiers",
                                    help="Comma-separated: logistic_regression, gradient_boosting, mlp."),
    drop_protected: bool = typer.Option(False, "--drop-protected", help="Classifiers do not see the protected "
                                        "columns (fairness through unawareness, as in FairGAN's evaluation)."),
    seed: int = typer.Option(0, "--seed", min=0),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing OUT folder fairlatent wrote."),
) -> None:
    """Fidelity, machine-learning efficacy, fairness and privacy of synthetic rows against the run's real split."""
    from fairlatent.tabular.evaluate import evaluate_tables
    from fairlatent.tabular.fair_sampling import fair_training_set
    from fairlatent.tabular.run import load_run_data, read_table_csv, table_csv
    from fairlatent.tabular.synthesizer import Synthesizer
    from fairlatent.utils.io import atomic_directory, check_output_distinct, check_replaceable, write_json, write_text

    check_output_distinct(out, {"--run": run, "--synthetic": synthetic})
    check_replaceable(out, overwrite)
    data = load_run_data(run)
    synth = None
    if synthetic is not None:
        syn = read_table_csv(synthetic, data)
    else:
        synth = Synthesizer(run, data)
        syn = synth.sample(n or len(data.train), seed=seed)
    extra = {}
    if fair_sampling:
        synth = synth or Synthesizer(run, data)
        extra["real+fair_synthetic"] = fair_training_set(synth, data, seed=seed)
    model = str(synth.config.model) if synth is not None else "synthetic"
    names = [c.strip() for c in classifiers.split(",") if c.strip()]
    report = evaluate_tables(data, {model: syn}, seed=seed, n_boot=n_boot, competitors=competitors,
                             classifiers=names, extra_training_sets=extra, drop_protected=drop_protected)
    with atomic_directory(out, overwrite=overwrite) as tmp:
        write_json(tmp / "report.json", report)
        write_text(tmp / "synthetic.csv", table_csv(syn))
    s = report["synthetic"][model]
    typer.echo(f"fidelity: column shapes {s['fidelity']['column_shapes']:.3f}, "
               f"pair trends {s['fidelity']['column_pair_trends']:.3f}")
    for src, eff in (("real", report["real"]["efficacy"]), (model, s["efficacy"])):
        for clf, v in eff.items():
            if "f1" in v:
                typer.echo(f"{src:>10} {clf:<20} acc {v['accuracy']:.3f}  F1 {v['f1']:.3f}  AUC {v['auc']:.3f}")
    typer.echo(f"report: {out / 'report.json'}")


@tabular_app.command("benchmark")
def benchmark_command(
    data_dir: Path = typer.Option(..., "--data-dir", help="Folder holding adult.data/adult.test, "
                                  "compas-scores-two-years.csv and german.data."),
    out: Path = typer.Option(..., "--out", help="Benchmark folder (runs/, results/, summary.json, summary.md)."),
    datasets: str = typer.Option("adult,compas,german", "--datasets", help="Comma-separated."),
    models: str = typer.Option("ctgan,fairgan,fairgan_dp", "--models", help="Comma-separated: ctgan, fairgan (the "
                               "paper's D2), fairgan_dp (TabFairGAN's demographic-parity penalty instead of D2)."),
    seeds: str = typer.Option("0", "--seeds", help="Comma-separated seeds (model seed and split seed)."),
    epochs: Optional[str] = typer.Option(None, "--epochs", help="Epochs per model: one count, or per data set "
                                         "(adult=30,compas=100); default: the models' (300)."),
    n_boot: int = typer.Option(200, "--n-boot", min=0),
    competitors: bool = typer.Option(True, "--competitors/--no-competitors"),
    classifiers: str = typer.Option("logistic_regression,gradient_boosting,mlp", "--classifiers",
                                    help="Comma-separated: logistic_regression, gradient_boosting, mlp."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bars."),
    doc_dir: Optional[Path] = typer.Option(None, "--doc-dir", help="Also write tabular.md and tabular.json here "
                                           "(e.g. docs/benchmarks)."),
    package_json: Optional[Path] = typer.Option(None, "--package-json", help="The JSON written by "
                                                "benchmarks/tabular_ctgan_package.py, shown in tabular.md."),
) -> None:
    """Fit, sample and evaluate every (data set, model, seed), with the competitors; rerun to resume."""
    from fairlatent.tabular.benchmark import run_tabular_benchmark
    from fairlatent.utils.io import check_output_distinct
    from fairlatent.utils.lock import folder_lock

    def split(text: str, what: str) -> list[str]:
        items = [t.strip() for t in text.split(",") if t.strip()]
        if not items:
            raise FairlatentError(f"{what}: give at least one value")
        return items

    try:
        seed_list = [int(s) for s in split(seeds, "--seeds")]
    except ValueError:
        raise FairlatentError(f"--seeds {seeds!r}: comma-separated whole numbers") from None
    from fairlatent.utils.io import read_json

    epoch_spec = _epochs_option(epochs)
    package = read_json(package_json) if package_json is not None else None
    if package_json is not None and not isinstance(package, dict):
        raise FairlatentError(f"{package_json}: not a JSON object written by benchmarks/tabular_ctgan_package.py")
    check_output_distinct(out, {"--data-dir": data_dir})
    with folder_lock(out, what="tabular benchmark"):
        summary = run_tabular_benchmark(out, data_dir, datasets=split(datasets, "--datasets"),
                                        models=split(models, "--models"), seeds=seed_list, epochs=epoch_spec,
                                        n_boot=n_boot, competitors=competitors,
                                        classifiers=split(classifiers, "--classifiers"), progress=not quiet,
                                        log=None if quiet else typer.echo)
    typer.echo((out / "summary.md").read_text())
    if doc_dir is not None:
        from fairlatent.cli.app import invocation
        from fairlatent.tabular.benchmark_report import write_outputs

        command = invocation() or "fairlatent"
        for p in write_outputs(summary, doc_dir, command=command, config=read_json(out / "config.json"),
                               package=package).values():
            typer.echo(str(p))


def _epochs_option(text: str | None) -> int | dict[str, int] | None:
    """``--epochs``: ``30`` (every data set) or ``adult=30,compas=100`` (per data set)."""
    if text is None:
        return None
    try:
        if "=" not in text:
            n = int(text)
            if n < 1:
                raise ValueError
            return n
        out = {}
        for item in text.split(","):
            name, _, count = item.partition("=")
            out[name.strip()] = int(count)
            if out[name.strip()] < 1 or not name.strip():
                raise ValueError
        return out
    except ValueError:
        raise FairlatentError(f"--epochs {text!r}: a positive whole number, or data set=count pairs "
                              "separated by commas (adult=30,compas=100)") from None


# `fairlatent benchmark tabular` is the same command, beside the other benchmarks
benchmark_app.command("tabular", help="Alias of `fairlatent tabular benchmark`: every model and competitor on "
                                      "Adult, COMPAS and German credit, resumable.")(benchmark_command)
