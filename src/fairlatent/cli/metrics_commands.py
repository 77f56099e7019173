"""``fairlatent metrics REAL FAKE`` and ``fairlatent metrics truncation-sweep``.

``metrics`` is a group (it has ``truncation-sweep``) but must also run as a command with two positional
arguments. A click group parses its own arguments before the subcommand name, so optional positionals on
the group callback would swallow ``truncation-sweep``. Instead the group class below rewrites
``metrics REAL FAKE ...`` to ``metrics compute REAL FAKE ...`` whenever the first argument is not a
subcommand name (``fairlatent metrics compute ...`` works too).
"""

from __future__ import annotations

import contextlib
import math
import warnings
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from typer.core import TyperGroup

from fairlatent.cli.app import metrics_app


class DefaultComputeGroup(TyperGroup):
    """A typer group that runs ``compute`` when the first argument is not one of its subcommands."""

    default_command = "compute"

    def parse_args(self, ctx, args):
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = [self.default_command, *args]
        return super().parse_args(ctx, args)


metrics_app.info.cls = DefaultComputeGroup

METRIC_ROWS = [
    ("fid", "FID", "lower is better"),
    ("kid_mean", "KID (mean)", "lower is better; ± kid_std"),
    ("kid_std", "KID (std)", ""),
    ("isc_mean", "Inception Score", "higher is better"),
    ("isc_std", "IS (std)", ""),
    ("precision", "precision", "fidelity: share of fakes inside real k-NN balls"),
    ("recall", "recall", "diversity: share of reals inside fake k-NN balls"),
    ("density", "density", "fidelity, robust to real outliers (≈1 when distributions match)"),
    ("coverage", "coverage", "diversity, robust to fake outliers"),
]


