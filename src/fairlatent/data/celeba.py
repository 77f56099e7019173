"""CelebA in its official layout → a fairlatent data set.

Files (pass them individually, or a ``root`` directory where :func:`find_celeba_files` looks for them):

- images: ``img_align_celeba/`` (a folder of ``NNNNNN.jpg``) or any zip whose members are
  ``<folder>/NNNNNN.jpg`` (root search: a directory named ``img_align_celeba*``, else a zip named
  ``img_align_celeba*.zip`` or ``*celeba*.zip``, else the only zip in ``root``);
- attributes: ``list_attr_celeba.txt`` (root search: ``list_attr_celeba*.txt[.gz]``): a count line (never
  trusted: the rows are counted instead), a line of attribute names, then ``NNNNNN.jpg`` and -1/1 per
  attribute. Values become 0/1;
- partition: ``list_eval_partition.txt[.gz]`` (0 train, 1 val, 2 test), needed for ``split="official"``;
- identity: ``identity_CelebA.txt[.gz]``, needed for ``split="identity"``; kept as the ``group_id`` column.

Face crop (``crop=True``): the 128×128 box the gan-debiasing paper crops from the 178×218 aligned images,
rows 57–184 and columns 25–152 (centre row 121, column 89). For an input of another resolution with the same
aspect ratio the box scales with it: ``top = floor(57·s)``, ``left = floor(25·s)``, ``side = round(128·s)``
with ``s = W/178``. At the 89×109 half resolution that is ``np.asarray(img)[28:92, 12:76]``, a 64×64 crop
that needs no resampling at ``size=64``. The crop is then resized to ``size`` with Pillow's Lanczos filter
(skipped when already that size). ``crop=False`` resizes the whole frame to size×size (faces squashed).

Images without a label row and label rows without an image are reported (count + examples, terminal and
``meta.json``), and only images with labels are converted.
"""

from __future__ import annotations

import gzip
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from fairlatent.data.dataset import check_dataset_out, write_dataset
from fairlatent.data.folder import report_unmatched, select_attributes
from fairlatent.data.imageio import (
    RESAMPLE_FILTER_NAME,
    Box,
    crop_resize,
    decode_images,
    decode_rgb,
    examples,
    mode_conversion_note,
    open_image_source,
    refuse_existing,
)
from fairlatent.data.splits import SPLIT_NAMES, check_nonempty, identity_split, parse_fractions
from fairlatent.errors import FairlatentError
from fairlatent.utils.io import read_json

FULL_SIZE = (178, 218)  # W, H of img_align_celeba
FACE_BOX_FULL = (57, 25, 128)  # top, left, side of the paper's crop at full resolution
OFFICIAL_SPLITS = {0: "train", 1: "val", 2: "test"}
DEFAULT_FRACTIONS = (0.7, 0.15, 0.15)


@dataclass
class CelebAFiles:
    """Where each CelebA file is (``None`` when not found / not given)."""

    images: Path | None
    attributes: Path | None
    partition: Path | None = None
    identity: Path | None = None


def face_crop_box(width: int, height: int) -> Box:
    """Pillow box (left, upper, right, lower) of the paper's face crop scaled to a width×height image.

    Scale ``s = width/178``; ``top = floor(57s)``, ``left = floor(25s)``, ``side = round(128s)``. Full size
    gives (25, 57, 153, 185); 89×109 gives (12, 28, 76, 92).
    """
    s = width / FULL_SIZE[0]
    top, left, side = FACE_BOX_FULL
    t, l, n = math.floor(top * s + 1e-9), math.floor(left * s + 1e-9), round(side * s)
    return (l, t, l + n, t + n)


def _first(paths: list[Path]) -> Path | None:
    return sorted(paths)[0] if paths else None


