"""MNIST (LeCun et al. 1998) in its original IDX files → a fairlatent data set.

Why a reader of its own: MNIST is the reference benchmark of InfoGAN (Chen et al., NeurIPS 2016), whose
categorical code should discover the ten digits without labels. The IDX format is tiny (a big-endian
header, then raw bytes), so it is read here with NumPy alone; gzip-compressed files (as distributed,
``*-idx3-ubyte.gz``) and uncompressed ones are both accepted.

Conversion: the 28×28 grey digits are zero-padded by 2 pixels on every side to 32×32 (the smallest size
the GAN architectures take; padding keeps every stroke pixel as it was, where resizing would blur
them) and repeated over the three RGB channels (the data set format is RGB). The digit labels become ten
0/1 attribute columns ``digit_0`` … ``digit_9`` (the format's attributes are binary), and the rows get a
seeded random train/val/test split.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from fairlatent.data.dataset import check_dataset_out, write_dataset
from fairlatent.data.splits import random_split
from fairlatent.errors import FairlatentError

# file stems of the two MNIST parts, as distributed
PARTS = {"test": "t10k", "train": "train"}
PAD = 2  # 28 + 2·2 = 32
DIGIT_COLUMNS = tuple(f"digit_{d}" for d in range(10))


def _open(path: Path) -> bytes:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise FairlatentError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise FairlatentError(f"{path}: damaged gzip file ({exc})") from None
    return raw


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """An IDX file (optionally gzipped) as a uint8 array of the shape its header gives.

    Header: two zero bytes, a type byte (0x08 = unsigned byte, the only type MNIST uses), the number of
    dimensions, then each dimension as a big-endian 32-bit integer.
    """
    path = Path(path)
    raw = _open(path)
    if len(raw) < 4 or raw[:2] != b"\0\0":
        raise FairlatentError(f"{path}: not an IDX file (bad magic number)")
    if raw[2] != 0x08:
        raise FairlatentError(f"{path}: IDX element type 0x{raw[2]:02x} is not unsigned bytes (0x08)")
    ndim = raw[3]
    head = 4 + 4 * ndim
    if len(raw) < head:
        raise FairlatentError(f"{path}: truncated IDX header")
    shape = tuple(int(d) for d in np.frombuffer(raw[4:head], dtype=">u4"))
    n = int(np.prod(shape)) if shape else 0
    if len(raw) - head != n:
        raise FairlatentError(f"{path}: IDX header says {shape} ({n} bytes of data) but the file holds {len(raw) - head}")
    return np.frombuffer(raw, dtype=np.uint8, offset=head).reshape(shape)


def _find(root: Path, stem: str, kind: str) -> Path:
    for name in (f"{stem}-{kind}-idx{3 if kind == 'images' else 1}-ubyte.gz",
                 f"{stem}-{kind}-idx{3 if kind == 'images' else 1}-ubyte",
                 f"{stem}-{kind}.idx{3 if kind == 'images' else 1}-ubyte"):  # fmt: skip
        if (root / name).is_file():
            return root / name
    raise FairlatentError(f"{root}: no {stem}-{kind}-idx{3 if kind == 'images' else 1}-ubyte[.gz] (MNIST's file name)")


def read_mnist(root: str | os.PathLike, part: str = "test") -> tuple[np.ndarray, np.ndarray]:
    """``(images uint8 N×32×32×3, labels int64 N)`` of MNIST's ``part`` ("test": the 10,000 t10k images,
    "train": the 60,000) from the IDX files in ``root``; the digits are padded to 32 px and made RGB."""
    if part not in PARTS:
        raise FairlatentError(f"MNIST part must be one of {', '.join(PARTS)}, got {part!r}")
    root = Path(root)
    images = read_idx(_find(root, PARTS[part], "images"))
    labels = read_idx(_find(root, PARTS[part], "labels"))
    if images.ndim != 3 or images.shape[1:] != (28, 28):
        raise FairlatentError(f"{root}: MNIST images must be N×28×28, got {images.shape}")
    if labels.ndim != 1 or len(labels) != len(images):
        raise FairlatentError(f"{root}: {len(labels)} labels for {len(images)} images")
    if labels.max(initial=0) > 9:
        raise FairlatentError(f"{root}: label {int(labels.max())} is not a digit")
    padded = np.pad(images, ((0, 0), (PAD, PAD), (PAD, PAD)))
    return np.repeat(padded[..., None], 3, axis=3), labels.astype(np.int64)


def mnist_table(labels: np.ndarray, splits: Sequence[str] | np.ndarray, prefix: str = "") -> pd.DataFrame:
    """The attribute table: ``id`` (``prefix`` + row number), ``split`` and the ten one-hot digit columns."""
    onehot = np.eye(10, dtype=np.int8)[np.asarray(labels)]
    table = pd.DataFrame({"id": [f"{prefix}{i:05d}" for i in range(len(labels))], "split": list(splits)})
    for d, col in enumerate(DIGIT_COLUMNS):
        table[col] = onehot[:, d]
    return table


def digit_labels(table: pd.DataFrame) -> np.ndarray:
    """The digit (0–9) of every row of an MNIST data set's table (the inverse of the one-hot columns)."""
    return table[list(DIGIT_COLUMNS)].to_numpy().argmax(axis=1)


def convert_mnist(out: str | os.PathLike, root: str | os.PathLike, *, part: str = "test",
                  fractions: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 0, limit: int | None = None,
                  overwrite: bool = False) -> tuple[Path, dict]:  # fmt: skip
    """Write MNIST's ``part`` from ``root`` as a data set at ``out`` with a seeded random split; return
    ``(path, meta)``. ``limit`` keeps the first N images (for quick trials)."""
    check_dataset_out(out, overwrite, {"--root": root})
    images, labels = read_mnist(root, part)
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    splits = random_split(len(images), fractions, seed, stream="mnist-split")
    meta = {"source": "mnist", "part": part, "seed": seed, "fractions": list(fractions),
            "notes": ["28×28 grey digits zero-padded to 32×32 and repeated over RGB; labels as digit_0…digit_9"]}
    path = write_dataset(out, images, mnist_table(labels, splits), meta, overwrite=overwrite)
    from fairlatent.utils.io import read_json

    return path, read_json(path / "meta.json")


__all__ = ["DIGIT_COLUMNS", "convert_mnist", "digit_labels", "mnist_table", "read_idx", "read_mnist"]
