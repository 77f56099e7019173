"""Reading ``.npy`` files a user hands in, with one error that names the file and what is wrong with it.

Why one function: a data set's ``images.npy``, a ``fairlatent metrics`` input and a run's sample file can
each be truncated by an interrupted copy, pickled by ``np.save`` of an object array, or not an array at all;
numpy answers with half a dozen exception types (``ValueError`` "mmap length is greater than file size",
``EOFError``, "This file contains pickled (object) data", "Failed to interpret file ... as a pickle"...).
Every reader goes through :func:`load_npy`, so every reader turns them into the same one-line
:class:`~fairlatent.errors.FairlatentError`. Pickles are never loaded (``allow_pickle=False``): a ``.npy``
from elsewhere must not run code.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from fairlatent.errors import FairlatentError
from fairlatent.utils.io import user_file_errors

NPY_MAGIC = b"\x93NUMPY"


def load_npy(file: str | os.PathLike, *, mmap: bool = True) -> np.ndarray:
    """The array in ``file`` (memory-mapped read-only when ``mmap``), or :class:`FairlatentError` naming the
    file when it is missing, empty, not a ``.npy`` file, truncated, or holds Python objects."""
    file = Path(file)
    with user_file_errors(file, what=".npy file"), open(file, "rb") as fh:
        head = fh.read(len(NPY_MAGIC))
    if not head:
        raise FairlatentError(f"{file}: empty file, not a .npy array")
    if head != NPY_MAGIC:
        raise FairlatentError(f"{file}: not a .npy file (no NumPy header; save arrays with numpy.save)")
    try:
        arr = np.load(file, mmap_mode="r" if mmap else None, allow_pickle=False)
    except ValueError as exc:
        text = str(exc)
        if "pickle" in text or "Python objects" in text or "object" in text:
            raise FairlatentError(f"{file}: holds Python objects (object dtype); fairlatent reads only numeric "
                                  "arrays and never unpickles") from None
        raise FairlatentError(f"{file}: unreadable or truncated array ({text})") from None
    except (OSError, EOFError) as exc:
        raise FairlatentError(f"{file}: unreadable or truncated array ({exc})") from None
    if arr.dtype.hasobject:  # defensive: numpy refuses these above, but a subarray dtype could slip through
        raise FairlatentError(f"{file}: holds Python objects (object dtype); fairlatent reads only numeric arrays")
    return arr


__all__ = ["load_npy"]
