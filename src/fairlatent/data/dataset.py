"""The one on-disk data set format every stage reads and writes.

A data set is a directory::

    images.npy       uint8 N×H×W×3 RGB, opened memory-mapped
    attributes.csv   one row per image: id, split, [group_id], then binary attribute columns (0/1)
    meta.json        format/version, source, image size, seed, creation parameters, attribute names, part names
    masks.npy        optional: per-pixel part masks, N×P×H×W booleans bit-packed along W (np.packbits)
    latents.npy      optional: float32 N×D latents of generated images (so any image can be regenerated)

``split`` is one of ``train``, ``val``, ``test``, ``test_balanced``. Data sets are written atomically by
:func:`write_dataset` (temporary directory, renamed when complete), so a directory that loads is complete.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd

from fairlatent.errors import FairlatentError
from fairlatent.utils.arrays import load_npy
from fairlatent.utils.io import atomic_directory, check_output_distinct, check_replaceable, read_json, write_json
from fairlatent.utils.schema import Schema, read_json_object

FORMAT_NAME = "fairlatent-dataset"
FORMAT_VERSION = 1
SPLITS = ("train", "val", "test", "test_balanced")
RESERVED_COLUMNS = ("id", "split", "group_id")


class MetaSchema(Schema):
    """The fields of ``meta.json`` that loading and inspecting a data set read."""

    format: str
    unlabelled: bool = False
    parts: list[str] = []
    source: str | None = None
    target: str | None = None
    protected: str | None = None


@dataclass
class Dataset:
    """A loaded data set. ``images`` (and ``latents``) are memory-mapped; nothing is read until indexed."""

    path: Path
    images: np.ndarray
    table: pd.DataFrame
    meta: dict[str, Any]
    latents: np.ndarray | None = None
    _packed_masks: np.ndarray | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.table)

    @property
    def attribute_names(self) -> list[str]:
        return [c for c in self.table.columns if c not in RESERVED_COLUMNS]

    @property
    def image_size(self) -> int:
        return int(self.images.shape[1])

    @property
    def part_names(self) -> list[str]:
        return list(self.meta.get("parts", []))

    @property
    def has_masks(self) -> bool:
        return self._packed_masks is not None

    @property
    def ids(self) -> np.ndarray:
        return self.table["id"].to_numpy()

    def check_attributes(self, names: Iterable[str]) -> None:
        """Raise a :class:`FairlatentError` naming any attribute this data set lacks, listing the ones it has."""
        missing = [n for n in names if n not in self.attribute_names]
        if missing:
            raise FairlatentError(
                f"{self.path}: no attribute {', '.join(repr(m) for m in missing)}; "
                f"attributes are: {', '.join(self.attribute_names)}"
            )

    def split_indices(self, split: str, *, required: bool = True) -> np.ndarray:
        """Row indices of one split; an empty split is an error unless ``required=False``."""
        if split not in SPLITS:
            raise FairlatentError(f"unknown split {split!r}; splits are {', '.join(SPLITS)}")
        idx = np.flatnonzero(self.table["split"].to_numpy() == split)
        if required and idx.size == 0:
            raise FairlatentError(f"{self.path}: split {split!r} is empty")
        return idx

    def labels(self, attribute: str, indices: np.ndarray | None = None) -> np.ndarray:
        """0/1 labels of one attribute as int64, for all rows or the given indices."""
        self.check_attributes([attribute])
        col = self.table[attribute].to_numpy().astype(np.int64)
        return col if indices is None else col[indices]

    def masks(self, indices: np.ndarray | slice | None = None) -> np.ndarray:
        """Boolean part masks N×P×H×W (unpacked on demand) for all rows or the given indices."""
        if self._packed_masks is None:
            raise FairlatentError(f"{self.path}: this data set has no part masks (masks.npy)")
        packed = self._packed_masks if indices is None else self._packed_masks[indices]
        w = self.images.shape[2]
        return np.unpackbits(packed, axis=-1, count=w).astype(bool)


def _validate_table(table: pd.DataFrame, n_images: int, where: str, *, unlabelled: bool = False) -> pd.DataFrame:
    for col in ("id", "split"):
        if col not in table.columns:
            raise FairlatentError(f"{where}: missing column {col!r}")
    if len(table) != n_images:
        raise FairlatentError(f"{where}: {len(table)} rows but {n_images} images")
    ids = table["id"]
    blank = ids.isna().to_numpy() | (ids.astype(str).str.strip() == "").to_numpy()
    if blank.any():  # read as NaN, an empty id would be saved as "nan" (two of them: "duplicate id nan")
        raise FairlatentError(f"{where}: row {int(np.flatnonzero(blank)[0]) + 2}, column 'id': empty id")
    dup = table["id"][table["id"].duplicated()]
    if len(dup):
        raise FairlatentError(f"{where}: duplicate id {dup.iloc[0]!r} (row {int(dup.index[0]) + 2})")
    bad_split = ~table["split"].isin(SPLITS)
    if bad_split.any():
        i = int(np.flatnonzero(bad_split.to_numpy())[0])
        raise FairlatentError(
            f"{where}: row {i + 2}: split {table['split'].iloc[i]!r} is not one of {', '.join(SPLITS)}"
        )
    attrs = [c for c in table.columns if c not in RESERVED_COLUMNS]
    if not attrs and not unlabelled:  # generated sets may be unlabelled: meta.json says "unlabelled": true
        raise FairlatentError(f"{where}: no attribute columns")
    for col in attrs:
        values = table[col]
        # one text cell ("yes") makes pandas read the whole column as strings: compare numbers, so the cell
        # named is the bad one and not the first "0"
        numeric = pd.to_numeric(values, errors="coerce")
        ok = numeric.isin([0, 1])
        if not ok.all():
            i = int(np.flatnonzero(~ok.to_numpy())[0])
            bad = values.iloc[i]
            if pd.isna(bad) or (isinstance(bad, str) and not bad.strip()):
                raise FairlatentError(f"{where}: row {i + 2}, column {col!r}: empty cell (expected 0 or 1)")
            bad = bad.item() if isinstance(bad, np.generic) else bad  # "2", not "np.int64(2)"
            raise FairlatentError(f"{where}: row {i + 2}, column {col!r}: value {bad!r} is not 0 or 1")
        values = numeric
    table = table.copy()
    table["id"] = table["id"].astype(str)
    for col in attrs:
        table[col] = pd.to_numeric(table[col]).astype(np.int8)
    return table


def check_dataset_out(out: str | os.PathLike, overwrite: bool, inputs: dict[str, Any] | None = None) -> None:
    """Before a (slow) conversion, refuse an ``out`` that is or holds an input (``{option: path}``), or that
    exists and may not be replaced: only a folder fairlatent wrote is replaced, and only with ``overwrite``."""
    check_output_distinct(out, inputs or {})
    check_replaceable(out, overwrite, option="--overwrite (overwrite=True in Python)")


def write_dataset(
    path: str | os.PathLike,
    images: np.ndarray,
    table: pd.DataFrame,
    meta: dict[str, Any],
    *,
    masks: np.ndarray | None = None,
    part_names: Sequence[str] | None = None,
    latents: np.ndarray | None = None,
    overwrite: bool = False,
) -> Path:
    """Validate and write a data set atomically; return its path.

    ``images`` uint8 N×H×W×3; ``table`` with ``id``, ``split``, optional ``group_id`` and 0/1 attribute
    columns; ``masks`` bool N×P×H×W with ``part_names`` of length P; ``latents`` float N×D.
    """
    path = Path(path)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise FairlatentError(f"{path}: images must be uint8 N×H×W×3, got {images.dtype} {images.shape}")
    table = _validate_table(table.reset_index(drop=True), len(images), f"{path}/attributes.csv",
                            unlabelled=bool(meta.get("unlabelled")))
    meta = dict(meta)
    meta.update(
        format=FORMAT_NAME,
        version=FORMAT_VERSION,
        n=int(len(images)),
        image_size=[int(images.shape[1]), int(images.shape[2])],
        attributes=[c for c in table.columns if c not in RESERVED_COLUMNS],
        splits={s: int((table["split"] == s).sum()) for s in SPLITS if (table["split"] == s).any()},
    )
    if masks is not None:
        if masks.shape[0] != len(images) or masks.shape[2:] != images.shape[1:3] or masks.ndim != 4:
            raise FairlatentError(f"{path}: masks must be N×P×H×W matching images, got {masks.shape}")
        if part_names is None or len(part_names) != masks.shape[1]:
            raise FairlatentError(f"{path}: need {masks.shape[1]} part names for the masks")
        meta["parts"] = list(part_names)
    if latents is not None and len(latents) != len(images):
        raise FairlatentError(f"{path}: {len(latents)} latents for {len(images)} images")
    with atomic_directory(path, overwrite=overwrite) as tmp:
        np.save(tmp / "images.npy", np.ascontiguousarray(images), allow_pickle=False)
        table.to_csv(tmp / "attributes.csv", index=False)
        if masks is not None:
            np.save(tmp / "masks.npy", np.packbits(masks.astype(bool), axis=-1), allow_pickle=False)
        if latents is not None:
            np.save(tmp / "latents.npy", np.asarray(latents, dtype=np.float32), allow_pickle=False)
        write_json(tmp / "meta.json", meta)  # last: its presence marks a complete data set
    return path


def _load_npy(file: Path) -> np.ndarray:
    return load_npy(file)  # shared with metric inputs: one guard for truncated / pickled / non-.npy files


def refuse_duplicate_columns(path: Path) -> None:
    """Refuse a CSV whose header names a column twice: pandas silently renames the second ``A`` to ``A.1``,
    so one of two label columns would quietly become an attribute of its own."""
    import csv

    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            header = next(csv.reader(fh), [])
    except (OSError, UnicodeDecodeError, csv.Error):
        return  # pandas read it; its own errors were reported above
    seen: dict[str, int] = {}
    for i, name in enumerate(header, 1):
        if name.strip() in seen:
            raise FairlatentError(f"{path}: column {name.strip()!r} appears twice in the header (columns "
                                  f"{seen[name.strip()]} and {i}); give each column its own name")
        seen[name.strip()] = i


def load_dataset(path: str | os.PathLike) -> Dataset:
    """Open a data set directory, validating it; raise :class:`FairlatentError` naming what is wrong."""
    path = Path(path)
    if not path.is_dir():
        raise FairlatentError(f"{path}: not a data set directory (no such directory)")
    for name in ("meta.json", "images.npy", "attributes.csv"):
        if not (path / name).is_file():
            raise FairlatentError(f"{path}: missing {name}; not a complete fairlatent data set")
    meta = read_json_object(path / "meta.json", MetaSchema)
    if meta.get("format") != FORMAT_NAME:
        raise FairlatentError(f"{path}/meta.json: not a fairlatent data set (format={meta.get('format')!r})")
    images = _load_npy(path / "images.npy")
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise FairlatentError(f"{path}/images.npy: expected uint8 N×H×W×3, got {images.dtype} {images.shape}")
    try:
        table = pd.read_csv(path / "attributes.csv", dtype={"id": str, "split": str})
    except Exception as exc:  # pandas raises several types for malformed CSV
        raise FairlatentError(f"{path}/attributes.csv: cannot parse ({exc})") from None
    refuse_duplicate_columns(path / "attributes.csv")
    table = _validate_table(table, len(images), f"{path}/attributes.csv", unlabelled=bool(meta.get("unlabelled")))
    packed = None
    if (path / "masks.npy").is_file():
        packed = _load_npy(path / "masks.npy")
        if packed.shape[0] != len(images):
            raise FairlatentError(f"{path}/masks.npy: {packed.shape[0]} masks for {len(images)} images")
    latents = None
    if (path / "latents.npy").is_file():
        latents = _load_npy(path / "latents.npy")
        if latents.shape[0] != len(images):
            raise FairlatentError(f"{path}/latents.npy: {latents.shape[0]} latents for {len(images)} images")
    return Dataset(path=path, images=images, table=table, meta=meta, latents=latents, _packed_masks=packed)
