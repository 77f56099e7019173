"""The pipeline's optional ``audit`` stage: where the bias lives inside every trained classifier of a run.

After ``evaluate``, :func:`stage_audit` runs :func:`fairlatent.explain.audit_classifiers` on the classifiers of
every training method of the run (baseline, reweighting, latent_debias, …; post-processing methods train no
network and are skipped) side by side, on the run's data set with its target and protected attribute, and
writes into ``RUN/audit/``:

* ``explain/`` — ``units.csv``, ``summary.json`` and the self-contained ``explain.html``
  (:func:`fairlatent.explain.write_audit`);
* ``section.html`` — the same audit as one HTML ``<section>`` (tables and the units' pictures) that
  ``report.html`` embeds.

Its key is the ``[audit]`` section (``enabled`` aside), the run's target, protected attribute and seed, the
evaluation's ``n_boot`` when the section leaves ``n_boot`` unset, and the keys of the ``data`` and
``train_<method>`` stages: retraining a classifier re-audits, re-evaluating does not.

:func:`run_inputs` reads the same things back from a finished run folder (``fairlatent explain --run``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field

from fairlatent.errors import FairlatentError
from fairlatent.utils.settings import StrictSettings

if TYPE_CHECKING:  # pragma: no cover
    from fairlatent.pipeline.run import Pipeline

SECTION_HTML = "section.html"
EXPLAIN_DIR = "explain"


class AuditConfig(StrictSettings):
    """``[audit]``: compositional explanations of every trained classifier's units and the bias audit on them
    (``docs/explain.md``). Off unless ``enabled = true``."""

    enabled: bool = Field(False, description="run the audit stage after evaluate")
    layer: str | None = Field(None, description="module path of the layer, e.g. blocks.1 (default: the last "
                                                "convolutional stage)")
    quantile: float = Field(0.005, gt=0.0, lt=1.0, description="top share of each unit's activations above its "
                                                              "threshold")
    length: int = Field(3, ge=1, description="maximum concepts per formula")
    beam: int = Field(5, ge=1, description="beam size of the formula search")
    penalty: float = Field(1.0, gt=0.0, le=1.0, description="complexity penalty: score = IoU * penalty^(len-1)")
    n_boot: int | None = Field(None, ge=10, description="bootstrap resamples of the ablation metrics (default: "
                                                        "evaluation.n_boot)")
    split: str | None = Field(None, description="probe only this split of the data set (default: all images)")
    max_images: int | None = Field(5000, ge=1, description="at most this many probe images, drawn at random "
                                                           "(seeded); bounds the dissection's cost. None: all")


def audited_methods(methods: list[str]) -> list[str]:
    """The methods whose classifiers the audit looks at: those that train one (not post-processing)."""
    from fairlatent.pipeline.methods import get_method

    return [m for m in methods if get_method(m).trains]


def stage_audit(pipe: "Pipeline") -> None:
    """Audit every trained method's classifier of ``pipe`` side by side (module docstring)."""
    from fairlatent.explain.audit import audit_classifiers
    from fairlatent.explain.html import render_audit_section
    from fairlatent.explain.output import write_audit
    from fairlatent.utils.io import write_text

    a = pipe.cfg.audit
    methods = audited_methods(pipe.cfg.methods)
    if not methods:
        raise FairlatentError("audit: no method of this run trains a classifier (post-processing methods have "
                              "no units to audit)")
    n_boot = a.n_boot if a.n_boot is not None else pipe.cfg.evaluation.n_boot
    settings = {**a.model_dump(exclude={"enabled"}), "n_boot": n_boot}
    key = {"settings": settings, "target": pipe.t, "protected": pipe.g, "seed": pipe.cfg.seed, "methods": methods}
    deps = ("data",) + tuple(f"train_{m}" for m in methods)

    def fn(stage_dir: Path) -> dict[str, Any]:
        data_path = pipe.stages.results["data"].outputs["path"]
        # the stage folders, not the absolute paths they recorded: a copied or moved run audits its own models
        models = {m: pipe.stages.results[f"train_{m}"].dir / "model" for m in methods}
        result = audit_classifiers(models, data_path, target=pipe.t, protected=pipe.g, layer=a.layer,
                                   split=a.split, quantile=a.quantile, length=a.length, beam=a.beam,
                                   penalty=a.penalty, n_boot=n_boot, seed=pipe.cfg.seed, max_images=a.max_images,
                                   device=pipe.cfg.device)
        # an interrupted stage is re-entered with its files: what it wrote before is replaced
        write_audit(result, stage_dir / EXPLAIN_DIR, overwrite=True)
        write_text(stage_dir / SECTION_HTML, render_audit_section(result))
        return audit_summary(result.to_json())

    pipe.stages.run("audit", key, fn, deps=deps)


