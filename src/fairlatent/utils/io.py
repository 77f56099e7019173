"""Atomic file and directory writes, and the checks that keep them from destroying what is not theirs.

Every stage of fairlatent writes its outputs to a temporary name beside the destination and renames it
into place only when complete, so an interrupted write never leaves a half-written file or data set that a
later stage would read as valid.

Temporary names carry the writer's pid (``.NAME.tmp-<pid>-<random>``, ``.NAME.old-<pid>-<random>``): a
writer killed outright (SIGKILL, power loss) cannot remove its own, so the next atomic write of ``NAME``
removes those whose process is gone. Temporaries are created with the permissions a plain ``open()`` or
``mkdir()`` would give under the current umask (``tempfile`` would make them 0600/0700, and the rename
would carry that onto the user's output).

Replacing a directory (``overwrite=True``) deletes it, so only a directory fairlatent wrote may be replaced:
one holding the :data:`MARKER` file that :func:`atomic_directory` puts into every directory it creates, or
(written before the marker existed) a data set's ``meta.json`` or a checkpoint's ``state.json``. Anything
else, say a folder of the user's source images, is refused by name.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import shutil
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping

import numpy as np

from fairlatent.utils.lock import LOCK_NAME
from fairlatent.utils.process import pid_alive

# Written into every directory atomic_directory creates: "fairlatent wrote this; it may replace it".
MARKER = ".fairlatent"
_MARKER_TEXT = "written by fairlatent; `--overwrite` may replace this folder\n"
# Files fairlatent puts into a folder before claiming it (the folder lock of fairlatent.utils.lock), and the
# temporaries of its atomic writes (another rank may be writing the marker at that moment).
_OWN_NAMES = frozenset({MARKER, LOCK_NAME})
_TEMPORARY = re.compile(r"^\..+\.(tmp|old)-\d+-[0-9a-f]+$")


def _ours(name: str) -> bool:
    return name in _OWN_NAMES or bool(_TEMPORARY.match(name))


def clean_stale_temporaries(path: Path) -> list[Path]:
    """Remove ``.NAME.tmp-<pid>-*`` / ``.NAME.old-<pid>-*`` beside ``path`` whose writer pid is dead.

    Only names of this module's pattern are touched, and only when the pid in the name no longer runs, so a
    concurrent writer's temporary survives. Returns what was removed."""
    removed = []
    try:
        entries = list(path.parent.iterdir())
    except OSError:
        return removed
    for kind in ("tmp", "old"):
        prefix = f".{path.name}.{kind}-"
        for entry in entries:
            if not entry.name.startswith(prefix):
                continue
            pid_text = entry.name[len(prefix):].split("-", 1)[0]
            if not pid_text.isdigit() or int(pid_text) == os.getpid() or pid_alive(int(pid_text)):
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    entry.unlink()
            removed.append(entry)
    return removed


def _tmp_sibling(path: Path, is_dir: bool, kind: str = "tmp") -> Path:
    """A new hidden sibling of ``path`` named with this pid, created with umask-respecting permissions."""
    path.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_temporaries(path)
    for _ in range(100):
        tmp = path.with_name(f".{path.name}.{kind}-{os.getpid()}-{os.urandom(4).hex()}")
        try:
            if is_dir:
                os.mkdir(tmp, 0o777)  # the umask applies, as for a plain mkdir
            else:
                os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:
            continue
        return tmp
    raise FileExistsError(errno.EEXIST, "no free temporary name", str(path))


