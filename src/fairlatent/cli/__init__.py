"""The ``fairlatent`` command: a thin layer over the same functions as the Python API.

Command modules (one per area) register on the typer apps of :mod:`fairlatent.cli.app` when imported.
User errors (:class:`fairlatent.FairlatentError`) print one clear line and exit with status 2, and so do
errors of the environment that name a path (a full disk, no permission, a read-only file system, a missing
folder: see :data:`ENVIRONMENT_ERRNOS`): the user fixes those, not the code. Any other exception is a bug
and keeps its traceback. Warnings print as one ``warning: …`` line, without the source line Python adds.
"""

from __future__ import annotations

import errno
import os
import sys
import warnings

from rich.console import Console
from rich.markup import escape

from fairlatent.cli.app import app
from fairlatent.errors import FairlatentError
from fairlatent.utils.threads import apply_process_policy as apply_thread_policy

# Importing registers the commands.
from fairlatent.cli import (  # noqa: E402,F401
    benchmark_commands,
    classifier_commands,
    data_commands,
    data_real_commands,
    explain_commands,
    metrics_commands,
    model_commands,
    oversample_commands,
    pipeline_commands,
    tabular_commands,
    translator_commands,
)

__all__ = ["ENVIRONMENT_ERRNOS", "app", "main"]

# OSErrors that describe the user's machine rather than a bug, when they name the path concerned.
ENVIRONMENT_ERRNOS = frozenset(
    getattr(errno, name) for name in (
        "ENOSPC", "EDQUOT", "EACCES", "EPERM", "EROFS", "ENAMETOOLONG", "ENOTDIR", "EISDIR", "EEXIST", "ENOENT",
        "ENOTEMPTY", "EXDEV", "EMFILE", "ENFILE", "EFBIG", "EIO", "ELOOP", "ETXTBSY", "EBUSY",
    ) if hasattr(errno, name)
)  # fmt: skip


def environment_error_line(exc: BaseException) -> str | None:
    """``"<reason>: <path>"`` for an OSError of the environment naming a path (else None: a bug)."""
    if not isinstance(exc, OSError) or exc.errno not in ENVIRONMENT_ERRNOS or not exc.filename:
        return None
    reason = exc.strerror or os.strerror(exc.errno)
    path = os.fsdecode(exc.filename)
    if exc.filename2:
        path += f" -> {os.fsdecode(exc.filename2)}"
    return f"{reason}: {path}"


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """``warnings.showwarning`` for the CLI: ``warning: <message>`` on one line, no source line."""
    kind = "" if category is UserWarning else f"{category.__name__}: "
    text = " ".join(str(message).split())
    try:
        (file or sys.stderr).write(f"warning: {kind}{text}\n")
    except (OSError, ValueError):
        pass  # stderr closed: a warning is not worth failing for


def main(argv: list[str] | None = None) -> None:
    """Entry point. Under torchrun, ranks other than 0 print nothing to stdout (rank 0 reports for all).

    First the thread policy (:mod:`fairlatent.utils.threads`): it must write ``OMP_NUM_THREADS`` and
    ``OMP_WAIT_POLICY`` before torch loads, so nothing imported by this module may import torch
    (``tests/test_threads.py`` checks it).
    """
    from fairlatent.cli.app import LAUNCH_ARGV

    argv = list(sys.argv[1:] if argv is None else argv)
    LAUNCH_ARGV[:] = argv  # what a data-parallel command re-launches under torchrun
    shown_by, warnings.showwarning = warnings.showwarning, _show_warning
    try:
        apply_thread_policy()
        if int(os.environ.get("RANK", "0")) > 0:
            sys.stdout = open(os.devnull, "w")
        app(args=argv, standalone_mode=True)
    except FairlatentError as exc:
        rank = int(os.environ.get("RANK", "0"))  # under torchrun every rank says why it stopped
        where = f"[rank {rank}] " if rank > 0 else ""
        Console(stderr=True).print(f"[bold red]error:[/] {where}{escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except OSError as exc:
        line = environment_error_line(exc)
        if line is None:
            raise
        Console(stderr=True).print(f"[bold red]error:[/] {escape(line)}", highlight=False, soft_wrap=True)
        sys.exit(2)
    finally:
        warnings.showwarning = shown_by  # in-process callers (tests) get their own hook back
