"""Resolve the many things a metric input can be into one interface: batches of images, or features.

Accepted sources (``real`` or ``fake`` of :func:`compute_generative_metrics`):

- :class:`~fairlatent.metrics.generative.features.Features` or a float N×D array: precomputed features.
- a uint8 N×H×W×3 array: images (identity = content hash).
- a data set directory / :class:`fairlatent.data.Dataset` / :class:`DatasetSelection` (a split or row
  indices): images read batch by batch from the memory map (identity = path + size/mtime of images.npy +
  hash of the selected indices).
- a ``.npy`` file: images (uint8 4-D) or features (float 2-D), read without pickle.
- a generator (``GeneratorHandle`` from ``load_generator``, a directory ``load_generator`` accepts, or a
  :class:`GeneratorSamples` with its own count/seed/truncation): latents drawn with ``sample_latents(n,
  seed, truncation)`` and rendered batch by batch, so memory stays bounded.

Each resolved source has a data ``identity`` for the feature cache (``None`` = do not cache).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from fairlatent.errors import FairlatentError
from fairlatent.metrics.generative.features import Features
from fairlatent.utils.arrays import load_npy


@dataclass
class DatasetSelection:
    """Images of a data set directory, optionally one split and/or given row indices (within the split)."""

    path: str | os.PathLike
    split: str | None = None
    indices: np.ndarray | None = None


@dataclass
class GeneratorSamples:
    """``n`` images from a generator (handle or run directory) with latents from ``seed`` and truncation τ."""

    generator: Any
    n: int
    seed: int = 0
    truncation: float | None = None


@dataclass
class ResolvedSource:
    """Images available as ``batch(start, stop)`` (``n`` of them, ``image_size`` H×W), or ``features``."""

    description: str
    n: int
    identity: str | None
    batch: Callable[[int, int], np.ndarray] | None = None
    image_shape: tuple[int, int] | None = None
    features: np.ndarray | None = None
    extra: dict = field(default_factory=dict)


def _array_hash(arr: np.ndarray) -> str:
    h = hashlib.blake2b(digest_size=20)
    h.update(str((arr.dtype.str, arr.shape)).encode())
    h.update(np.ascontiguousarray(arr).view(np.uint8).reshape(-1).data)
    return h.hexdigest()


def _check_images(arr: np.ndarray, where: str) -> None:
    if arr.dtype != np.uint8 or arr.ndim != 4 or arr.shape[-1] != 3:
        raise FairlatentError(f"{where}: expected uint8 N×H×W×3 images, got {arr.dtype} {arr.shape}")


def _from_images(arr: np.ndarray, where: str, identity: str | None = None) -> ResolvedSource:
    _check_images(arr, where)
    return ResolvedSource(
        description=f"{where} ({len(arr)} images {arr.shape[1]}×{arr.shape[2]})",
        n=len(arr),
        identity=identity or f"images:{_array_hash(arr)}",
        batch=lambda a, b: np.asarray(arr[a:b]),
        image_shape=(arr.shape[1], arr.shape[2]),
    )


def _from_features(arr: np.ndarray, where: str, identity: str | None = None) -> ResolvedSource:
    arr = np.asarray(arr)
    if arr.ndim != 2:
        raise FairlatentError(f"{where}: features must be N×D, got shape {arr.shape}")
    return ResolvedSource(description=f"{where} ({arr.shape[0]}×{arr.shape[1]} features)", n=len(arr),
                          identity=identity, features=arr)


def _from_dataset(ds, split: str | None, indices, where: str) -> ResolvedSource:
    idx = np.arange(len(ds)) if split is None else ds.split_indices(split)
    if indices is not None:
        sel = np.asarray(indices)
        if sel.dtype == bool:
            if sel.size != idx.size:
                raise FairlatentError(f"{where}: boolean selection of length {sel.size} for {idx.size} rows")
            sel = np.flatnonzero(sel)
        sel = sel.astype(np.int64)
        if sel.size and (sel.min() < 0 or sel.max() >= idx.size):
            raise FairlatentError(f"{where}: row index {int(sel.max() if sel.max() >= idx.size else sel.min())} "
                                  f"out of range for {idx.size} rows")
        idx = idx[sel]
    images_file = Path(ds.path) / "images.npy"
    st = images_file.stat() if images_file.exists() else None
    ident = f"dataset:{Path(ds.path).resolve()}:{st.st_size if st else 0}:{st.st_mtime_ns if st else 0}:" \
            f"{hashlib.sha256(idx.tobytes()).hexdigest()[:24]}"
    contiguous = idx.size > 0 and idx[-1] - idx[0] == idx.size - 1 and np.all(np.diff(idx) == 1)

    def batch(a: int, b: int) -> np.ndarray:
        if contiguous:
            return np.asarray(ds.images[idx[a] : idx[a] + (b - a)])
        return np.asarray(ds.images[idx[a:b]])

    label = f"{ds.path}" + (f" [{split}]" if split else "") + (" [selection]" if indices is not None else "")
    return ResolvedSource(description=f"{label} ({idx.size} images)", n=int(idx.size), identity=ident,
                          batch=batch, image_shape=(ds.images.shape[1], ds.images.shape[2]))


def _generator_identity(handle, n: int, seed: int, truncation) -> str | None:
    path = getattr(handle, "path", None)
    if path is None:
        return None
    p = Path(path)
    files = [p] if p.is_file() else sorted(q for q in p.rglob("*") if q.is_file() and q.suffix in (".safetensors", ".json", ".pt"))
    stamp = ";".join(f"{q.name}:{q.stat().st_size}:{q.stat().st_mtime_ns}" for q in files)
    return f"generator:{p.resolve()}:{stamp}:n{n}:seed{seed}:tau{truncation}"


def _from_generator(handle, n: int | None, seed: int, truncation, where: str, batch_size: int) -> ResolvedSource:
    if n is None:
        raise FairlatentError(f"{where}: a generator needs a sample count (n_fake=..., CLI: --n)")
    latents = handle.sample_latents(int(n), seed, truncation=truncation)
    size = int(getattr(handle, "image_size", 0)) or None
    return ResolvedSource(
        description=f"generator {getattr(handle, 'path', type(handle).__name__)} ({n} samples, seed {seed}, "
                    f"truncation {truncation})",
        n=int(n),
        identity=_generator_identity(handle, int(n), seed, truncation),
        batch=lambda a, b: handle.render(latents[a:b], batch_size=batch_size),
        image_shape=(size, size) if size else None,
    )


def _is_generator(obj) -> bool:
    return hasattr(obj, "sample_latents") and hasattr(obj, "render")


def resolve_source(source, *, where: str, n: int | None = None, seed: int = 0, batch_size: int = 256,
                   device=None) -> ResolvedSource:
    """Turn any accepted input into a :class:`ResolvedSource` (see the module docstring)."""
    from fairlatent.data.dataset import Dataset, load_dataset

    if isinstance(source, Features):
        return _from_features(source.array, f"{where} features ({source.name})")
    if isinstance(source, GeneratorSamples):
        gen = source.generator
        if not _is_generator(gen):
            from fairlatent.models.generator import load_generator

            gen = load_generator(gen, device=device)
        return _from_generator(gen, source.n, source.seed, source.truncation, where, batch_size)
    if _is_generator(source):
        return _from_generator(source, n, seed, None, where, batch_size)
    if isinstance(source, DatasetSelection):
        return _from_dataset(load_dataset(source.path), source.split, source.indices, where)
    if isinstance(source, Dataset):
        return _from_dataset(source, None, None, where)
    if isinstance(source, np.ndarray):
        if source.dtype == np.uint8 and source.ndim == 4:
            return _from_images(source, where)
        if np.issubdtype(source.dtype, np.floating) and source.ndim == 2:
            return _from_features(source, f"{where} features")
        raise FairlatentError(
            f"{where}: an array must be uint8 N×H×W×3 images or float N×D features, got {source.dtype} {source.shape}"
        )
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if path.is_file() and path.suffix == ".npy":
            arr = load_npy(path)  # truncated, pickled or non-.npy files: a FairlatentError naming the file
            st = path.stat()
            ident = f"npy:{path.resolve()}:{st.st_size}:{st.st_mtime_ns}"
            if arr.dtype == np.uint8 and arr.ndim == 4:
                return _from_images(arr, str(path), identity=ident)
            if np.issubdtype(arr.dtype, np.floating) and arr.ndim == 2:
                return _from_features(np.asarray(arr), str(path), identity=ident)
            raise FairlatentError(f"{path}: expected uint8 N×H×W×3 images or float N×D features, got {arr.dtype} "
                                  f"{arr.shape}")
        if path.is_dir() and (path / "images.npy").is_file():
            return _from_dataset(load_dataset(path), None, None, where)
        if path.exists():
            from fairlatent.models.generator import load_generator

            return _from_generator(load_generator(path, device=device), n, seed, None, where, batch_size)
        raise FairlatentError(f"{where}: {path} does not exist")
    raise FairlatentError(
        f"{where}: cannot use a {type(source).__name__} as metric input; give a data set directory, images, "
        "features (Features(array)), a .npy file or a generator"
    )
