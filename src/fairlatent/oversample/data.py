"""Class-labelled image arrays for oversampling: a small MNIST reader and fixed long-tailed profiles.

The oversampling models work on plain arrays (``images``: uint8 N×H×W×C, ``labels``: int 0…K−1) rather
than on the project's attribute data sets, because their labels are one multi-class variable (a digit, a
hair colour), not binary attributes. An :class:`ImbalancedSplit` holds a long-tailed training set and a
*balanced* test set, so the per-class metrics (ACSA, geometric mean of recalls) weigh every class alike.

The MNIST reader is private to this package on purpose (another part of the project may add a general
one); it reads the IDX ``.gz`` files of ``/work/shared/data/mnist`` (the 10,000 test images only: the
60,000 training images are not there, which is why the profile below is the paper's at 1/5 scale).

The CelebA hair-colour profile (:func:`celeba_hair_split`) reads a fairlatent data set instead (made by
``fairlatent data celeba``), whose identity column lets the test set be held out by person.
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
    "CELEBA_HAIR_CLASSES", "CELEBA_HAIR_TEST_PER_CLASS", "MNIST_LT_COUNTS", "MNIST_TEST_PER_CLASS", "ImbalancedSplit",
    "celeba_hair_split", "check_training_labels", "exponential_profile", "load_mnist_idx", "long_tailed_split",
    "mnist_long_tailed", "read_split_npz", "write_split_npz",
]  # fmt: skip

#: The reference code's MNIST training profile (4000, 2000, 1000, 750, 500, 350, 200, 100, 60, 40 for digits
#: 0…9, imbalance ratio 100; ``code/dataset_creation.py`` of arnabkmondal/OversamplingRAE) at 1/5 scale,
#: because only the 10,000 MNIST test images are available here. Ratio 800 / 8 = 100, 1,800 images.
MNIST_LT_COUNTS = (800, 400, 200, 150, 100, 70, 40, 20, 12, 8)
#: Balanced test images per digit, held out before the training profile is drawn (the reference uses 800
#: per class from MNIST's test split; 150 leaves every digit enough images for its training count).
MNIST_TEST_PER_CLASS = 150

#: The five hair-colour classes of the CelebA profile, in label order, with the CelebA attribute of each (the
#: classes of the CelebA experiments in the oversampling literature). Only *single-label* faces are used:
#: exactly one of the five attributes is 1 (faces with two hair colours, or none of them, are left out).
CELEBA_HAIR_CLASSES = (("Black", "Black_Hair"), ("Brown", "Brown_Hair"), ("Blond", "Blond_Hair"),
                       ("Gray", "Gray_Hair"), ("Bald", "Bald"))
#: Balanced test images per hair colour, held out by identity. The rarest class decides it: the shared 10k
#: CelebA images have 180 single-label Bald faces (131 identities; 2,373 / 1,920 / 1,360 / 344 / 180 for
#: Black … Bald). 40 keeps about three quarters of Bald for training (138–140 faces after the identity
#: hold-out for seeds 0–2, train ratio ≈ 17) while 5 × 40 = 200 test images still measure each class's
#: recall in steps of 2.5 points; 80 would halve Bald's training set, 20 would make every per-class recall
#: a very coarse estimate (steps of 5 points).
CELEBA_HAIR_TEST_PER_CLASS = 40


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


def celeba_hair_split(data_path: str | os.PathLike, *, seed: int,
                      test_per_class: int = CELEBA_HAIR_TEST_PER_CLASS) -> ImbalancedSplit:
    """CelebA hair colour (Black, Brown, Blond, Gray, Bald): natural long-tailed train, balanced test by identity.

    ``data_path`` is a fairlatent data set with the five attributes of :data:`CELEBA_HAIR_CLASSES` and the
    identity column ``group_id`` (``fairlatent data celeba --size 64`` keeps both). Its own train/val/test
    split is *ignored*: every single-label face of every split is pooled and split again here, because the
    test set must be balanced per class and held out by identity, which the data set's split is not.

    Identity-disjoint hold-out, seeded: identities are put in a seeded order; then for each class, rarest
    first, identities that have a face of that class are moved to the test side, in that order, until the
    class has ``test_per_class`` faces there (a moved identity's faces of other classes count for those
    classes too). Exactly ``test_per_class`` faces per class are then drawn (seeded) from the test side; its
    surplus faces are used neither for testing nor for training — putting them in training would let an
    identity appear on both sides, where a classifier could score by recognising the person. Training keeps
    every single-label face of the other identities, so its class counts are the natural distribution less
    the hold-out (they vary by a few images with the seed; ``profile["held_out_unused"]`` says how many).

    Rarest first so that the rare classes lose as few faces as possible to the surplus. A missing attribute
    or identity column, or a class with too few faces for ``test_per_class`` test + 2 training images, is a
    :class:`FairlatentError` naming it.
    """
    from fairlatent.data.dataset import load_dataset

    if test_per_class < 1:
        raise FairlatentError(f"test_per_class must be at least 1, got {test_per_class}")
    ds = load_dataset(data_path)
    path = ds.path
    names = [n for n, _ in CELEBA_HAIR_CLASSES]
    attrs = [a for _, a in CELEBA_HAIR_CLASSES]
    missing = [a for a in attrs if a not in ds.attribute_names]
    if missing:
        raise FairlatentError(f"{path}: no attribute column {', '.join(repr(m) for m in missing)}; the CelebA "
                              f"hair-colour profile needs {', '.join(attrs)} (convert CelebA with them kept)")
    if "group_id" not in ds.table.columns:
        raise FairlatentError(f"{path}: no identity column 'group_id'; the CelebA hair-colour profile holds its "
                              "test set out by identity (convert CelebA with identity_CelebA.txt present)")
    if ds.images.shape[1] != ds.images.shape[2] or ds.images.shape[1] % 4:
        raise FairlatentError(f"{path}: images must be square with a side divisible by 4 (the networks halve it "
                              f"twice), got {ds.images.shape[1]}×{ds.images.shape[2]}")
    hair = ds.table[attrs].to_numpy().astype(np.int64)
    n_labels = hair.sum(1)
    rows = np.flatnonzero(n_labels == 1)  # single-label faces, in data set order
    labels = hair[rows].argmax(1)
    groups = ds.table["group_id"].to_numpy()[rows]
    k = len(names)
    available = np.bincount(labels, minlength=k)
    for c in np.argsort(available, kind="stable"):
        if available[c] < test_per_class + 2:
            raise FairlatentError(
                f"{path}: class {names[c]!r} ({attrs[c]}) has {available[c]} single-label faces, too few for "
                f"{test_per_class} test images per class plus 2 for training; lower test_per_class")

    uniq, inverse = np.unique(groups, return_inverse=True)
    order = rng(seed, "celeba-hair-identities").permutation(len(uniq))
    on_test = np.zeros(len(uniq), dtype=bool)
    have = np.zeros(k, dtype=np.int64)  # faces of each class on the test side
    for c in np.argsort(available, kind="stable"):
        with_c = np.zeros(len(uniq), dtype=bool)
        with_c[inverse[labels == c]] = True
        for g in order:
            if have[c] >= test_per_class:
                break
            if with_c[g] and not on_test[g]:
                on_test[g] = True
                have += np.bincount(labels[inverse == g], minlength=k)
    test_side = on_test[inverse]
    te = []
    for c in range(k):
        cand = np.flatnonzero(test_side & (labels == c))
        te.append(np.sort(cand[rng(seed, "celeba-hair-test", c).permutation(len(cand))[:test_per_class]]))
    tr = np.flatnonzero(~test_side)
    train_counts = np.bincount(labels[tr], minlength=k)
    for c in range(k):
        if train_counts[c] < 2:
            raise FairlatentError(
                f"{path}: class {names[c]!r} ({attrs[c]}) keeps {train_counts[c]} training faces after "
                f"{test_per_class} test faces per class were held out by identity (of {available[c]}); every "
                "class needs at least 2; lower test_per_class")
    te_idx = np.concatenate(te)
    profile = {
        "name": "celeba-hair", "data": str(path), "attributes": attrs, "counts": train_counts.tolist(),
        "test_per_class": test_per_class, "seed": seed,
        "imbalance_ratio": round(int(train_counts.max()) / max(1, int(train_counts.min())), 2),
        "single_label_counts": available.tolist(), "multi_label_faces": int((n_labels > 1).sum()),
        "no_hair_label_faces": int((n_labels == 0).sum()), "image_size": int(ds.images.shape[1]),
        "test_identities": int(on_test.sum()), "train_identities": int(len(uniq) - on_test.sum()),
        "held_out_unused": (have - test_per_class).tolist(),
    }
    # only the faces used are read from the memory-mapped images.npy; plain in-memory arrays come back
    train_images, test_images = (np.ascontiguousarray(ds.images[rows[i]]) for i in (tr, te_idx))
    return ImbalancedSplit(train_images, labels[tr], test_images, labels[te_idx], names, profile)


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