@contextlib.contextmanager
def notes_as_lines(console: Console):
    """Print the warnings raised inside the block as one ``note: …`` line each, after it.

    Why: Python's default display of a warning is ``path:line: UserWarning: message`` followed by the
    source line, which reads like a crash to a user. A metric's caveats (few samples, resized images, an
    undefined value) are notes about a result that still stands. Duplicates are printed once.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            yield
        finally:
            seen: set[str] = set()
            for w in caught:
                text = " ".join(str(w.message).split())
                if text not in seen:
                    seen.add(text)
                    console.print(escape(f"note: {text}"), style="yellow")


def _results_table(result: dict, title: str) -> Table:
    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_column("note", style="dim")
    for key, label, note in METRIC_ROWS:
        if key in result:
            value = result[key]
            table.add_row(label, f"{value:.6g}" if value is not None and math.isfinite(value) else "n/a", note)
    return table


@metrics_app.command("compute")
def compute(
    real: str = typer.Argument(..., help="Real images: data set directory, .npy images or features."),
    fake: str = typer.Argument(..., help="Fake images: data set directory, .npy, or a generator (run dir / TorchScript)."),
    fid: bool = typer.Option(False, "--fid", help="Fréchet distance."),
    kid: bool = typer.Option(False, "--kid", help="Kernel (Inception) distance."),
    isc: bool = typer.Option(False, "--isc", help="Inception Score of FAKE (needs --features inception)."),
    prdc: bool = typer.Option(False, "--prdc", help="Precision/recall and density/coverage."),
    k: int = typer.Option(5, "--k", min=1, help="k for density/coverage."),
    k_pr: int = typer.Option(3, "--k-pr", min=1, help="k for precision/recall."),
    features: str = typer.Option("domain", "--features", help="domain | inception | pixels"),
    classifier: Optional[Path] = typer.Option(None, "--classifier", help="Classifier directory (domain features)."),
    inception_weights: Optional[Path] = typer.Option(None, "--inception-weights", help="Local Inception-v3 weights."),
    split: Optional[str] = typer.Option(None, "--split", help="Use only this split of data set inputs."),
    n: Optional[int] = typer.Option(None, "--n", min=1, help="Samples to draw when FAKE is a generator."),
    seed: int = typer.Option(0, "--seed", min=0),
    batch_size: int = typer.Option(64, "--batch-size", min=1),
    cache_dir: Optional[Path] = typer.Option(Path(".fairlatent_cache/features"), "--cache-dir",
                                             help="Feature cache folder."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Do not read or write the feature cache."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write the results as JSON."),
    device: Optional[str] = typer.Option(None, "--device"),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing --json file."),
) -> None:
    """FID / KID / IS / precision-recall / density-coverage of FAKE against REAL (all but IS when none chosen)."""
    from fairlatent.metrics.generative import DatasetSelection, compute_generative_metrics
    from fairlatent.utils.io import check_output_distinct, check_output_file, write_json
    from fairlatent.utils.json_safe import nulls_with_reasons

    if json_out is not None:  # before the (slow) features, not after
        check_output_distinct(json_out, {"REAL": real, "FAKE": fake, "--classifier": classifier}, option="--json")
        check_output_file(json_out, suffixes=(".json",), overwrite=overwrite, option="--json", what="JSON")
    if not (fid or kid or isc or prdc):
        fid = kid = prdc = True

    def source(arg: str):
        p = Path(arg)
        if split is not None and p.is_dir() and (p / "images.npy").is_file():
            return DatasetSelection(p, split=split)
        return arg

    console = Console()
    with notes_as_lines(console):
        result = compute_generative_metrics(
            source(real), source(fake), fid=fid, kid=kid, isc=isc, prdc=prdc, features=features, k_pr=k_pr,
            k_dc=k, n_fake=n, seed=seed, batch_size=batch_size, cache_dir=None if no_cache else cache_dir,
            inception_weights=inception_weights, classifier=classifier, device=device, progress=True,
        )
    result.update({"real": str(real), "fake": str(fake)})
    console.print(_results_table(result, escape(f"{fake} vs {real} — features {result['features']}, "
                                                f"{result['n_real']} real / {result['n_fake']} fake")))
    if json_out is not None:
        clean, nulls = nulls_with_reasons(result, "metric undefined for these inputs")
        write_json(json_out, {**clean, **({"nulls": nulls} if nulls else {})})  # strict JSON: null, not NaN
        console.print(f"wrote {json_out}")


@metrics_app.command("truncation-sweep")
def truncation_sweep_command(
    gan: Path = typer.Option(..., "--gan", help="Generator: fairlatent GAN run directory or TorchScript file."),
    real: Path = typer.Option(..., "--real", help="Real data set directory."),
    taus: str = typer.Option("0.5,1.0,1.5,2.0,none", "--taus", help="Comma-separated τ values; 'none' = untruncated."),
    n: int = typer.Option(5000, "--n", min=2, help="Samples per τ."),
    features: str = typer.Option("domain", "--features"),
    classifier: Optional[Path] = typer.Option(None, "--classifier"),
    inception_weights: Optional[Path] = typer.Option(None, "--inception-weights"),
    split: Optional[str] = typer.Option(None, "--split"),
    seed: int = typer.Option(0, "--seed", min=0),
    out: Path = typer.Option(Path("truncation_sweep"), "--out", help="Folder for sweep.json and sweep.png."),
    batch_size: int = typer.Option(64, "--batch-size", min=1),
    cache_dir: Optional[Path] = typer.Option(Path(".fairlatent_cache/features"), "--cache-dir"),
    device: Optional[str] = typer.Option(None, "--device"),
) -> None:
    """FID, precision, recall, density and coverage against truncation τ: the fidelity/diversity trade-off."""
    from fairlatent.metrics.generative import DatasetSelection
    from fairlatent.metrics.generative.truncation import parse_truncations, truncation_sweep
    from fairlatent.models.generator import load_generator
    from fairlatent.report.truncation import plot_truncation_sweep, truncation_table
    from fairlatent.utils.io import write_json
    from fairlatent.utils.json_safe import nulls_with_reasons

    tau_list = parse_truncations(taus)
    generator = load_generator(gan, device=device)
    real_src = DatasetSelection(real, split=split) if split else real
    with notes_as_lines(Console()):
        rows = truncation_sweep(generator, real_src, taus=tau_list, n=n, features=features, classifier=classifier,
                                inception_weights=inception_weights, seed=seed, batch_size=batch_size,
                                cache_dir=cache_dir, device=device)
    out.mkdir(parents=True, exist_ok=True)
    clean, nulls = nulls_with_reasons({"gan": str(gan), "real": str(real), "seed": seed, "n": n, "rows": rows},
                                      "metric undefined at this truncation")
    write_json(out / "sweep.json", {**clean, **({"nulls": nulls} if nulls else {})})  # strict JSON
    plot_truncation_sweep(rows, out / "sweep.png")
    console = Console()
    console.print(truncation_table(rows, f"truncation sweep — {gan} vs {real} ({rows[0]['features'] if rows else ''})"))
    console.print(f"wrote {out / 'sweep.json'} and {out / 'sweep.png'}")
