"""Bias audit: which units of a classifier detect the protected concept, how much the target decision leans
on them, and what happens to the target's AP, DEO and BA when they are switched off.

For one classifier and a (target, protected) pair:

* **dissection** of a layer over the probe set (:mod:`fairlatent.explain.dissect`);
* **protected units**: units whose best formula mentions a protected concept (positively or under
  ``AND NOT``) and explains the unit with IoU > 0.04 (network dissection's detector level). The protected
  concepts of an attribute are the attribute itself (image-level) and, when the data set says which part
  draws it (ToyFaces' ``attribute_parts``: ``Eyeglasses`` → ``glasses``), that part; a part name alone
  is accepted too;
* **contribution** of unit ``u`` to the target logit ``z``: ``mean_x Σ_{h,w} a_u(x)·∂z/∂a_u(x)`` over the
  evaluation split (gradient × activation). For the last stage of a fairlatent classifier (global average
  pool, then a linear head) this is exactly ``w_u · mean(a_u)``, i.e. how much the logit drops when the unit
  is zeroed; for earlier layers it is that drop to first order. Reported overall and per protected group;
  the protected units' share is ``Σ_{protected} |c_u| / Σ_all |c_u|``;
* **ablation**: the target's AP, DEO and BA on the evaluation split (medians and 95 % intervals of bootstrap
  resamples, :func:`fairlatent.metrics.bootstrap.bootstrap_metrics`) with the protected units zeroed, beside
  the intact classifier and a **control** (as many units, drawn at random from the others, zeroed): the
  paired differences (ablated − intact, same resamples) say whether switching off the protected units
  changes the bias, and the control whether any units would. Each variant's decision threshold is
  calibrated on the validation split (the pipeline's convention), so ablation is not judged by a threshold
  chosen for a different network.

:func:`audit_classifiers` does this for several classifiers on the same probe and concepts (baseline,
reweighted, latent-de-biased, …) so they can be compared side by side; :class:`AuditResult` holds it all,
``.to_json()`` for machines, :func:`fairlatent.explain.html.render_audit_section` for people.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd
import torch

from fairlatent.data.dataset import Dataset, load_dataset
from fairlatent.errors import FairlatentError
from fairlatent.explain.activations import capturing, image_batches, resolve_layer, zeroing_units
from fairlatent.explain.concepts import ConceptSet, dataset_concepts
from fairlatent.explain.dissect import DETECTOR_IOU, Dissection, dissect
from fairlatent.metrics.bootstrap import bootstrap_metrics, paired_difference
from fairlatent.metrics.fairness import calibrated_threshold
from fairlatent.models.classifier import ClassifierHandle, load_classifier
from fairlatent.utils.seed import rng as seeded_rng

#: The target metrics reported for every variant.
AUDIT_METRICS = ("AP", "DEO", "BA")


@dataclass
class ProtectedSpec:
    """The protected attribute as concepts (what units may detect) and as groups (what fairness compares)."""

    name: str
    concepts: list[str]
    group_attribute: str | None


def resolve_protected(concepts: ConceptSet, data: Dataset, protected: str) -> ProtectedSpec:
    """``Eyeglasses`` → concepts ``[Eyeglasses, glasses]``, groups from the ``Eyeglasses`` column; a part name
    (``glasses``) → that part, groups from the one attribute drawn there. Unknown names are errors."""
    names = concepts.names
    image_name = f"{protected}@image" if f"{protected}@image" in names else protected
    if image_name in names[concepts.n_spatial:]:
        found = [image_name]
        part = concepts.attribute_parts.get(protected)
        if part is not None:
            found.append(part)
        return ProtectedSpec(protected, found, protected)
    if protected in names[:concepts.n_spatial]:
        drawn_by = sorted(a for a, p in concepts.attribute_parts.items() if p == protected)
        group = drawn_by[0] if len(drawn_by) == 1 else (protected if protected in data.attribute_names else None)
        return ProtectedSpec(protected, [protected], group)
    raise FairlatentError(f"unknown protected concept {protected!r}; concepts of {data.path} are: {', '.join(names)}")


@dataclass
class ClassifierAudit:
    """The audit of one classifier (see the module docstring)."""

    name: str
    model_path: Path
    dissection: Dissection
    target: str | None = None
    protected: ProtectedSpec | None = None
    protected_units: list[int] = field(default_factory=list)
    contribution: np.ndarray | None = None  # (U,) mean over the evaluation split
    contribution_by_group: dict[str, np.ndarray] = field(default_factory=dict)
    metrics: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)  # variant -> metric -> stats
    differences: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)  # "ablated"/"control" − intact
    control_units: list[int] = field(default_factory=list)
    thresholds: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def unit_table(self) -> pd.DataFrame:
        """The dissection's per-unit table plus contribution and protected flags."""
        table = self.dissection.table()
        table.insert(0, "model", self.name)
        table["layer"] = self.dissection.layer
        prot = set(self.protected.concepts) if self.protected else set()
        names = self.dissection.concepts.names
        table["involves_protected"] = [
            bool(e.formula is not None and prot & {names[k] for k in e.formula.concepts()})
            for e in self.dissection.explanations
        ]
        table["protected_unit"] = table["unit"].isin(self.protected_units)
        if self.contribution is not None:
            table["contribution"] = self.contribution
            for g, v in self.contribution_by_group.items():
                table[f"contribution_{g}"] = v
        return table

    def summary(self) -> dict[str, Any]:
        d = self.dissection
        table = d.table()
        out: dict[str, Any] = {
            "model": str(self.model_path),
            "layer": d.layer,
            "units": d.units,
            "explained_units": int(table["explained"].sum()),
            "detector_units": int(table["detector"].sum()),
            "mean_iou_by_length": {str(k): float(v.mean()) for k, v in d.ious_by_length().items()},
            "timings_s": {k: round(v, 3) for k, v in d.timings_s.items()},
        }
        if self.protected is not None:
            out["protected_units"] = [int(u) for u in self.protected_units]
            out["protected_share"] = len(self.protected_units) / d.units
        if self.contribution is not None:
            total = float(np.abs(self.contribution).sum())
            part = float(np.abs(self.contribution[self.protected_units]).sum()) if self.protected_units else 0.0
            out["protected_contribution"] = float(self.contribution[self.protected_units].sum()) if self.protected_units else 0.0
            out["protected_contribution_share"] = part / total if total > 0 else None
            out["contribution_by_group"] = {g: float(v[self.protected_units].sum()) if self.protected_units else 0.0
                                            for g, v in self.contribution_by_group.items()}
        if self.metrics:
            out["metrics"] = self.metrics
            out["differences"] = self.differences
            out["control_units"] = [int(u) for u in self.control_units]
            out["decision_thresholds"] = self.thresholds
        if self.notes:
            out["notes"] = list(self.notes)
        return out


