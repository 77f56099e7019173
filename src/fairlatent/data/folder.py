"""A user's own images: a folder (or zip) plus a CSV of binary attributes → a fairlatent data set.

CSV layout (one row per image)::

    file,split,group_id,Smiling,Male         # header; column names are configurable
    a/001.jpg,train,17,1,0                   # file: path relative to the image folder / zip
    ...

- id column: ``--id-column``; by default ``file`` or else ``image_id``.
- split column (optional): values ``train``/``val``/``test``/``test_balanced``. Without one, rows are split
  at random (seeded), or by group when there is a group column, with ``fractions``.
- group column (optional; default ``group_id`` or ``identity`` when present): kept as ``group_id``.
- every other column (or those named by ``attributes``) must be binary: values in {0, 1} or in {-1, 1}
  (CelebA style, mapped -1 → 0). A column holding both -1 and 0 is ambiguous and is an error.

Images are cropped to their largest centred square and resized to ``size`` (Pillow Lanczos); non-RGB
images are converted and counted. Label rows whose image is missing and images without a label row are
*reported* (count + examples, on the terminal and in ``meta.json``) and left out, not silently dropped.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from fairlatent.data.dataset import SPLITS, check_dataset_out, refuse_duplicate_columns, write_dataset
from fairlatent.data.imageio import (
    RESAMPLE_FILTER_NAME,
    center_square_box,
    crop_resize,
    decode_images,
    examples,
    mode_conversion_note,
    open_image_source,
    refuse_existing,
)
from fairlatent.data.splits import SPLIT_NAMES, check_nonempty, identity_split, parse_fractions, random_split
from fairlatent.errors import FairlatentError
from fairlatent.utils.io import read_json

DEFAULT_FRACTIONS = (0.7, 0.15, 0.15)


def _plain(value):
    """A numpy scalar as the Python value, so messages read ``'2'`` rather than ``np.str_('2')``."""
    return value.item() if isinstance(value, np.generic) else value


def binarize_column(values: Sequence | np.ndarray, column: str, where: str, *, first_row: int = 2) -> np.ndarray:
    """Map a label column to int8 0/1, naming the row and value at fault when it is not binary.

    Accepted: values in {0, 1} (kept) or in {-1, 1} (-1 → 0). Both -1 and 0 present is ambiguous (is 0
    "negative" or "unknown"?) and rejected. ``first_row`` is the file row of element 0, for messages
    (2 for a CSV with one header line).
    """
    arr = pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(dtype=float)
    bad = ~np.isin(arr, (-1.0, 0.0, 1.0))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise FairlatentError(
            f"{where}: row {i + first_row}, column {column!r}: value {_plain(np.asarray(values)[i])!r} is not a binary "
            "label (expected 0/1 or -1/1)"
        )
    has_neg, has_zero = bool((arr == -1).any()), bool((arr == 0).any())
    if has_neg and has_zero:
        i, j = int(np.flatnonzero(arr == -1)[0]), int(np.flatnonzero(arr == 0)[0])
        raise FairlatentError(
            f"{where}: column {column!r} mixes -1 (row {i + first_row}) and 0 (row {j + first_row}); "
            "a binary column must use either 0/1 or -1/1"
        )
    return (arr > 0).astype(np.int8)


def select_attributes(available: Sequence[str], wanted: Sequence[str] | None, where: str) -> list[str]:
    """``wanted`` (all of ``available`` when None), raising for names that do not exist and listing those that do."""
    if wanted is None:
        return list(available)
    wanted = [w.strip() for w in wanted if w.strip()]
    missing = [w for w in wanted if w not in available]
    if missing:
        raise FairlatentError(
            f"{where}: no attribute column {', '.join(repr(m) for m in missing)}; "
            f"columns are: {', '.join(available)}"
        )
    if not wanted:
        raise FairlatentError(f"{where}: no attributes selected")
    return list(dict.fromkeys(wanted))


def report_unmatched(labels_only: Sequence[str], images_only: Sequence[str], decoded: Any = None) -> dict[str, Any]:
    """The ``meta["reported"]`` block shared by every reader: label rows without images and images without
    labels (count + examples), and, given the decode result, the bad images skipped and the modes converted."""
    out: dict[str, Any] = {
        "labels_without_image": {"count": len(labels_only), "examples": examples(labels_only)},
        "images_without_labels": {"count": len(images_only), "examples": examples(images_only)},
    }
    if decoded is not None:
        out["skipped_bad_images"] = {"count": len(decoded.skipped),
                                     "examples": [f"{n}: {r}" for n, r in decoded.skipped[:5]]}
        out["converted_to_rgb"] = dict(decoded.converted_modes)
    return out


def read_label_csv(path: str | os.PathLike) -> pd.DataFrame:
    """Read a CSV as strings (so ids keep leading zeros), naming the file on failure."""
    path = Path(path)
    if not path.is_file():
        raise FairlatentError(f"{path}: label file not found")
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except Exception as exc:  # pandas raises several parser error types
        raise FairlatentError(f"{path}: cannot parse as CSV ({exc})") from None
    refuse_duplicate_columns(path)
    return table



def read_folder(
    images: str | os.PathLike,
    labels: str | os.PathLike,
    *,
    size: int = 64,
    id_column: str | None = None,
    split_column: str | None = None,
    group_column: str | None = None,
    attributes: Sequence[str] | None = None,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    seed: int = 0,
    skip_bad: bool = False,
    progress: bool = True,
) -> tuple[np.ndarray, pd.DataFrame, dict[str, Any]]:
    """Read a folder/zip of images and a label CSV; return ``(images, table, meta)`` for :func:`write_dataset`."""
    labels = Path(labels)
    df = read_label_csv(labels)
    where = str(labels)
    cols = list(df.columns)
    if id_column is None:
        id_column = next((c for c in ("file", "image_id") if c in cols), None)
        if id_column is None:
            raise FairlatentError(f"{where}: no 'file' or 'image_id' column; name the id column with --id-column "
                                  f"(columns are: {', '.join(cols)})")
    for opt, col in (("id", id_column), ("split", split_column), ("group", group_column)):
        if col is not None and col not in cols:
            raise FairlatentError(f"{where}: no {opt} column {col!r}; columns are: {', '.join(cols)}")
    if split_column is None and "split" in cols:
        split_column = "split"
    if group_column is None:
        group_column = next((c for c in ("group_id", "identity") if c in cols), None)
    reserved = {id_column, split_column, group_column} - {None}
    attr_names = select_attributes([c for c in cols if c not in reserved], attributes, where)

    ids = df[id_column].str.strip()
    empty = np.flatnonzero((ids == "").to_numpy())
    if empty.size:
        raise FairlatentError(f"{where}: row {int(empty[0]) + 2}, column {id_column!r}: empty id")
    dup = ids[ids.duplicated()]
    if len(dup):
        first = int(np.flatnonzero((ids == dup.iloc[0]).to_numpy())[0])
        raise FairlatentError(
            f"{where}: duplicate id {dup.iloc[0]!r} in column {id_column!r} (rows {first + 2} and {int(dup.index[0]) + 2})"
        )
    table = pd.DataFrame({"id": ids.to_numpy()})
    for a in attr_names:
        table[a] = binarize_column(df[a].to_numpy(), a, where)
    if split_column is not None:
        split = df[split_column].str.strip()
        bad = ~split.isin(SPLITS)
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise FairlatentError(f"{where}: row {i + 2}, column {split_column!r}: split {split.iloc[i]!r} is not one "
                                  f"of {', '.join(SPLITS)}")
        table["split"] = split.to_numpy()
    if group_column is not None:
        table["group_id"] = df[group_column].str.strip().to_numpy()

    source = open_image_source(images)
    present = np.array([i in source for i in table["id"]], dtype=bool)
    labels_only = table["id"][~present].tolist()
    labelled = set(table["id"])
    images_only = [n for n in source.names() if n not in labelled]
    table = table[present].reset_index(drop=True)
    if len(table) == 0:
        raise FairlatentError(f"{where}: none of the {len(present)} ids names an image in {images} "
                              f"(e.g. {examples(labels_only, 3)}; images there: {examples(source.names(), 3)})")

    def transform(img, name):
        return crop_resize(img, center_square_box(*img.size), size)

    res = decode_images(source, table["id"].tolist(), transform, size, skip_bad=skip_bad, progress=progress,
                        description="decoding images")
    table = table.iloc[res.kept].reset_index(drop=True)

    fractions = parse_fractions(fractions)
    if "split" not in table.columns:
        if "group_id" in table.columns:
            table["split"] = identity_split(table["group_id"].to_numpy(), fractions, seed)
            split_method = f"by group column {group_column!r}, seeded"
        else:
            table["split"] = random_split(len(table), fractions, seed)
            split_method = "random, seeded"
        check_nonempty(table["split"].to_numpy(), fractions, SPLIT_NAMES, where)
    else:
        split_method = f"from column {split_column!r}"
        for s in ("train", "test"):
            if not (table["split"] == s).any():
                raise FairlatentError(f"{where}: split {s!r} is empty (column {split_column!r})")
    front = ["id", "split"] + (["group_id"] if "group_id" in table.columns else [])
    table = table[front + attr_names]
    notes = [n for n in [mode_conversion_note(res.converted_modes)] if n]
    meta = {
        "source": "folder",
        "images": str(images),
        "labels": str(labels),
        "seed": seed,
        "preprocessing": {"crop": "largest centred square", "size": size, "resize_filter": RESAMPLE_FILTER_NAME},
        "split_method": split_method,
        "fractions": list(fractions),
        "reported": report_unmatched(labels_only, images_only, res),
        "notes": notes,
    }
    return res.images, table, meta


def convert_folder(images: str | os.PathLike, labels: str | os.PathLike, out: str | os.PathLike, *,
                   overwrite: bool = False, **kwargs: Any) -> tuple[Path, dict[str, Any]]:
    """:func:`read_folder` then :func:`~fairlatent.data.dataset.write_dataset`; returns ``(path, meta)``."""
    check_dataset_out(out, overwrite, {"--images": images, "--labels": labels})
    refuse_existing(out, overwrite)
    imgs, table, meta = read_folder(images, labels, **kwargs)
    path = write_dataset(out, imgs, table, meta, overwrite=overwrite)
    return path, read_json(path / "meta.json")
