"""Writing an audit to a folder: ``units.csv`` (one row per model and unit), ``summary.json`` and
``explain.html`` (self-contained), all at once through an atomic directory, so a folder that exists is
complete and an interrupted run leaves nothing half-written."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from fairlatent.explain.audit import AuditResult
from fairlatent.explain.html import render_audit_page
from fairlatent.utils.io import atomic_directory, write_json, write_text

UNITS_CSV, SUMMARY_JSON, PAGE_HTML = "units.csv", "summary.json", "explain.html"


def write_audit(result: AuditResult, out: str | os.PathLike, *, images: np.ndarray | None = None,
                overwrite: bool = False) -> Path:
    """Write the three files into ``out`` (replaced only with ``overwrite`` and only if fairlatent wrote it)."""
    out = Path(out)
    page = render_audit_page(result, images)
    with atomic_directory(out, overwrite=overwrite) as tmp:
        result.unit_table().to_csv(tmp / UNITS_CSV, index=False, float_format="%.6g")
        write_json(tmp / SUMMARY_JSON, result.to_json())
        write_text(tmp / PAGE_HTML, page)
    return out