@dataclass
class AuditResult:
    """Audits of several classifiers on one probe set."""

    data_path: Path
    target: str | None
    protected: str | None
    settings: dict[str, Any]
    concepts: list[str]
    concept_kinds: list[str]
    audits: dict[str, ClassifierAudit]

    def unit_table(self) -> pd.DataFrame:
        return pd.concat([a.unit_table() for a in self.audits.values()], ignore_index=True)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": "fairlatent-explain",
            "version": 1,
            "data": str(self.data_path),
            "target": self.target,
            "protected": self.protected,
            "protected_concepts": (next(iter(self.audits.values())).protected.concepts
                                   if self.protected and self.audits else []),
            "settings": self.settings,
            "concepts": [{"name": n, "kind": k} for n, k in zip(self.concepts, self.concept_kinds)],
            "models": {name: a.summary() for name, a in self.audits.items()},
        }


# ------------------------------------------------------------------------------------------------------
# Passes over the evaluation split
# ------------------------------------------------------------------------------------------------------


def target_scores(handle: ClassifierHandle, layer: torch.nn.Module, images: np.ndarray, idx: np.ndarray,
                  column: int, units: list[int], batch_size: int) -> np.ndarray:
    """Sigmoid scores of the target with ``units`` of ``layer`` zeroed (none: the intact network)."""
    out = []
    with zeroing_units(layer, units), torch.inference_mode():
        for _, x in image_batches(images, idx, batch_size, handle.device):
            out.append(torch.sigmoid(handle.module(x)[:, column]).float().cpu())
    return torch.cat(out).numpy() if out else np.zeros(0, np.float32)


def target_contributions(handle: ClassifierHandle, layer: torch.nn.Module, images: np.ndarray, idx: np.ndarray,
                         column: int, batch_size: int, logits: list[np.ndarray] | None = None) -> np.ndarray:
    """``(n, U)``: per image, ``Σ_{h,w} a_u · ∂z/∂a_u`` for the target logit ``z`` (gradient × activation).

    ``logits``, when given, receives the target logits of this same forward pass (one array per batch), so
    the intact network's scores on ``idx`` need no second pass."""
    rows = []
    with capturing(layer) as store:
        for _, x in image_batches(images, idx, batch_size, handle.device):
            store.clear()
            with torch.enable_grad():
                logit = handle.module(x)[:, column]
                (grad,) = torch.autograd.grad(logit.sum(), store[0])
            rows.append((store[0].detach() * grad).sum(dim=(2, 3)).float().cpu())
            if logits is not None:
                logits.append(logit.detach().float().cpu().numpy())
    return torch.cat(rows).numpy()


