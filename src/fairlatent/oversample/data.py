"""Class-labelled image arrays for oversampling: a small MNIST reader and fixed long-tailed profiles.

The oversampling models work on plain arrays (``images``: uint8 N×H×W×C, ``labels``: int 0…K−1) rather
than on the project's attribute data sets, because their labels are one multi-class variable (a digit, a
hair colour), not binary attributes. An :class:`ImbalancedSplit` holds a long-tailed training set and a
*balanced* test set, so the per-class metrics (ACSA, geometric mean of recalls) weigh every class alike.

The MNIST reader is private to this package on purpose (another part of the project may add a general
one); it reads the IDX ``.gz`` files of ``/work/shared/data/mnist`` (the 10,000 test images only: the
60,000 training images are not there, which is why the profile below is the paper's at 1/5 scale).
"""

from __future__ import annotations

import gzip
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from fairlatent.errors import FairlatentError
from fairlatent.utils.seed import rng

__all__ = [
    "MNIST_LT_COUNTS", "MNIST_TEST_PER_CLASS", "ImbalancedSplit", "check_training_labels", "exponential_profile",
    "load_mnist_idx", "long_tailed_split", "mnist_long_tailed", "read_split_npz", "write_split_npz",
]  # fmt: skip

#: The reference code's MNIST training profile (4000, 2000, 1000, 750, 500, 350, 200, 100, 60, 40 for digits
#: 0…9, imbalance ratio 100; ``code/dataset_creation.py`` of arnabkmondal/OversamplingRAE) at 1/5 scale,
#: because only the 10,000 MNIST test images are available here. Ratio 800 / 8 = 100, 1,800 images.
MNIST_LT_COUNTS = (800, 400, 200, 150, 100, 70, 40, 20, 12, 8)
#: Balanced test images per digit, held out before the training profile is drawn (the reference uses 800
#: per class from MNIST's test split; 150 leaves every digit enough images for its training count).
MNIST_TEST_PER_CLASS = 150


def _read_idx(path: Path, magic: int) -> np.ndarray:
    try:
        raw = gzip.open(path).read() if path.suffix == ".gz" else path.read_bytes()
    except FileNotFoundError:
        raise FairlatentError(f"{path}: file not found") from None
    except (OSError, EOFError) as exc:
        raise FairlatentError(f"{path}: not a readable IDX file ({exc})") from None
    if len(raw) < 8 or int.from_bytes(raw[:4], "big") != magic:
        raise FairlatentError(f"{path}: not an IDX file of magic number {magic}")
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    body = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(dims)):
        raise FairlatentError(f"{path}: truncated ({body.size} bytes of data for shape {tuple(dims)})")
    return body.reshape(dims)


def load_mnist_idx(root: str | os.PathLike, split: str = "t10k") -> tuple[np.ndarray, np.ndarray]:
    """``(images uint8 N×28×28×1, labels int64 N)`` from ``{split}-images-idx3-ubyte[.gz]`` and its labels."""
    root = Path(root)

    def find(kind: str) -> Path:
        for name in (f"{split}-{kind}.gz", f"{split}-{kind}"):
            if (root / name).is_file():
                return root / name
        raise FairlatentError(f"{root}: no {split}-{kind}[.gz] (expected the MNIST IDX files)")

    images = _read_idx(find("images-idx3-ubyte"), 2051)
    labels = _read_idx(find("labels-idx1-ubyte"), 2049).astype(np.int64)
    if len(images) != len(labels):
        raise FairlatentError(f"{root}: {len(images)} images but {len(labels)} labels")
    return images[..., None].copy(), labels


def exponential_profile(head: int, ratio: float, n_classes: int) -> tuple[int, ...]:
    """Counts ``round(head · ratio^(−i/(K−1)))`` for classes i = 0…K−1 (Cui et al.'s long-tailed profile)."""
    if n_classes < 2 or ratio < 1 or head < 1:
        raise FairlatentError(f"exponential profile needs ≥ 2 classes, ratio ≥ 1 and head ≥ 1 "
                              f"(got {n_classes}, {ratio}, {head})")
    return tuple(max(1, int(round(head * ratio ** (-i / (n_classes - 1))))) for i in range(n_classes))


@dataclass
class ImbalancedSplit:
    """A long-tailed training set and a balanced test set; ``profile`` records how it was drawn."""

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    class_names: list[str]
    profile: dict = field(default_factory=dict)

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    def train_counts(self) -> list[int]:
        return np.bincount(self.train_labels, minlength=self.n_classes).tolist()


def long_tailed_split(images: np.ndarray, labels: np.ndarray, counts: Sequence[int], *, test_per_class: int,
                      seed: int, class_names: Sequence[str] | None = None, what: str = "data") -> ImbalancedSplit:
    """Hold out ``test_per_class`` images of every class, then draw ``counts[c]`` training images of class c.

    Both draws come from ``rng(seed, "long-tail", c)`` over class c's images (a permutation: test first, train
    next), so a seed fixes the split and the test set never overlaps the training set. A profile asking for
    more images of a class than exist is an error naming the class and both numbers.
    """
    labels = np.asarray(labels, dtype=np.int64)
    k = len(counts)
    names = list(class_names) if class_names is not None else [str(c) for c in range(k)]
    if len(names) != k:
        raise FairlatentError(f"{what}: {len(names)} class names for a profile of {k} classes")
    tr, te = [], []
    for c in range(k):
        idx = np.flatnonzero(labels == c)
        need = int(counts[c]) + test_per_class
        if int(counts[c]) < 0 or need > len(idx):
            raise FairlatentError(f"{what}: class {names[c]!r}: the profile asks for {int(counts[c])} training + "
                                  f"{test_per_class} test images but only {len(idx)} exist")
        perm = idx[rng(seed, "long-tail", c).permutation(len(idx))]
        te.append(perm[:test_per_class])
        tr.append(perm[test_per_class:need])
    tr_idx, te_idx = np.concatenate(tr), np.concatenate(te)
    profile = {"counts": [int(n) for n in counts], "test_per_class": test_per_class, "seed": seed,
               "imbalance_ratio": round(max(counts) / max(1, min(counts)), 2)}
    return ImbalancedSplit(images[tr_idx], labels[tr_idx], images[te_idx], labels[te_idx], names, profile)


