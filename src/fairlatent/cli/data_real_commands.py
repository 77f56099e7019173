"""``fairlatent data celeba | fairface | folder | mnist``: convert real image data into the fairlatent data set format.

Thin wrappers over :func:`fairlatent.data.celeba.convert_celeba`, :func:`fairlatent.data.fairface.convert_fairface`
and :func:`fairlatent.data.folder.convert_folder`; each prints a short summary (rows per split, anything
reported missing or converted) when done.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console

from fairlatent.cli.app import data_app
from fairlatent.cli.options import below_one
from fairlatent.errors import FairlatentError

_console = Console(stderr=True, highlight=False, soft_wrap=True)


def _attribute_list(text: Optional[str]) -> Optional[list[str]]:
    return [a.strip() for a in text.split(",") if a.strip()] if text else None


def _summary(path: Path, meta: dict[str, Any], seconds: float) -> None:
    splits = ", ".join(f"{k} {v}" for k, v in meta.get("splits", {}).items())
    size = meta.get("image_size", ["?", "?"])
    _console.print(f"[bold green]wrote[/] {path}: {meta.get('n')} images {size[0]}×{size[1]} ({splits}); "
                   f"{len(meta.get('attributes', []))} attributes; {seconds:.1f} s")
    rep = meta.get("reported", {})
    for key, label in (("labels_without_image", "label rows without an image"),
                       ("images_without_labels", "images without a label row"),
                       ("skipped_bad_images", "unreadable images skipped (--skip-bad)")):
        block = rep.get(key, {})
        if block.get("count"):
            ex = ", ".join(block.get("examples", [])[:3])
            _console.print(f"[yellow]reported:[/] {block['count']} {label} (e.g. {ex}); left out")
    for note in meta.get("notes", []):
        _console.print(f"[yellow]note:[/] {note}")


def _fractions(text: str) -> tuple[float, ...]:
    from fairlatent.data.splits import parse_fractions

    return parse_fractions(text)


@data_app.command("celeba")
def celeba_command(
    out: Path = typer.Option(..., "--out", help="Output data set directory."),
    root: Optional[Path] = typer.Option(None, "--root", help="Directory holding the CelebA files under their usual "
                                        "names (img_align_celeba/ or a zip, list_attr_celeba*.txt, "
                                        "list_eval_partition.txt[.gz], identity_CelebA.txt[.gz])."),
    images: Optional[Path] = typer.Option(None, "--images", help="img_align_celeba folder or zip (overrides --root)."),
    attributes_file: Optional[Path] = typer.Option(None, "--attr-file", help="list_attr_celeba.txt[.gz]."),
    partition_file: Optional[Path] = typer.Option(None, "--partition-file", help="list_eval_partition.txt[.gz]."),
    identity_file: Optional[Path] = typer.Option(None, "--identity-file", help="identity_CelebA.txt[.gz]."),
    size: int = typer.Option(64, "--size", min=1, help="Output side in pixels (e.g. 32, 64, 128)."),
    crop: bool = typer.Option(True, "--crop/--no-crop", help="Paper's 128×128 face crop (scaled to the input "
                              "resolution) before resizing; --no-crop squashes the whole frame."),
    split: str = typer.Option("identity", "--split", help="identity (fresh seeded split by person) or official."),
    fractions: str = typer.Option("0.7,0.15,0.15", "--fractions", help="train,val,test image fractions (identity split)."),
    seed: int = typer.Option(0, "--seed", min=0),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="Only the first N labelled images (by name)."),
    attributes: Optional[str] = typer.Option(None, "--attributes", help="Comma-separated attributes to keep (default all 40)."),
    skip_bad: bool = typer.Option(False, "--skip-bad", help="Skip and report undecodable images instead of stopping."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output directory."),
) -> None:
    """Convert CelebA (official layout) into a fairlatent data set."""
    from fairlatent.data.celeba import convert_celeba

    if root is None and images is None:
        raise FairlatentError("give --root (a CelebA directory) or --images and --attr-file")
    t0 = time.perf_counter()
    path, meta = convert_celeba(out, root, images=images, attributes_file=attributes_file,
                                partition_file=partition_file, identity_file=identity_file, size=size, crop=crop,
                                split=split, fractions=_fractions(fractions), seed=seed, limit=limit,
                                attributes=_attribute_list(attributes), skip_bad=skip_bad, overwrite=overwrite)
    _summary(path, meta, time.perf_counter() - t0)


@data_app.command("fairface")
def fairface_command(
    out: Path = typer.Option(..., "--out", help="Output data set directory."),
    root: Optional[Path] = typer.Option(None, "--root", help="Directory with the FairFace zip/folder and label CSV."),
    images: Optional[Path] = typer.Option(None, "--images", help="Image folder or zip (overrides --root)."),
    labels: Optional[Path] = typer.Option(None, "--labels", help="Label CSV (overrides --root)."),
    size: int = typer.Option(64, "--size", min=1),
    val_fraction: float = typer.Option(0.15, "--val-fraction", callback=below_one, help="Share of FairFace train that becomes val."),
    seed: int = typer.Option(0, "--seed", min=0),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="Seeded subset of N images, stratified by split, gender, race."),
    attributes: Optional[str] = typer.Option(None, "--attributes", help="Comma-separated attributes to keep."),
    skip_bad: bool = typer.Option(False, "--skip-bad", help="Skip and report undecodable images instead of stopping."),
    overwrite: bool = typer.Option(False, "--overwrite"),
) -> None:
    """Convert FairFace into a fairlatent data set (Male, Race_*, Age_* attributes)."""
    from fairlatent.data.fairface import convert_fairface

    t0 = time.perf_counter()
    path, meta = convert_fairface(out, root, images=images, labels=labels, size=size, val_fraction=val_fraction,
                                  seed=seed, limit=limit, attributes=_attribute_list(attributes), skip_bad=skip_bad,
                                  overwrite=overwrite)
    _summary(path, meta, time.perf_counter() - t0)


@data_app.command("folder")
def folder_command(
    images: Path = typer.Option(..., "--images", help="Folder (or zip) of images; CSV ids are paths relative to it."),
    labels: Path = typer.Option(..., "--labels", help="CSV with an id column and binary attribute columns."),
    out: Path = typer.Option(..., "--out", help="Output data set directory."),
    size: int = typer.Option(64, "--size", min=1, help="Images are centre-cropped to a square and resized to this side."),
    id_column: Optional[str] = typer.Option(None, "--id-column", help="Default: 'file', else 'image_id'."),
    split_column: Optional[str] = typer.Option(None, "--split-column", help="Default: 'split' when present."),
    group_column: Optional[str] = typer.Option(None, "--group-column", help="Default: 'group_id' or 'identity' when present."),
    attributes: Optional[str] = typer.Option(None, "--attributes", help="Comma-separated attribute columns (default: all others)."),
    fractions: str = typer.Option("0.7,0.15,0.15", "--fractions", help="train,val,test fractions when there is no split column."),
    seed: int = typer.Option(0, "--seed", min=0),
    skip_bad: bool = typer.Option(False, "--skip-bad", help="Skip and report undecodable images instead of stopping."),
    overwrite: bool = typer.Option(False, "--overwrite"),
) -> None:
    """Convert a folder of your own images plus a label CSV into a fairlatent data set."""
    from fairlatent.data.folder import convert_folder

    t0 = time.perf_counter()
    path, meta = convert_folder(images, labels, out, size=size, id_column=id_column, split_column=split_column,
                                group_column=group_column, attributes=_attribute_list(attributes),
                                fractions=_fractions(fractions), seed=seed, skip_bad=skip_bad, overwrite=overwrite)
    _summary(path, meta, time.perf_counter() - t0)


@data_app.command("mnist")
def mnist_command(
    root: Path = typer.Option(..., "--root", help="Folder with MNIST's IDX files (t10k-images-idx3-ubyte[.gz], "
                              "t10k-labels-idx1-ubyte[.gz]; train-* for --part train)."),
    out: Path = typer.Option(..., "--out", help="Output data set directory."),
    part: str = typer.Option("test", "--part", help="test (the 10,000 t10k digits) or train (the 60,000)."),
    fractions: str = typer.Option("0.8,0.1,0.1", "--fractions", help="train,val,test fractions (seeded random split)."),
    seed: int = typer.Option(0, "--seed", min=0),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="Only the first N digits."),
    overwrite: bool = typer.Option(False, "--overwrite"),
) -> None:
    """Convert MNIST into a fairlatent data set (32 px RGB, attributes digit_0 … digit_9)."""
    from fairlatent.data.mnist import convert_mnist

    t0 = time.perf_counter()
    path, meta = convert_mnist(out, root, part=part, fractions=_fractions(fractions), seed=seed, limit=limit,
                               overwrite=overwrite)
    _summary(path, meta, time.perf_counter() - t0)