def image_level_bounds(concepts: ConceptSet, names: list[str], quantile: float) -> dict[str, dict[str, float]]:
    """For each image-level concept of ``names``: its prevalence ``p`` on the probe and the highest IoU any
    unit can reach with it alone, ``min(q, p) / max(q, p)``.

    Why: an image-level concept covers every pixel of a share ``p`` of the probe, a unit's mask about a share
    ``q`` (the quantile) of all pixels, and IoU ≤ min/max of the two sizes. With ``q = 0.005`` a concept on
    more than 12.5 % of the images can never pass the detector level 0.04 alone (CelebA's ``Male``, ~42 %:
    at most 0.012); only a formula that narrows it (``Male AND …``) can."""
    out = {}
    for name in names:
        k = concepts.names.index(name)
        if k < concepts.n_spatial:
            continue
        p = float(concepts.image_labels[:, k - concepts.n_spatial].mean()) if len(concepts.indices) else 0.0
        out[name] = {"prevalence": p, "max_single_iou": (min(quantile, p) / max(quantile, p)) if p > 0 else 0.0}
    return out


def _check_split(data: Dataset, split: str, option: str) -> np.ndarray:
    idx = data.split_indices(split, required=False)
    if idx.size == 0:
        present = sorted(set(data.table["split"]))
        raise FairlatentError(f"{data.path}: split {split!r} ({option}) is empty; the data set has: {', '.join(present)}")
    return idx


def audit_classifier(name: str, model_path: str | os.PathLike, data: Dataset, concepts: ConceptSet, *,
                     target: str | None = None, protected: str | None = None, layer: str | None = None,
                     quantile: float = 0.005, length: int = 3, beam: int = 5, penalty: float = 1.0,
                     eval_split: str = "test", val_split: str = "val", n_boot: int = 500, seed: int = 0,
                     batch_size: int = 256, control: bool = True, device: str | None = None) -> ClassifierAudit:
    """Dissect one classifier and, given a target and a protected attribute, audit it (module docstring)."""
    handle = load_classifier(model_path, device=device)
    if data.images.shape[1:3] != (handle.image_size, handle.image_size):
        raise FairlatentError(f"{data.path}: images are {data.images.shape[1]}×{data.images.shape[2]} but classifier "
                              f"{handle.path} expects {handle.image_size}×{handle.image_size}")
    column = handle.column(target) if target is not None else None
    spec = resolve_protected(concepts, data, protected) if protected is not None else None
    if target is not None:
        data.check_attributes([target])
    layer_name, layer_mod = resolve_layer(handle.module, layer, handle.image_size)
    d = dissect(handle.module, data.images, concepts, layer=layer_name, quantile=quantile, length=length, beam=beam,
                penalty=penalty, batch_size=batch_size, image_size=handle.image_size)
    audit = ClassifierAudit(name=name, model_path=Path(model_path), dissection=d, target=target, protected=spec)
    if spec is None:
        return audit
    wanted = set(spec.concepts)
    names = concepts.names
    audit.protected_units = [u for u, e in enumerate(d.explanations)
                             if e.formula is not None and e.iou > DETECTOR_IOU
                             and wanted & {names[k] for k in e.formula.concepts()}]
    if column is None:
        return audit
    if spec.group_attribute is None:
        raise FairlatentError(f"protected part {protected!r} is drawn by several attributes or none; for the fairness "
                              "metrics name the protected attribute instead (e.g. --protected Eyeglasses)")
    ev = _check_split(data, eval_split, "--eval-split")
    y, g = data.labels(target, ev), data.labels(spec.group_attribute, ev)
    ev_logits: list[np.ndarray] = []
    per_image = target_contributions(handle, layer_mod, data.images, ev, column, batch_size, logits=ev_logits)
    audit.contribution = per_image.mean(axis=0)
    audit.contribution_by_group = {f"{spec.group_attribute}={v}": per_image[g == v].mean(axis=0)
                                   for v in (0, 1) if (g == v).any()}
    others = [u for u in range(d.units) if u not in set(audit.protected_units)]
    k = min(len(audit.protected_units), len(others))
    audit.control_units = sorted(int(u) for u in seeded_rng(seed, "explain-control", name).choice(others, k, replace=False)) \
        if control and k else []
    va = data.split_indices(val_split, required=False)
    if va.size == 0:
        audit.notes.append(f"no {val_split!r} split: decision thresholds calibrated on the {eval_split!r} split itself")
        va = ev
    variants = {"intact": [], "ablated": audit.protected_units}
    if audit.control_units:
        variants["control"] = audit.control_units
    position = np.full(len(data), -1, dtype=np.int64)
    position[concepts.indices] = np.arange(len(concepts.indices))

    def scores(rows: np.ndarray, units: list[int]) -> np.ndarray:
        if not units and (position[rows] >= 0).all():  # the intact network already ran on the probe
            logits = torch.from_numpy(np.ascontiguousarray(d.outputs[position[rows], column]))
            return torch.sigmoid(logits).numpy()
        if not units and rows is ev:  # ... or on the evaluation split, for the contributions
            return torch.sigmoid(torch.from_numpy(np.concatenate(ev_logits))).numpy()
        return target_scores(handle, layer_mod, data.images, rows, column, units, batch_size)

    samples = {}
    for variant, units in variants.items():
        t = calibrated_threshold(data.labels(target, va), scores(va, units))
        s = scores(ev, units)
        stats, samples[variant] = bootstrap_metrics(y, s, sensitive_features=g, threshold=t, n_boot=n_boot, seed=seed,
                                                    metrics=AUDIT_METRICS, return_samples=True)
        audit.metrics[variant] = stats
        audit.thresholds[variant] = float(t)
    for variant in variants:
        if variant != "intact":
            audit.differences[variant] = paired_difference(samples[variant], samples["intact"])
    return audit


