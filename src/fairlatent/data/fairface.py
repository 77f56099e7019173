"""FairFace (gender, race, age labels) → a fairlatent data set.

Inputs: a label CSV with columns ``file, age, gender, race`` and optionally ``split`` (the shared subset's
``fairface_subset_labels.csv``), or the official ``fairface_label_train.csv`` / ``fairface_label_val.csv``
pair (split taken from the file: train/val); images in a folder or zip addressed by ``file``
(``train/1.jpg``; a zip's single top folder such as ``fairface_64/`` is ignored).

Root search (``root``): labels ``*labels*.csv`` holding a ``file`` column (``fairface_subset_labels.csv``
first), else ``fairface_label_train.csv`` + ``fairface_label_val.csv``; images: the only ``*.zip`` (or one
named ``fairface*.zip``), else a directory holding ``train/``.

Attributes written (all 0/1):

- ``Male``: gender == Male (any gender other than Male/Female is an error naming the row);
- ``Race_<name>`` one-vs-rest for the 7 FairFace races (spaces → underscores): ``Race_White``,
  ``Race_Black``, ``Race_Latino_Hispanic``, ``Race_East_Asian``, ``Race_Southeast_Asian``, ``Race_Indian``,
  ``Race_Middle_Eastern``;
- age, from the lower edge of FairFace's age bin (``0-2``, ``3-9``, ``10-19``, …, ``60-69``,
  ``more than 70``): ``Age_under_20`` (bins up to 10-19), ``Age_under_30`` (up to 20-29),
  ``Age_50_plus`` (50-59 and older).

Splits: FairFace ``train`` → our train/val (seeded random, ``val_fraction`` of it to val); FairFace ``val``
→ our test. ``limit`` keeps a seeded subset: split shares proportional to the FairFace splits, each stratified by
(gender, race). Images are expected
to share one size (an image of another size is an error naming it) and are resized to ``size`` with Pillow's
Lanczos filter unless already that size.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from fairlatent.data.dataset import check_dataset_out, write_dataset
from fairlatent.data.folder import read_label_csv, report_unmatched, select_attributes
from fairlatent.data.imageio import (
    RESAMPLE_FILTER_NAME,
    crop_resize,
    decode_images,
    decode_rgb,
    examples,
    mode_conversion_note,
    open_image_source,
    refuse_existing,
)
from fairlatent.data.splits import random_split, stratified_subset
from fairlatent.errors import FairlatentError
from fairlatent.utils.io import read_json

RACES = ("White", "Black", "Latino_Hispanic", "East Asian", "Southeast Asian", "Indian", "Middle Eastern")
AGE_BINS = {"Age_under_20": (None, 20), "Age_under_30": (None, 30), "Age_50_plus": (50, None)}
_AGE_RE = re.compile(r"^\s*(\d+)\s*-\s*(\d+)\s*$|^\s*more than\s+(\d+)\s*$", re.IGNORECASE)


def race_column(race: str) -> str:
    return "Race_" + race.replace(" ", "_")


def age_lower_edge(value: str) -> int | None:
    """Lower edge of a FairFace age bin (``"20-29"`` → 20, ``"more than 70"`` → 70); None if unparseable."""
    m = _AGE_RE.match(value)
    if not m:
        return None
    return int(m.group(1) if m.group(1) is not None else m.group(3))


def find_fairface_files(root: str | os.PathLike) -> tuple[Path, list[Path]]:
    """Return ``(images folder-or-zip, [label csv, ...])`` found in ``root`` (see the module docstring)."""
    root = Path(root)
    if not root.is_dir():
        raise FairlatentError(f"{root}: FairFace root is not a directory")
    entries = sorted(root.iterdir())
    csvs = [p for p in entries if p.is_file() and p.suffix == ".csv"]
    labels: list[Path] = [p for p in csvs if "labels" in p.name and not p.name.startswith("source_")]
    if not labels:
        pair = [root / "fairface_label_train.csv", root / "fairface_label_val.csv"]
        labels = [p for p in pair if p.is_file()]
    if not labels:
        raise FairlatentError(f"{root}: no FairFace label CSV found (looked for *labels*.csv or "
                              "fairface_label_train.csv / fairface_label_val.csv)")
    zips = [p for p in entries if p.is_file() and p.suffix.lower() == ".zip"]
    named = [z for z in zips if z.name.lower().startswith("fairface")]
    if named or len(zips) == 1:
        return (named or zips)[0], labels[:1] if "labels" in labels[0].name else labels
    dirs = [p for p in entries if p.is_dir() and (p / "train").is_dir()]
    if (root / "train").is_dir():
        return root, labels
    if dirs:
        return dirs[0], labels
    raise FairlatentError(f"{root}: no FairFace images found (looked for fairface*.zip, a single zip, "
                          "or a folder holding train/)")


def _read_labels(files: Sequence[Path]) -> tuple[pd.DataFrame, str]:
    frames = []
    for f in files:
        df = read_label_csv(f)
        need = [c for c in ("file", "age", "gender", "race") if c not in df.columns]
        if need:
            raise FairlatentError(f"{f}: missing column(s) {', '.join(need)}; columns are: {', '.join(df.columns)}")
        df = df.assign(_file=str(f), _row=np.arange(len(df)) + 2)
        if "split" not in df.columns:
            # Official files: the split is the top folder of `file` (train/1.jpg).
            df["split"] = df["file"].str.split("/").str[0]
        frames.append(df)
    return pd.concat(frames, ignore_index=True), ", ".join(str(f) for f in files)


def read_fairface(
    root: str | os.PathLike | None = None,
    *,
    images: str | os.PathLike | None = None,
    labels: str | os.PathLike | Sequence[str | os.PathLike] | None = None,
    size: int = 64,
    val_fraction: float = 0.15,
    seed: int = 0,
    limit: int | None = None,
    attributes: Sequence[str] | None = None,
    skip_bad: bool = False,
    progress: bool = True,
) -> tuple[np.ndarray, pd.DataFrame, dict[str, Any]]:
    """Read FairFace; return ``(images, table, meta)`` for :func:`write_dataset` (see the module docstring)."""
    if not 0 < val_fraction < 1:
        raise FairlatentError(f"val fraction must be between 0 and 1, got {val_fraction}")
    if root is not None:
        found_images, found_labels = find_fairface_files(root)
    else:
        found_images, found_labels = None, []
    image_path = Path(images) if images else found_images
    if labels is not None:
        label_files = [Path(labels)] if isinstance(labels, (str, os.PathLike)) else [Path(p) for p in labels]
    else:
        label_files = found_labels
    if image_path is None or not label_files:
        raise FairlatentError("FairFace: give a root directory, or both the images (folder/zip) and label CSV(s)")
    df, where = _read_labels(label_files)

    def fault(i: int, col: str, msg: str) -> FairlatentError:
        return FairlatentError(f"{df['_file'].iat[i]}: row {df['_row'].iat[i]}, column {col!r}: {msg}")

    files = df["file"].str.strip()
    dup = files.duplicated()
    if dup.any():
        i = int(np.flatnonzero(dup.to_numpy())[0])
        raise fault(i, "file", f"duplicate file {files.iat[i]!r}")
    split_src = df["split"].str.strip()
    bad = ~split_src.isin(["train", "val"])
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise fault(i, "split", f"{split_src.iat[i]!r} is not 'train' or 'val'")
    gender = df["gender"].str.strip()
    bad = ~gender.isin(["Male", "Female"])
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise fault(i, "gender", f"{gender.iat[i]!r} is not 'Male' or 'Female'")
    race = df["race"].str.strip()
    bad = ~race.isin(RACES)
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise fault(i, "race", f"{race.iat[i]!r} is not one of {', '.join(RACES)}")
    age_lo = df["age"].map(age_lower_edge)
    bad = age_lo.isna()
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise fault(i, "age", f"{df['age'].iat[i]!r} is not an age bin like '20-29' or 'more than 70'")
    age_lo = age_lo.to_numpy(dtype=np.int64)

    attrs = pd.DataFrame({"Male": (gender == "Male").to_numpy().astype(np.int8)})
    for r in RACES:
        attrs[race_column(r)] = (race == r).to_numpy().astype(np.int8)
    for name, (lo, hi) in AGE_BINS.items():
        ok = np.ones(len(df), dtype=bool)
        if lo is not None:
            ok &= age_lo >= lo
        if hi is not None:
            ok &= age_lo < hi
        attrs[name] = ok.astype(np.int8)
    keep_attrs = select_attributes(list(attrs.columns), attributes, where)
    attrs = attrs[keep_attrs]

    source = open_image_source(image_path)
    present = np.array([f in source for f in files], dtype=bool)
    labels_only = files[~present].tolist()
    file_set = set(files)
    images_only = [n for n in source.names() if n not in file_set]
    rows = np.flatnonzero(present)
    if rows.size == 0:
        raise FairlatentError(f"{where}: none of the {len(files)} files is in {image_path} "
                              f"(labels e.g. {examples(files, 3)}; images e.g. {examples(source.names(), 3)})")
    if limit is not None:
        # Two levels, so a small limit cannot starve a split: FairFace splits get shares of `limit` in
        # proportion to their sizes, then each share is stratified by (gender, race) within its split.
        src_rows = split_src.to_numpy()[rows]
        shares = stratified_subset(src_rows, limit, seed, stream="fairface-limit-split")
        picked = []
        for s in ("train", "val"):
            quota = int((src_rows[shares] == s).sum())
            in_split = rows[src_rows == s]
            if quota:
                strata = gender.to_numpy()[in_split] + "|" + race.to_numpy()[in_split]
                picked.append(in_split[stratified_subset(strata, quota, seed, stream=f"fairface-limit-{s}")])
        rows = np.sort(np.concatenate(picked))

    names = files.to_numpy()[rows].tolist()
    first = names[0]
    w0, h0 = decode_rgb(source.read(first), source.display_name(first))[0].size

    def transform(img, name):
        if img.size != (w0, h0):
            raise FairlatentError(f"{source.display_name(name)}: image is {img.size[0]}×{img.size[1]} but the "
                                  f"FairFace images here are {w0}×{h0}")
        return crop_resize(img, None, size)

    res = decode_images(source, names, transform, size, skip_bad=skip_bad, progress=progress,
                        description="decoding FairFace")
    rows = rows[res.kept]
    src = split_src.to_numpy()[rows]
    split = np.where(src == "val", "test", "train").astype(object)
    train_rows = np.flatnonzero(src == "train")
    if train_rows.size < 2:
        raise FairlatentError(f"{where}: need at least 2 FairFace train images to make train and val splits, "
                              f"got {train_rows.size}")
    split[train_rows] = random_split(train_rows.size, (1 - val_fraction, val_fraction), seed,
                                     names=("train", "val"), stream="fairface-val")
    for s in ("train", "val", "test"):
        if not (split == s).any():
            raise FairlatentError(f"{where}: split {s!r} is empty" + (
                " (no FairFace 'val' rows, which become our test split)" if s == "test" else ""))
    table = pd.concat([pd.DataFrame({"id": files.to_numpy()[rows], "split": split}),
                       attrs.iloc[rows].reset_index(drop=True)], axis=1)
    meta = {
        "source": "fairface",
        "files": {"images": str(image_path), "labels": [str(f) for f in label_files]},
        "seed": seed,
        "limit": limit,
        "val_fraction": val_fraction,
        "split_method": "FairFace train → train/val (seeded random), FairFace val → test",
        "age_bins": {k: {"lower_edge_at_least": lo, "lower_edge_below": hi} for k, (lo, hi) in AGE_BINS.items()},
        "preprocessing": {"input_size": [w0, h0], "size": size, "crop": False,
                          "resize_filter": RESAMPLE_FILTER_NAME, "resampled": (w0, h0) != (size, size)},
        "reported": report_unmatched(labels_only, images_only, res),
        "notes": [n for n in [mode_conversion_note(res.converted_modes)] if n],
    }
    return res.images, table, meta


def convert_fairface(out: str | os.PathLike, root: str | os.PathLike | None = None, *, overwrite: bool = False,
                     **kwargs: Any) -> tuple[Path, dict[str, Any]]:
    """:func:`read_fairface` then :func:`~fairlatent.data.dataset.write_dataset`; returns ``(path, meta written)``."""
    check_dataset_out(out, overwrite, {"--root": root, "--images": kwargs.get("images"),
                                       "--labels": kwargs.get("labels")})
    refuse_existing(out, overwrite)
    imgs, table, meta = read_fairface(root, **kwargs)
    path = write_dataset(out, imgs, table, meta, overwrite=overwrite)
    return path, read_json(path / "meta.json")
