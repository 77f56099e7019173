"""The ``fairlatent`` command: a thin layer over the same functions as the Python API.

Command modules (one per area) register on the typer apps of :mod:`fairlatent.cli.app` when imported.
User errors (:class:`fairlatent.FairlatentError`) print one clear line and exit with status 2.
"""

from __future__ import annotations

import os
import sys

from rich.console import Console

from fairlatent.cli.app import app
from fairlatent.errors import FairlatentError

# Importing registers the commands.
from fairlatent.cli import (  # noqa: E402,F401
    benchmark_commands,
    classifier_commands,
    data_commands,
    data_real_commands,
    metrics_commands,
    model_commands,
    pipeline_commands,
)

__all__ = ["app", "main"]


# Commands that run data-parallel under torchrun, and so take ``--nproc N`` to launch themselves on N processes.
DATA_PARALLEL_COMMANDS = ("train-gan", "train-classifier")


def _nproc(argv: list[str]) -> int | None:
    """The value of ``--nproc N`` / ``--nproc=N`` in ``argv`` (None when absent)."""
    for i, a in enumerate(argv):
        value = argv[i + 1] if a == "--nproc" and i + 1 < len(argv) else a[len("--nproc="):] if a.startswith("--nproc=") else None
        if a == "--nproc" and value is None:
            raise FairlatentError("--nproc needs a number of processes")
        if value is not None:
            try:
                return int(value)
            except ValueError:
                raise FairlatentError(f"--nproc: {value!r} is not a whole number") from None
    return None


def main(argv: list[str] | None = None) -> None:
    """Entry point. ``--nproc N`` on a data-parallel command re-launches it under torchrun on N processes;
    under torchrun, ranks other than 0 print nothing to stdout (rank 0 reports for all)."""
    from fairlatent.train.distributed import env_world_size, launch, strip_nproc

    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        nproc = _nproc(argv)
        if nproc is not None:
            command = next((a for a in argv if not a.startswith("-")), None)
            if command not in DATA_PARALLEL_COMMANDS:
                raise FairlatentError(f"--nproc: {command!r} does not run data-parallel; "
                                      f"commands that do: {', '.join(DATA_PARALLEL_COMMANDS)}")
            if env_world_size() <= 1 and nproc > 1:
                sys.exit(launch(strip_nproc(argv), nproc))
            argv = strip_nproc(argv)
        if int(os.environ.get("RANK", "0")) > 0:
            sys.stdout = open(os.devnull, "w")
        app(args=argv, standalone_mode=True)
    except FairlatentError as exc:
        Console(stderr=True).print(f"[bold red]error:[/] {exc}", highlight=False, markup=True, soft_wrap=True)
        sys.exit(2)