def audit_classifiers(models: Mapping[str, str | os.PathLike], data_path: str | os.PathLike, *,
                      target: str | None = None, protected: str | None = None, layer: str | None = None,
                      split: str | None = None, eval_split: str = "test", val_split: str = "val",
                      quantile: float = 0.005, length: int = 3, beam: int = 5, penalty: float = 1.0,
                      n_boot: int = 500, seed: int = 0, batch_size: int = 256, control: bool = True,
                      max_images: int | None = None, device: str | None = None) -> AuditResult:
    """Audit several classifiers (``{name: model directory}``) on one data set.

    The probe is ``split`` of the data set (default: all its images); concepts are its part masks and
    attribute columns. ``target`` and ``protected`` default to the data set's own (``meta.json``, as ToyFaces
    records them); without them only the dissection is done. The fairness metrics are computed on
    ``eval_split`` with thresholds calibrated on ``val_split``. ``max_images`` bounds the probe (and so the
    dissection's cost) to that many images drawn at random (seeded by ``seed``), in data set order; the
    evaluation split is never subsampled."""
    if not models:
        raise FairlatentError("no classifier to audit: give at least one model")
    data = load_dataset(data_path)
    target = target if target is not None else data.meta.get("target")
    protected = protected if protected is not None else data.meta.get("protected")
    if target is not None and target not in data.attribute_names:
        data.check_attributes([target])
    idx = np.arange(len(data)) if split is None else _check_split(data, split, "--split")
    if max_images is not None:
        if int(max_images) < 1:
            raise FairlatentError(f"max_images must be >= 1, got {max_images}")
        if idx.size > int(max_images):
            idx = np.sort(seeded_rng(seed, "explain-probe").choice(idx, int(max_images), replace=False))
    concepts = dataset_concepts(data, idx)
    if protected is not None:
        resolve_protected(concepts, data, protected)  # fail before any network runs
    bound_notes = []
    if protected is not None:
        spec = resolve_protected(concepts, data, protected)
        bounds = image_level_bounds(concepts, spec.concepts, float(quantile))
        if bounds and len(bounds) == len(spec.concepts) and all(b["max_single_iou"] <= DETECTOR_IOU for b in bounds.values()):
            bound_notes = [f"{c} is image-level and on {100 * b['prevalence']:.1f} % of the probe: at quantile {quantile:g} "
                           f"a unit's IoU with it alone is at most {b['max_single_iou']:.3f} (≤ {DETECTOR_IOU}), so only a "
                           f"formula that narrows it (AND) can reach the detector level; raise the quantile to see "
                           f"single-concept detectors" for c, b in bounds.items()]
    audits = {}
    for name, path in models.items():
        audits[name] = audit_classifier(name, path, data, concepts, target=target, protected=protected, layer=layer,
                                        quantile=quantile, length=length, beam=beam, penalty=penalty,
                                        eval_split=eval_split, val_split=val_split, n_boot=n_boot, seed=seed,
                                        batch_size=batch_size, control=control, device=device)
        audits[name].notes.extend(bound_notes)
    settings = dict(layer=layer, split=split, max_images=max_images, eval_split=eval_split, val_split=val_split, quantile=quantile,
                    length=length, beam=beam, penalty=penalty, n_boot=n_boot, seed=seed, detector_iou=DETECTOR_IOU,
                    probe_images=int(len(idx)),
                    image_level_rule="an attribute covers every pixel of the images that have it (network "
                                     "dissection's rule for scene labels)",
                    threshold_rule="per unit, np.percentile(100 - 100*quantile) of its activations over all probe "
                                   "images and positions; unit mask = bilinearly upsampled map > threshold")
    return AuditResult(data_path=Path(data_path), target=target, protected=protected, settings=settings,
                       concepts=list(concepts.names), concept_kinds=concepts.kinds, audits=audits)