def find_celeba_files(root: str | os.PathLike) -> CelebAFiles:
    """Find the CelebA files in ``root`` by their usual names (see the module docstring)."""
    root = Path(root)
    if not root.is_dir():
        raise FairlatentError(f"{root}: CelebA root is not a directory")
    entries = list(root.iterdir())
    dirs = [p for p in entries if p.is_dir() and p.name.startswith("img_align_celeba")]
    zips = [p for p in entries if p.is_file() and p.suffix.lower() == ".zip"]
    images = _first(dirs) or _first([z for z in zips if z.name.startswith("img_align_celeba")]) or _first(
        [z for z in zips if "celeba" in z.name.lower()]) or (zips[0] if len(zips) == 1 else None)

    def find(prefix: str) -> Path | None:
        hits = [p for p in entries if p.is_file() and p.name.startswith(prefix)
                and (p.name.endswith(".txt") or p.name.endswith(".txt.gz"))]
        return _first(hits)

    return CelebAFiles(images=images, attributes=find("list_attr_celeba"), partition=find("list_eval_partition"),
                       identity=find("identity_CelebA"))


def _open_text(path: Path):
    try:
        if path.suffix == ".gz":
            return gzip.open(path, "rt", encoding="utf-8")
        return open(path, encoding="utf-8")
    except OSError as exc:
        raise FairlatentError(f"{path}: cannot open ({exc})") from None


def _read_lines(path: Path) -> list[str]:
    if not path.is_file():
        raise FairlatentError(f"{path}: file not found")
    try:
        with _open_text(path) as fh:
            return fh.read().splitlines()
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise FairlatentError(f"{path}: cannot read ({exc})") from None


def read_attribute_file(path: str | os.PathLike) -> pd.DataFrame:
    """Parse ``list_attr_celeba.txt`` into a 0/1 int8 table indexed by image name.

    Line 1 (the image count) is ignored on purpose: partial copies keep the full count. Line 2 names the
    attributes; each further non-empty line is ``name v1 … vK`` with values -1 or 1 (0/1 also accepted;
    mixing -1 and 0 in one column is ambiguous and rejected).
    """
    from fairlatent.data.folder import binarize_column

    path = Path(path)
    lines = _read_lines(path)
    if len(lines) < 2:
        raise FairlatentError(f"{path}: too short for a CelebA attribute file (need a count line and a header)")
    names = lines[1].split()
    if not names:
        raise FairlatentError(f"{path}: line 2 should list the attribute names but is empty")
    if names[0] in ("image_id", "file", "filename"):
        names = names[1:]
    k = len(names)
    ids: list[str] = []
    rows: list[list[str]] = []
    line_no: list[int] = []
    for i, line in enumerate(lines[2:], start=3):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != k + 1:
            raise FairlatentError(f"{path}: line {i}: {len(parts) - 1} values for {k} attributes ({parts[0]!r})")
        ids.append(parts[0])
        rows.append(parts[1:])
        line_no.append(i)
    if not ids:
        raise FairlatentError(f"{path}: no label rows after the header")
    seen: dict[str, int] = {}
    for n, i in zip(ids, line_no):
        if n in seen:
            raise FairlatentError(f"{path}: duplicate image {n!r} (lines {seen[n]} and {i})")
        seen[n] = i
    values = np.array(rows, dtype=object)
    table = pd.DataFrame(index=pd.Index(ids, name="image_id"))
    line_arr = np.array(line_no)
    for j, name in enumerate(names):
        col = values[:, j]
        try:
            table[name] = binarize_column(col, name, str(path), first_row=0)
        except FairlatentError as exc:
            # binarize_column numbers rows from first_row; map the 0-based index back to the file line.
            raise FairlatentError(_renumber(str(exc), line_arr)) from None
    return table


def _renumber(message: str, line_arr: np.ndarray) -> str:
    import re

    return re.sub(r"row (\d+)", lambda m: f"line {int(line_arr[int(m.group(1))])}", message)


