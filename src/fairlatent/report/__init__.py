"""Reports rendered from a finished run folder: a self-contained report.html, plots and the terminal tables.

The numbers come from ``report.json``, which the pipeline writes (:mod:`fairlatent.pipeline.summary`); the
report never touches a live pipeline, so ``build_report(run_dir)`` re-renders any run folder.
"""

from fairlatent.report.build import build_report, load_report

__all__ = ["build_report", "load_report"]
