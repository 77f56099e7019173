"""``fairlatent data toyfaces`` (build the built-in data set) and ``fairlatent data show`` (inspect any data set).

Thin wrappers over :func:`fairlatent.data.toyfaces.make_toyfaces` and :mod:`fairlatent.data.show`.
Real-data converters live in :mod:`fairlatent.cli.data_real_commands`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from fairlatent.cli.app import app, data_app  # noqa: F401
from fairlatent.cli.options import one_of

_console = Console(highlight=False, soft_wrap=True)


def _parse_shares(text: str, option: str) -> dict[str, float]:
    """Parse ``A=0.5,B=0.2`` into ``{"A": 0.5, "B": 0.2}`` with an error naming the bad item."""
    from fairlatent.errors import FairlatentError

    out: dict[str, float] = {}
    for item in filter(None, (t.strip() for t in text.split(","))):
        name, sep, value = item.partition("=")
        try:
            if not sep:
                raise ValueError
            out[name.strip()] = float(value)
        except ValueError:
            raise FairlatentError(f"{option}: {item!r} is not ATTRIBUTE=SHARE (e.g. Wearing_Hat=0.5)") from None
    return out


@data_app.command("toyfaces")
def toyfaces_command(
    out: Path = typer.Option(..., "--out", help="Output data set directory."),
    size: int = typer.Option(32, "--size", callback=one_of(32, 64), help="Image side in pixels: 32 (default) or 64."),
    n: int = typer.Option(20000, "--n", min=1, help="Images in train + val + test (test_balanced comes on top)."),
    target: str = typer.Option("Wearing_Hat", "--target", help="Target attribute."),
    protected: str = typer.Option("Eyeglasses", "--protected", help="Protected attribute."),
    skew: float = typer.Option(0.9, "--skew", min=0.0, max=1.0, help="Training P(protected = target), in [0, 1]."),
    val_skew: Optional[float] = typer.Option(None, "--val-skew", min=0.0, max=1.0, help="Validation skew (default: --skew)."),
    test_skew: Optional[float] = typer.Option(None, "--test-skew", min=0.0, max=1.0, help="Test skew (default: --skew)."),
    label_noise: float = typer.Option(0.0, "--label-noise", min=0.0, max=0.5, help="Fraction of labels flipped per attribute "
                                      "in train and val (images unchanged)."),
    n_test_balanced: Optional[int] = typer.Option(None, "--n-test-balanced", min=0, help="Size of the skew-0.5 test "
                                                  "split (default: size of test)."),
    faint: str = typer.Option("", "--faint", help="ATTR=SHARE[,ATTR=SHARE...]: that share of faces draw the "
                              "attribute faintly (ambiguous positives), e.g. Wearing_Hat=0.5."),
    seed: int = typer.Option(0, "--seed", min=0),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output directory."),
) -> None:
    """Render the ToyFaces cartoon-face data set with a controlled target/protected skew."""
    from fairlatent.data.toyfaces import make_toyfaces

    t0 = time.perf_counter()
    path = make_toyfaces(out, n=n, size=size, target=target, protected=protected, skew=skew, val_skew=val_skew,
                         test_skew=test_skew, label_noise=label_noise or None, n_test_balanced=n_test_balanced,
                         faint=_parse_shares(faint, "--faint"), seed=seed, overwrite=overwrite, progress=True)
    from fairlatent.data.dataset import load_dataset

    meta = load_dataset(path).meta
    splits = ", ".join(f"{k} {v}" for k, v in meta["splits"].items())
    _console.print(f"[bold green]wrote[/] {path}: {meta['n']} images {size}×{size} ({splits}); "
                   f"{len(meta['attributes'])} attributes, {len(meta['parts'])} part masks; "
                   f"{time.perf_counter() - t0:.1f} s")
    skews = ", ".join(f"{k} {v['skew_clean']:.3f}" for k, v in meta["skew"].items())
    _console.print(f"P({protected} = {target}): {skews}")


@data_app.command("show")
def show_command(
    dataset: Path = typer.Argument(..., help="Data set directory."),
    target: Optional[str] = typer.Option(None, "--target", help="Target attribute (default: from meta.json)."),
    protected: Optional[str] = typer.Option(None, "--protected", help="Protected attribute (default: from meta.json)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Sample grid PNG (default: ./<name>_grid.png in the "
                                       "current directory)."),
    split: str = typer.Option("train", "--split", help="Split the grid samples from."),
    per_cell: int = typer.Option(16, "--per-cell", min=1, help="Images per (target, protected) row of the grid."),
    seed: int = typer.Option(0, "--seed", min=0, help="Seed for picking the grid's images."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing --out file."),
) -> None:
    """Attribute rates per split, the target × protected table per split, and a sample grid PNG."""
    from fairlatent.data import show
    from fairlatent.data.dataset import load_dataset
    from fairlatent.utils.images import save_png
    from fairlatent.utils.io import check_output_distinct, check_output_file

    if out is not None:  # the default ./<name>_grid.png is regenerated by every call
        check_output_distinct(out, {"DATASET": dataset})
        check_output_file(out, suffixes=(".png",), overwrite=overwrite, what="a PNG image")
    ds = load_dataset(dataset)
    target, protected = show.default_target_protected(ds, target, protected)
    size = ds.images.shape[1:3]
    _console.print(f"[bold]{ds.path}[/]: {len(ds)} images {size[0]}×{size[1]}, source "
                   f"{ds.meta.get('source', '?')}, parts: {', '.join(ds.part_names) or 'none'}")

    rates = show.attribute_rates(ds)
    table = Table(title="Attribute rates per split")
    table.add_column("attribute")
    for s in rates.columns:
        table.add_column(s, justify="right")
    for name, row in rates.iterrows():
        if name == "n":
            table.add_row("[bold]n[/]", *(f"{int(v)}" for v in row))
        else:
            table.add_row(str(name), *(f"{v:.3f}" for v in row))
    _console.print(table)

    cont = Table(title=f"{target} (t) × {protected} (g) per split")
    cont.add_column("split", no_wrap=True)
    for col in ("n", "t=1,g=1", "t=1,g=0", "t=0,g=1", "t=0,g=0", "phi", "P(g = t)"):
        cont.add_column(col, justify="right")
    for c in show.contingency_tables(ds, target, protected):
        k = c.counts
        cont.add_row(c.split, str(c.n), str(k[1, 1]), str(k[1, 0]), str(k[0, 1]), str(k[0, 0]),
                     f"{c.phi:+.3f}", f"{c.p_agree:.3f}")
    _console.print(cont)

    grid, labels = show.sample_grid(ds, target, protected, split=split, per_cell=per_cell, seed=seed)
    path = out if out is not None else show.default_grid_path(ds.path)
    save_png(path, grid, scale=show.grid_scale(int(size[0])))
    _console.print(f"[bold green]wrote[/] sample grid {path} ({split}; rows top to bottom):")
    for i, label in enumerate(labels, 1):
        _console.print(f"  row {i}: {label}")
