"""Inspect a data set: attribute rates per split, the target × protected contingency, a sample grid.

The functions return plain data (DataFrames, dicts, arrays) so both ``fairlatent data show`` and the
pipeline report can present them.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from fairlatent.data.dataset import SPLITS, Dataset
from fairlatent.errors import FairlatentError
from fairlatent.utils.seed import rng as seeded_rng


def attribute_rates(ds: Dataset) -> pd.DataFrame:
    """Positive rate of every attribute in every non-empty split (rows: attributes, columns: splits).

    A last row ``n`` holds the split sizes.
    """
    splits = [s for s in SPLITS if (ds.table["split"] == s).any()]
    rates = {s: ds.table.loc[ds.table["split"] == s, ds.attribute_names].mean(axis=0) for s in splits}
    out = pd.DataFrame(rates)
    out.loc["n"] = [int((ds.table["split"] == s).sum()) for s in splits]
    return out


@dataclass
class Contingency:
    """The 2×2 target × protected table of one split.

    ``counts[t, g]`` is the number of rows with target ``t`` and protected ``g``. ``phi`` is the phi
    coefficient (Pearson correlation of the two 0/1 columns, equal to the Matthews correlation)::

        phi = (n11 n00 - n10 n01) / sqrt(n1. n0. n.1 n.0)

    (0 when a margin is empty). ``p_agree = (n11 + n00) / n`` is P(g = t), the skew ToyFaces controls.
    """

    split: str
    counts: np.ndarray  # int64 2×2, [t, g]
    phi: float
    p_agree: float

    @property
    def n(self) -> int:
        return int(self.counts.sum())


def phi_coefficient(counts: np.ndarray) -> float:
    """Phi coefficient of a 2×2 table ``counts[t, g]`` (see :class:`Contingency`)."""
    c = np.asarray(counts, dtype=np.float64)
    denom = c[1].sum() * c[0].sum() * c[:, 1].sum() * c[:, 0].sum()
    if denom == 0:
        return 0.0
    return float((c[1, 1] * c[0, 0] - c[1, 0] * c[0, 1]) / math.sqrt(denom))


def contingency_tables(ds: Dataset, target: str, protected: str) -> list[Contingency]:
    """One :class:`Contingency` per non-empty split, in :data:`SPLITS` order."""
    ds.check_attributes([target, protected])
    if target == protected:
        raise FairlatentError(f"target and protected attribute must differ (both are {target!r})")
    out = []
    for split in SPLITS:
        idx = ds.split_indices(split, required=False)
        if idx.size == 0:
            continue
        t = ds.labels(target, idx)
        g = ds.labels(protected, idx)
        counts = np.zeros((2, 2), np.int64)
        np.add.at(counts, (t, g), 1)
        out.append(Contingency(split, counts, phi_coefficient(counts), float(np.mean(t == g))))
    return out


def default_target_protected(ds: Dataset, target: str | None, protected: str | None) -> tuple[str, str]:
    """Fill missing target/protected names from the data set's meta (ToyFaces records them)."""
    target = target or ds.meta.get("target")
    protected = protected or ds.meta.get("protected")
    if not ds.attribute_names:
        raise FairlatentError(f"{ds.path}: the data set has no attributes (unlabelled), so there is no target × "
                              f"protected table to show")
    if not target or not protected:
        raise FairlatentError(
            f"{ds.path}: name the target and protected attributes (--target, --protected); "
            f"attributes are: {', '.join(ds.attribute_names)}"
        )
    ds.check_attributes([target, protected])
    return target, protected


def sample_grid(
    ds: Dataset,
    target: str,
    protected: str,
    *,
    split: str = "train",
    per_cell: int = 16,
    seed: int = 0,
    pad: int = 2,
) -> tuple[np.ndarray, list[str]]:
    """A grid image with one row per ``(target, protected)`` cell: (1,1), (1,0), (0,1), (0,0).

    Up to ``per_cell`` random images of ``split`` per row (fewer if the cell is smaller; short rows are
    left blank). Returns the uint8 grid (not upscaled) and one label per row, e.g.
    ``"Wearing_Hat=1, Eyeglasses=0 (n=700)"``.
    """
    ds.check_attributes([target, protected])
    idx = ds.split_indices(split)
    t = ds.labels(target, idx)
    g = ds.labels(protected, idx)
    r = seeded_rng(seed, "sample-grid")
    h, w = ds.images.shape[1:3]
    rows, labels = [], []
    for tv, gv in ((1, 1), (1, 0), (0, 1), (0, 0)):
        cell = idx[(t == tv) & (g == gv)]
        chosen = np.sort(r.choice(cell, size=min(per_cell, cell.size), replace=False)) if cell.size else cell
        row = np.full((h + pad, per_cell * (w + pad) + pad, 3), 255, np.uint8)
        for k, i in enumerate(chosen):
            x = pad + k * (w + pad)
            row[pad : pad + h, x : x + w] = ds.images[i]
        rows.append(row)
        labels.append(f"{target}={tv}, {protected}={gv} (n={cell.size})")
    grid = np.concatenate(rows + [np.full((pad, rows[0].shape[1], 3), 255, np.uint8)], axis=0)
    return grid, labels


def grid_scale(image_size: int, min_pixels: int = 96) -> int:
    """Nearest-neighbour upscaling factor so that each face is at least ``min_pixels`` wide."""
    return max(1, math.ceil(min_pixels / image_size))


def default_grid_path(dataset_path: str | os.PathLike) -> Path:
    """``./<data set name>_grid.png`` in the current directory: never beside (or inside) the user's data."""
    return Path.cwd() / f"{Path(dataset_path).resolve().name}_grid.png"
