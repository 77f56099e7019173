"""fairlatent.explain: where bias lives inside a classifier.

Network dissection (Bau et al., CVPR 2017) and Compositional Explanations of Neurons (Mu & Andreas, NeurIPS
2020; reference code jayelm/compexp) on fairlatent classifiers and data sets, and a bias audit built on them:
which units detect the protected concept, how much the target logit leans on them, and what AP, DEO and BA
become when they are zeroed. One concept per module:

* :mod:`~fairlatent.explain.activations` — a layer by module path, its maps streamed batch by batch;
* :mod:`~fairlatent.explain.concepts` — part masks and image-level attributes as concepts;
* :mod:`~fairlatent.explain.quantile` — exact per-unit top-quantile thresholds in bounded memory;
* :mod:`~fairlatent.explain.tally` — pooled counts per pixel pattern, from which every IoU follows;
* :mod:`~fairlatent.explain.formula` / :mod:`~fairlatent.explain.search` — formulas and compexp's beam search;
* :mod:`~fairlatent.explain.reference` — the plain full-mask reference it is checked and timed against;
* :mod:`~fairlatent.explain.dissect` — one layer, end to end;
* :mod:`~fairlatent.explain.audit` — the bias audit of several classifiers;
* :mod:`~fairlatent.explain.html` / :mod:`~fairlatent.explain.output` — the page and the output folder.

Importing this package does not import torch-heavy submodules until their names are used.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AuditResult", "ClassifierAudit", "Dissection", "audit_classifiers", "dataset_concepts", "dissect",
    "render_audit_page", "render_audit_section", "write_audit",
]

_WHERE = {
    "AuditResult": "audit", "ClassifierAudit": "audit", "audit_classifiers": "audit",
    "Dissection": "dissect", "dissect": "dissect", "dataset_concepts": "concepts",
    "render_audit_page": "html", "render_audit_section": "html", "write_audit": "output",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(f"fairlatent.explain.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'fairlatent.explain' has no attribute {name!r}")