def audit_summary(full: dict[str, Any]) -> dict[str, Any]:
    """What ``report.json`` keeps of an audit's ``summary.json``: settings, the protected concepts and, per
    model, the dissection's counts, mean IoU by formula length, the protected units and their share of the
    layer and of the target logit's |contribution|, and AP/DEO/BA intact, zeroed and the paired differences."""
    keep = ("layer", "units", "explained_units", "detector_units", "mean_iou_by_length", "protected_units",
            "protected_share", "protected_contribution_share", "metrics", "differences", "control_units", "notes")
    return {
        "target": full.get("target"), "protected": full.get("protected"),
        "protected_concepts": full.get("protected_concepts", []),
        "settings": {k: full["settings"].get(k) for k in ("layer", "split", "max_images", "probe_images", "quantile",
                                                          "length", "beam", "penalty", "n_boot", "detector_iou")},
        "concepts": len(full.get("concepts", [])),
        "models": {name: {k: s[k] for k in keep if k in s} for name, s in full.get("models", {}).items()},
    }


# ------------------------------------------------------------------------------------------------------
# A finished run folder, read back (`fairlatent explain --run`)
# ------------------------------------------------------------------------------------------------------


@dataclass
class RunInputs:
    """What a run folder says about its classifiers: ``{method: model dir}``, the data set, target, protected."""

    run_dir: Path
    models: dict[str, Path]
    data: Path
    target: str | None
    protected: str | None
    skipped: dict[str, str] = field(default_factory=dict)  # method -> why its classifier is not audited


def _stage_record(stage_dir: Path) -> dict[str, Any] | None:
    from fairlatent.utils.io import read_json

    f = stage_dir / "stage.json"
    if not f.is_file():
        return None
    try:
        record = read_json(f)
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and record.get("done") else None


def run_inputs(run_dir: str | Path) -> RunInputs:
    """Read a pipeline run folder: its finished ``train_<method>/model`` classifiers (in the config's method
    order, then any other ``train_*`` folder by name), its data set (``data/stage.json``'s path, or
    ``data/dataset`` inside the run when that path is gone: a moved run) and ``config.json``'s target and
    protected attribute. A folder that is not a run, or holds no finished classifier, is an error."""
    from fairlatent.utils.io import read_json

    run = Path(run_dir)
    cfg_file = run / "config.json"
    if not run.is_dir() or not cfg_file.is_file() or not (run / "data").is_dir():
        raise FairlatentError(f"{run}: not a pipeline run folder (no config.json and data/ stage); give one that "
                              "`fairlatent run` or `fairlatent demo` wrote")
    cfg = read_json(cfg_file)
    if not isinstance(cfg, dict):
        raise FairlatentError(f"{cfg_file}: not a run config (a JSON object)")
    data_cfg = cfg.get("data") if isinstance(cfg.get("data"), dict) else {}
    data_rec = _stage_record(run / "data")
    data = None
    if data_rec is not None and isinstance(data_rec.get("outputs", {}).get("path"), str):
        data = Path(data_rec["outputs"]["path"])
    if (data is None or not data.is_dir()) and (run / "data" / "dataset").is_dir():
        data = run / "data" / "dataset"
    if data is None or not data.is_dir():
        raise FairlatentError(f"{run}/data: the run's data set is not there (data/stage.json names "
                              f"{data if data is not None else 'none'}); give it with --data")
    listed = [m for m in cfg.get("methods", []) if isinstance(m, str)]
    found = sorted(p.name[len("train_"):] for p in run.glob("train_*") if p.is_dir())
    models: dict[str, Path] = {}
    skipped: dict[str, str] = {}
    for m in list(dict.fromkeys(listed + found)):
        stage = run / f"train_{m}"
        if not stage.is_dir():
            continue  # a post-processing method, or one whose training never started
        if _stage_record(stage) is None:
            skipped[m] = f"{stage}: training did not finish (no stage.json with done)"
        elif not (stage / "model" / "config.json").is_file():
            skipped[m] = f"{stage}/model: no trained classifier"
        else:
            models[m] = stage / "model"
    if not models:
        why = "; ".join(skipped.values()) or "no train_<method> folder"
        raise FairlatentError(f"{run}: no finished classifier to audit ({why})")
    return RunInputs(run_dir=run, models=models, data=data, target=data_cfg.get("target"),
                     protected=data_cfg.get("protected"), skipped=skipped)


__all__ = ["AuditConfig", "RunInputs", "audit_summary", "audited_methods", "run_inputs", "stage_audit"]