def mnist_long_tailed(root: str | os.PathLike, *, seed: int, counts: Sequence[int] = MNIST_LT_COUNTS,
                      test_per_class: int = MNIST_TEST_PER_CLASS) -> ImbalancedSplit:
    """Long-tailed MNIST from the 10,000 test images (see :data:`MNIST_LT_COUNTS`): balanced test, ratio 100."""
    images, labels = load_mnist_idx(root)
    split = long_tailed_split(images, labels, counts, test_per_class=test_per_class, seed=seed,
                              what=f"MNIST {root}")
    split.profile["name"] = "mnist-lt"
    return split


def check_training_labels(labels: np.ndarray, n_classes: int | None = None, class_names: Sequence[str] | None = None,
                          *, what: str = "training labels") -> int:
    """The number of classes K, after checking every class 0…K−1 has at least two training images.

    Same-class pairs need two members (a class with one image has nothing to mix with), and a class absent
    from training can be neither classified nor sampled; both are named rather than failing later.
    """
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.size == 0:
        raise FairlatentError(f"{what}: expected a non-empty 1-D array of class indices, got shape {labels.shape}")
    if not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0:
        raise FairlatentError(f"{what}: labels must be class indices 0, 1, …, K−1 (got {labels.dtype}, "
                              f"min {labels.min()})")
    k = n_classes if n_classes is not None else (len(class_names) if class_names is not None else int(labels.max()) + 1)
    if int(labels.max()) >= k:
        raise FairlatentError(f"{what}: label {int(labels.max())} is outside the {k} classes")
    names = list(class_names) if class_names is not None else [str(c) for c in range(k)]
    counts = np.bincount(labels, minlength=k)
    for c in range(k):
        if counts[c] == 0:
            raise FairlatentError(f"{what}: class {names[c]!r} is absent from the training set; every class needs "
                                  "at least 2 training images")
        if counts[c] == 1:
            raise FairlatentError(f"{what}: class {names[c]!r} has only 1 training image; mixing needs same-class "
                                  "pairs, so every class needs at least 2")
    return k


def write_split_npz(path: str | os.PathLike, split: ImbalancedSplit) -> None:
    """Save a split as ``.npz`` (what ``fairlatent oversample fit --data`` reads)."""
    import io
    import json

    from fairlatent.utils.io import write_bytes

    buf = io.BytesIO()
    np.savez_compressed(buf, images=split.train_images, labels=split.train_labels, test_images=split.test_images,
                        test_labels=split.test_labels, class_names=np.array(split.class_names),
                        profile=np.array(json.dumps(split.profile)))
    write_bytes(path, buf.getvalue())


def read_split_npz(path: str | os.PathLike) -> ImbalancedSplit:
    """Read an ``.npz`` with ``images`` (uint8 N×H×W or N×H×W×C) and ``labels`` (ints); test arrays optional."""
    import json

    path = Path(path)
    if not path.is_file():
        raise FairlatentError(f"{path}: file not found")
    try:
        z = np.load(path, allow_pickle=False)
        arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError) as exc:
        raise FairlatentError(f"{path}: not a readable .npz file ({exc})") from None
    for key in ("images", "labels"):
        if key not in arrays:
            raise FairlatentError(f"{path}: no {key!r} array (expected images and labels)")

    def imgs(a: np.ndarray, key: str) -> np.ndarray:
        if a.dtype != np.uint8 or a.ndim not in (3, 4):
            raise FairlatentError(f"{path}: {key!r} must be uint8 N×H×W or N×H×W×C, got {a.dtype} {a.shape}")
        a = a[..., None] if a.ndim == 3 else a
        if a.shape[1] % 4 or a.shape[2] % 4 or a.shape[1] != a.shape[2]:
            raise FairlatentError(f"{path}: {key!r}: images must be square with a side divisible by 4, got "
                                  f"{a.shape[1]}×{a.shape[2]}")
        return a

    x, y = imgs(arrays["images"], "images"), arrays["labels"].astype(np.int64, copy=False)
    if len(x) != len(y):
        raise FairlatentError(f"{path}: {len(x)} images but {len(y)} labels")
    if "class_names" in arrays:
        names = [str(s) for s in arrays["class_names"].tolist()]
    else:
        names = [str(c) for c in range(int(y.max()) + 1 if y.size else 0)]
    tx = imgs(arrays["test_images"], "test_images") if "test_images" in arrays else x[:0]
    ty = arrays["test_labels"].astype(np.int64) if "test_labels" in arrays else y[:0]
    profile = json.loads(str(arrays["profile"])) if "profile" in arrays else {}
    return ImbalancedSplit(x, y, tx, ty, names, profile)