def read_key_value_file(path: str | os.PathLike, what: str) -> pd.Series:
    """Parse ``name value`` lines (partition or identity file) into an int64 Series indexed by name."""
    path = Path(path)
    ids, vals = [], []
    for i, line in enumerate(_read_lines(path), start=1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2:
            raise FairlatentError(f"{path}: line {i}: expected '<image> <{what}>', got {line.strip()!r}")
        try:
            vals.append(int(parts[1]))
        except ValueError:
            raise FairlatentError(f"{path}: line {i}: {what} {parts[1]!r} is not an integer") from None
        ids.append(parts[0])
    s = pd.Series(vals, index=pd.Index(ids, name="image_id"), dtype=np.int64)
    dup = s.index[s.index.duplicated()]
    if len(dup):
        raise FairlatentError(f"{path}: duplicate image {dup[0]!r}")
    return s


def read_celeba(
    root: str | os.PathLike | None = None,
    *,
    images: str | os.PathLike | None = None,
    attributes_file: str | os.PathLike | None = None,
    partition_file: str | os.PathLike | None = None,
    identity_file: str | os.PathLike | None = None,
    size: int = 64,
    crop: bool = True,
    split: str = "identity",
    fractions: Sequence[float] | str = DEFAULT_FRACTIONS,
    seed: int = 0,
    limit: int | None = None,
    attributes: Sequence[str] | None = None,
    skip_bad: bool = False,
    progress: bool = True,
) -> tuple[np.ndarray, pd.DataFrame, dict[str, Any]]:
    """Read CelebA; return ``(images uint8 N×size×size×3, table, meta)`` for :func:`write_dataset`.

    Explicit file arguments override what the ``root`` search finds. ``limit`` keeps the first ``limit``
    labelled images in name order (before splitting). ``split``: ``"identity"`` (seeded, by person,
    ``fractions`` of images for train/val/test) or ``"official"`` (the partition file).
    """
    if size < 1:
        raise FairlatentError(f"size must be positive, got {size}")
    if split not in ("identity", "official"):
        raise FairlatentError(f"split {split!r}: choose 'identity' or 'official'")
    found = find_celeba_files(root) if root is not None else CelebAFiles(None, None)
    files = CelebAFiles(
        images=Path(images) if images else found.images,
        attributes=Path(attributes_file) if attributes_file else found.attributes,
        partition=Path(partition_file) if partition_file else found.partition,
        identity=Path(identity_file) if identity_file else found.identity,
    )
    where = str(root) if root is not None else "CelebA"
    if files.images is None:
        raise FairlatentError(f"{where}: no CelebA images found (looked for img_align_celeba/ or a *.zip); "
                              "pass the images folder or zip explicitly")
    if files.attributes is None:
        raise FairlatentError(f"{where}: no attribute file found (looked for list_attr_celeba*.txt[.gz])")
    needed = files.identity if split == "identity" else files.partition
    if needed is None:
        want = "identity_CelebA.txt[.gz]" if split == "identity" else "list_eval_partition.txt[.gz]"
        raise FairlatentError(f"{where}: split {split!r} needs {want}, which was not found")

    attr = read_attribute_file(files.attributes)
    keep_attrs = select_attributes(list(attr.columns), attributes, str(files.attributes))
    attr = attr[keep_attrs]
    source = open_image_source(files.images)
    image_names = set(source.names())
    labelled = [n for n in attr.index if n in image_names]
    labels_only = [n for n in attr.index if n not in image_names]
    label_set = set(attr.index)
    images_only = [n for n in source.names() if n not in label_set]
    if not labelled:
        raise FairlatentError(
            f"{files.attributes}: none of its {len(attr)} image names is in {files.images} "
            f"(labels e.g. {examples(attr.index, 3)}; images e.g. {examples(source.names(), 3)})"
        )
    labelled.sort()
    if limit is not None:
        if limit <= 0:
            raise FairlatentError(f"limit must be positive, got {limit}")
        labelled = labelled[:limit]

    expected: dict[str, Any] = {}

    def transform(img, name):
        w, h = img.size  # every image must match the first one's resolution, decided before the pool starts
        if (w, h) != expected["size"]:
            raise FairlatentError(
                f"{source.display_name(name)}: image is {w}×{h} but the CelebA images here are "
                f"{expected['size'][0]}×{expected['size'][1]}"
            )
        return crop_resize(img, expected["box"], size)

    w0, h0 = decode_rgb(source.read(labelled[0]), source.display_name(labelled[0]))[0].size
    if abs(w0 / h0 - FULL_SIZE[0] / FULL_SIZE[1]) > 0.01:
        raise FairlatentError(
            f"{source.display_name(labelled[0])}: image is {w0}×{h0}, not the aligned CelebA aspect ratio "
            "178:218 (img_align_celeba or a uniformly rescaled copy)"
        )
    expected["size"] = (w0, h0)
    expected["box"] = face_crop_box(w0, h0) if crop else None

    res = decode_images(source, labelled, transform, size, skip_bad=skip_bad, progress=progress,
                        description="decoding CelebA")
    kept = [labelled[i] for i in res.kept]
    table = pd.DataFrame({"id": kept})

    if split == "official":
        part = read_key_value_file(files.partition, "partition")
        missing = [n for n in kept if n not in part.index]
        if missing:
            raise FairlatentError(f"{files.partition}: no partition for {len(missing)} image(s), e.g. "
                                  f"{examples(missing, 3)}")
        codes = part.loc[kept].to_numpy()
        bad = ~np.isin(codes, list(OFFICIAL_SPLITS))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise FairlatentError(f"{files.partition}: image {kept[i]!r}: partition {codes[i]} is not 0, 1 or 2")
        table["split"] = [OFFICIAL_SPLITS[int(c)] for c in codes]
        empty = [s for s in SPLIT_NAMES if not (table["split"] == s).any()]
        if empty:
            counts = {s: int((table["split"] == s).sum()) for s in SPLIT_NAMES}
            raise FairlatentError(
                f"{files.partition}: the official partition leaves {' and '.join(empty)} empty for these "
                f"{len(kept)} images ({counts}); use --split identity for a fresh split by identity"
            )
        split_method = "official partition (0 train, 1 val, 2 test)"
        fractions_out = None
    else:
        fractions_out = list(parse_fractions(fractions))
        split_method = "by identity, seeded (no identity in two splits)"
    if files.identity is not None:
        ident = read_key_value_file(files.identity, "identity")
        missing = [n for n in kept if n not in ident.index]
        if missing:
            raise FairlatentError(f"{files.identity}: no identity for {len(missing)} image(s), e.g. "
                                  f"{examples(missing, 3)}")
        table["group_id"] = ident.loc[kept].to_numpy()
    if split == "identity":
        table["split"] = identity_split(table["group_id"].to_numpy(), fractions_out, seed)
        check_nonempty(table["split"].to_numpy(), fractions_out, SPLIT_NAMES, f"identity split of {len(kept)} images")
    lab = attr.loc[kept].reset_index(drop=True)
    front = ["id", "split"] + (["group_id"] if "group_id" in table.columns else [])
    table = pd.concat([table[front], lab], axis=1)

    notes = [n for n in [mode_conversion_note(res.converted_modes)] if n]
    box = expected["box"]
    meta = {
        "source": "celeba",
        "files": {k: (str(v) if v is not None else None) for k, v in vars(files).items()},
        "seed": seed,
        "limit": limit,
        "preprocessing": {
            "input_size": list(expected["size"]),
            "crop": bool(crop),
            "crop_box_left_upper_right_lower": list(box) if box else None,
            "crop_rows_cols": f"[{box[1]}:{box[3]}, {box[0]}:{box[2]}]" if box else None,
            "size": size,
            "resize_filter": RESAMPLE_FILTER_NAME,
            "resampled": (box[2] - box[0] != size) if box else expected["size"] != (size, size),
        },
        "split_method": split_method,
        "fractions": fractions_out,
        "label_rows_in_file": int(len(attr)),
        "images_in_source": int(len(image_names)),
        "reported": report_unmatched(labels_only, images_only, res),
        "notes": notes,
    }
    return res.images, table, meta


def convert_celeba(out: str | os.PathLike, root: str | os.PathLike | None = None, *, overwrite: bool = False,
                   **kwargs: Any) -> tuple[Path, dict[str, Any]]:
    """:func:`read_celeba` then :func:`~fairlatent.data.dataset.write_dataset`; returns ``(path, meta written)``."""
    check_dataset_out(out, overwrite, {"--root": root, "--images": kwargs.get("images"),
                                       "--attr-file": kwargs.get("attributes_file"),
                                       "--partition-file": kwargs.get("partition_file"),
                                       "--identity-file": kwargs.get("identity_file")})
    refuse_existing(out, overwrite)
    imgs, table, meta = read_celeba(root, **kwargs)
    path = write_dataset(out, imgs, table, meta, overwrite=overwrite)
    return path, read_json(path / "meta.json")
