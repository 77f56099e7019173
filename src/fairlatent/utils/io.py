"""Atomic file and directory writes.

Every stage of fairlatent writes its outputs to a temporary name beside the destination and renames it
into place only when complete, so an interrupted write never leaves a half-written file or data set that a
later stage would read as valid.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np


def _tmp_sibling(path: Path, is_dir: bool) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if is_dir:
        return Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=path.parent)
    os.close(fd)
    return Path(name)


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike, *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary directory that becomes ``path`` when the block exits without an exception.

    On an exception the temporary directory is removed and ``path`` is left as it was. With
    ``overwrite=True`` an existing ``path`` is replaced (moved aside, then deleted after the rename).
    """
    path = Path(path)
    if path.exists() and not overwrite:
        from fairlatent.errors import FairlatentError

        raise FairlatentError(f"{path} already exists; pass overwrite=True (CLI: --overwrite) to replace it")
    tmp = _tmp_sibling(path, is_dir=True)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if path.exists():
        old = path.with_name(f".{path.name}.old-{os.getpid()}")
        os.replace(path, old)
    os.replace(tmp, path)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary file path that replaces ``path`` when the block exits without an exception."""
    path = Path(path)
    tmp = _tmp_sibling(path, is_dir=False)
    try:
        yield tmp
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_file(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_file(path) as tmp:
        tmp.write_bytes(data)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot serialise {type(obj).__name__} to JSON")


def write_json(path: str | os.PathLike, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    from fairlatent.errors import FairlatentError

    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FairlatentError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise FairlatentError(f"{path}: is a directory, expected a JSON file") from None
    except PermissionError:
        raise FairlatentError(f"{path}: permission denied") from None
    except UnicodeDecodeError as exc:
        raise FairlatentError(f"{path}: not UTF-8 text (byte {exc.start}: {exc.reason})") from None
    except json.JSONDecodeError as exc:
        raise FairlatentError(f"{path}: not valid JSON ({exc})") from None


def save_npy(path: str | os.PathLike, array: np.ndarray) -> None:
    """Save an array atomically (``np.save`` to a temporary name, then rename)."""
    with atomic_file(path) as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, array, allow_pickle=False)