def is_fairlatent_directory(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a directory fairlatent wrote (or an empty one), which ``overwrite`` may replace."""
    path = Path(path)
    if not path.is_dir() or path.is_symlink():
        return False
    if (path / MARKER).is_file() or not any(path.iterdir()):
        return True
    for name, key in (("meta.json", "format"), ("state.json", "_tensors_file")):
        try:
            record = json.loads((path / name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(record, dict) and (str(record.get(key, "")).startswith("fairlatent-") if key == "format"
                                         else key in record):
            return True
    return False


def check_replaceable(path: str | os.PathLike, overwrite: bool, *, option: str = "--overwrite") -> None:
    """Raise FairlatentError unless writing the directory ``path`` destroys nothing it should not.

    A missing ``path`` is fine; an existing one needs ``overwrite`` and must be a directory fairlatent wrote
    (:func:`is_fairlatent_directory`). ``option`` is how the caller's users ask for a replacement."""
    from fairlatent.errors import FairlatentError

    path = Path(path)
    if not path.exists() and not path.is_symlink():
        return
    if not overwrite:
        raise FairlatentError(f"{path} already exists; pass {option} to replace it, or choose another output")
    if not is_fairlatent_directory(path):
        what = "a file" if not path.is_dir() or path.is_symlink() else "a folder fairlatent did not write"
        raise FairlatentError(f"{path} is {what} (no {MARKER} marker); refusing to replace it even with "
                              f"{option}: move it away or choose another output")


def _resolved(p: str | os.PathLike) -> Path:
    return Path(os.path.abspath(os.path.realpath(os.path.expanduser(str(p)))))


def check_output_distinct(out: str | os.PathLike, inputs: Mapping[str, Any], *, option: str = "--out") -> None:
    """Raise FairlatentError when the output ``out`` is, or is a folder above, one of the ``inputs``.

    ``inputs`` maps an option name (for the message) to a path, a list of paths or None. Writing ``out``
    would then overwrite the input, or replacing the folder ``out`` would delete it (symlinks resolved). A new
    ``out`` inside an input folder is fine, and so is a folder fairlatent wrote there (a run resuming); any
    other existing one there is part of the input (a file of a data set, a folder of the user's images) and
    is refused."""
    from fairlatent.errors import FairlatentError

    target = _resolved(out)
    for name, value in inputs.items():
        values: Iterable[Any] = value if isinstance(value, (list, tuple)) else [value]
        for v in values:
            if v is None or str(v) == "":
                continue
            src = _resolved(v)
            if src == target:
                raise FairlatentError(f"{option} {out} is the {name} input {v}; writing it would destroy the input: "
                                      "choose another output")
            if target in src.parents:
                raise FairlatentError(f"{option} {out} contains the {name} input {v}; replacing it would delete "
                                      "the input: choose another output")
            if src in target.parents and (target.exists() or target.is_symlink()) and not is_fairlatent_directory(target):
                raise FairlatentError(f"{option} {out} is part of the {name} input {v}; replacing it would damage "
                                      "the input: choose another output")


def check_output_file(path: str | os.PathLike, *, suffixes: tuple[str, ...], overwrite: bool,
                      option: str = "--out", what: str = "") -> None:
    """Raise FairlatentError unless ``path`` may receive a file of the given kind.

    The extension must be one of ``suffixes`` (a PNG in ``x.csv`` is an error), ``path`` must not be a folder,
    and an existing file needs ``overwrite``."""
    from fairlatent.errors import FairlatentError

    path = Path(path)
    kind = what or suffixes[0].lstrip(".").upper()
    if path.suffix.lower() not in suffixes:
        raise FairlatentError(f"{option} {path}: the output is {kind}; give a file name ending in "
                              f"{' or '.join(suffixes)}")
    if path.is_dir():
        raise FairlatentError(f"{option} {path}: is a directory; give a file name ending in {suffixes[0]}")
    if (path.exists() or path.is_symlink()) and not overwrite:
        raise FairlatentError(f"{option} {path} already exists; pass --overwrite to replace it")


def claim_output_directory(path: str | os.PathLike, *, record_format: str | None = None,
                           recognise: Callable[[Path], bool] | None = None, option: str = "--out",
                           write: bool = True) -> Path:
    """Create (or adopt) the folder a training run writes into step by step, and mark it as fairlatent's.

    Training writes its outputs one by one into ``path`` (checkpoint, log, samples, weights), so it cannot
    use :func:`atomic_directory`; instead it claims the folder first. A new or empty folder, one with the
    :data:`MARKER`, or one whose ``config.json`` is a record of ``record_format`` or that ``recognise`` accepts
    (both for folders written before the marker existed) is fairlatent's; a folder of anything else (the user's project, a data set, a thesis) is refused
    by name before a single file is written there, so nothing of the user's can be overwritten or deleted.

    Under data parallelism every rank calls it (all of them refuse alike, none is left waiting in a
    collective for a rank that stopped) and only the writing rank passes ``write=True``."""
    from fairlatent.errors import FairlatentError

    path = Path(path)
    if path.exists() and not path.is_dir():
        raise FairlatentError(f"{option} {path}: is a file, not a folder; choose a new folder for the output")
    if path.is_dir() and not (path / MARKER).is_file() and any(not _ours(p.name) for p in path.iterdir()):
        try:
            record = json.loads((path / "config.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            record = None
        interrupted = (path / "checkpoint" / "state.json").is_file()  # a run interrupted before its record
        known = (record_format is not None and isinstance(record, dict) and record.get("format") == record_format) \
            or (recognise is not None and recognise(path))
        if not interrupted and not known:
            found = sorted(p.name for p in path.iterdir() if not _ours(p.name))
            raise FairlatentError(f"{option} {path}: holds files fairlatent did not write (e.g. {', '.join(found[:3])})"
                                  "; choose a new or empty folder")
    if write:
        path.mkdir(parents=True, exist_ok=True)
        if not (path / MARKER).is_file():
            write_text(path / MARKER, _MARKER_TEXT)
    return path


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike, *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary directory that becomes ``path`` when the block exits without an exception.

    On an exception the temporary directory is removed and ``path`` is left as it was. With
    ``overwrite=True`` an existing ``path`` that fairlatent wrote is replaced (moved aside, then deleted after
    the rename); any other existing ``path`` is refused (:func:`check_replaceable`).
    """
    path = Path(path)
    check_replaceable(path, overwrite, option="--overwrite (overwrite=True in Python)")
    tmp = _tmp_sibling(path, is_dir=True)
    try:
        (tmp / MARKER).write_text(_MARKER_TEXT, encoding="utf-8")
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    try:
        if path.exists():
            check_replaceable(path, overwrite, option="--overwrite (overwrite=True in Python)")  # it may have appeared
            old = _tmp_sibling(path, is_dir=True, kind="old")
            os.replace(path, old)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and not path.exists():
            os.replace(old, path)  # put the previous version back
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary file path that replaces ``path`` when the block exits without an exception.

    The temporary is removed however the block or the final rename fails (a folder at ``path``, a full
    disk), so nothing half-written stays behind."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, "is a directory, expected a file", str(path))
    tmp = _tmp_sibling(path, is_dir=False)
    try:
        yield tmp
        try:
            os.replace(tmp, path)
        except OSError as exc:  # name the destination, not the temporary
            raise type(exc)(exc.errno, exc.strerror, str(path)) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


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
    """Write ``obj`` as strict JSON: a NaN or infinity becomes ``null`` (Python's bare ``NaN`` token is not
    JSON, and one of them makes the whole file unreadable to browsers, ``jq`` and most languages). Writers
    whose readers need to know *why* a value is missing record the reasons themselves
    (:func:`fairlatent.utils.json_safe.nulls_with_reasons`, as the pipeline's ``report.json`` does)."""
    from fairlatent.utils.json_safe import nulls_with_reasons

    strict, _ = nulls_with_reasons(obj)
    write_text(path, json.dumps(strict, indent=2, sort_keys=False, default=_json_default, allow_nan=False) + "\n")


@contextlib.contextmanager
def user_file_errors(path: str | os.PathLike, *, what: str = "file") -> Iterator[None]:
    """Turn the errors of opening a file the user gave (missing, a directory, no permission) into one
    FairlatentError naming the path; ``what`` says what was expected ("config file", ".npy file", …)."""
    from fairlatent.errors import FairlatentError

    try:
        yield
    except FileNotFoundError:
        raise FairlatentError(f"{path}: {what} not found") from None
    except IsADirectoryError:
        raise FairlatentError(f"{path}: is a directory, not a {what}") from None
    except PermissionError:
        raise FairlatentError(f"{path}: permission denied") from None


def read_user_text(path: str | os.PathLike, *, what: str = "file") -> str:
    """The UTF-8 text of a file the user gave; opening errors (:func:`user_file_errors`) and other bytes than
    UTF-8 are a FairlatentError naming the path."""
    from fairlatent.errors import FairlatentError

    path = Path(path)
    with user_file_errors(path, what=what):
        try:
            return path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise FairlatentError(f"{path}: not UTF-8 text (byte {exc.start}: {exc.reason})") from None


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """SHA-256 of a file's bytes, read in chunks (weights and checkpoints can be large)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def read_json(path: str | os.PathLike) -> Any:
    """The parsed JSON of a file (see :func:`read_user_text` for the errors naming it)."""
    from fairlatent.errors import FairlatentError

    text = read_user_text(path, what="JSON file")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise FairlatentError(f"{path}: not valid JSON ({exc})") from None


def save_npy(path: str | os.PathLike, array: np.ndarray) -> None:
    """Save an array atomically (``np.save`` to a temporary name, then rename)."""
    with atomic_file(path) as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, array, allow_pickle=False)
