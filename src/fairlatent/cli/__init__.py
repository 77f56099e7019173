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
from fairlatent.utils.threads import apply_process_policy as apply_thread_policy

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


def main(argv: list[str] | None = None) -> None:
    """Entry point. Under torchrun, ranks other than 0 print nothing to stdout (rank 0 reports for all).

    First the thread policy (:mod:`fairlatent.utils.threads`): it must write ``OMP_NUM_THREADS`` and
    ``OMP_WAIT_POLICY`` before torch loads, so nothing imported by this module may import torch
    (``tests/test_threads.py`` checks it).
    """
    from fairlatent.cli.app import LAUNCH_ARGV

    argv = list(sys.argv[1:] if argv is None else argv)
    LAUNCH_ARGV[:] = argv  # what a data-parallel command re-launches under torchrun
    try:
        apply_thread_policy()
        if int(os.environ.get("RANK", "0")) > 0:
            sys.stdout = open(os.devnull, "w")
        app(args=argv, standalone_mode=True)
    except FairlatentError as exc:
        Console(stderr=True).print(f"[bold red]error:[/] {exc}", highlight=False, markup=True, soft_wrap=True)
        sys.exit(2)
