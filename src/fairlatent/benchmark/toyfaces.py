"""The ToyFaces benchmark: the de-biasing pipeline over many (target, protected, skew, faintness) cases.

Why: the demo is one case (a faint hat, glasses as the protected attribute, skew 0.9). Whether latent
de-biasing helps depends on the case — how ambiguous the target's positives are, how large and how salient
the protected attribute is, whether the two live in the same part of the face, how strong the skew — and
ToyFaces lets each of these be set. Every pair is a full pipeline run per seed (``pairs/<pair>/seed<s>``:
its own ToyFaces rendering, GAN, labelers, hyperplanes, pairs and target classifiers; the seed draws them
all), on the training engine, dealt over ranks and resumable like the CelebA benchmark
(:class:`fairlatent.benchmark.tasks.TaskBenchmark`).

The default pairs (:data:`DEFAULT_PAIRS`), by the kind of case they are there for:

* **the demo and its skew** — ``Wearing_Hat`` (faint half of the time) vs ``Eyeglasses`` at 0.9 and 0.7:
  the reference case, and how the effect shrinks with the skew;
* **bold targets (controls)** — ``Wearing_Hat`` and ``Blond_Hair`` drawn boldly: a small CNN reads them
  perfectly whatever the skew, so the baseline is already fair and de-biasing has nothing to fix; these
  should fall below the DEO ≥ 5 bar of the acceptance line, and must not be made worse;
* **faint targets of different parts** — a faint smile (a small shape change of the mouth), faint bangs
  (hair shape), faint glasses as the target;
* **protected attributes of different size, colour and frequency** — ``Pale_Skin`` (the whole face, a colour
  change), ``Blond_Hair`` (a large colour region), ``No_Beard`` (a medium dark region; the most frequent
  attribute of ToyFaces' world, base rate 0.75), ``Eyeglasses`` (small, dark), ``Wearing_Earrings`` (tiny,
  bright): the smaller and fainter the protected attribute, the harder it is for the GAN to draw and for
  h_g to find, and the edit's f_g flip rate shows it;
* **entangled pairs** — ``Bangs`` vs ``Blond_Hair`` (both the hair) and ``Mouth_Slightly_Open`` vs
  ``Smiling`` (both the mouth): h_t and h_g are far from orthogonal (large |cos θ|), the complementary edit
  is ill-conditioned, and the edit's f_t keep rate drops;
* **a faint protected attribute** — faint hat vs glasses that are themselves faint half of the time: f_g is
  unsure, so the labels of G(z) and the flip of the edit are too.

Within each split ToyFaces fixes the target's and the protected attribute's rates at 0.5 and sets their
agreement ``P(g = t)`` to the skew exactly; "frequency" of a protected attribute therefore means its base rate
where it is not protected (:data:`fairlatent.data.toyfaces.BASE_RATES`), i.e. how common the look is among
the other faces. ``Pale_Skin`` and ``Blond_Hair`` are recolourings and have no faint drawing
(:data:`FAINT_DRAWN` lists the attributes that do); a faint share for them is refused at load.

Results (``results.json`` / ``results.md``): per pair, each method's paired difference to the baseline
(ΔDEO, ΔAP, ΔBA: the median and interval of ``paired_vs_baseline`` on the test split) per seed and across
seeds (mean ± sd of the medians; how many seeds' intervals lie below 0 and above 0), the diagnostics (held-out
accuracy of h_t and h_g, cos θ, the complementary edit's f_g flip rate and f_t keep rate, and each
(target, protected) cell's share among G(z) beside its share of the real train split), and the acceptance
line (:func:`acceptance`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, ClassVar

import numpy as np
from pydantic import Field, field_validator, model_validator
from rich.console import Console

from fairlatent.benchmark.markdown import LATENT_FIELDS
from fairlatent.benchmark.settings import BenchmarkSettings
from fairlatent.benchmark.tasks import RunSpec, TaskBenchmark
from fairlatent.data.toyfaces import ATTRIBUTES
from fairlatent.utils.settings import StrictSettings

#: Attributes ToyFaces can draw faintly (their part is painted at a salience); Pale_Skin and Blond_Hair
#: recolour the face and the hair and have no faint form.
FAINT_DRAWN: tuple[str, ...] = ("Wearing_Hat", "Eyeglasses", "Smiling", "Bangs", "Wearing_Earrings",
                                "Mouth_Slightly_Open", "No_Beard")

#: The defaults of the model sections: the demo's (``pipeline/configs/demo.toml``).
SECTION_DEFAULTS: dict[str, dict[str, Any]] = {
    "gan": {},
    "classifier": {},
    # 5,000 pairs (10,000 images) beside 10,000 real training faces: the synthetic half of the demo's ratio
    # of 2:1 keeps each pipeline run near 30 min on one CPU core (the GAN is 13 of them)
    # pair_filter "all": latent_debias is the paper's method here, and latent_debias_verified beside it is
    # latent_debias at its default (one run measures both; the acceptance line reads the default)
    "latent": {"n_fit": 10000, "n_holdout": 5000, "n_pairs": 5000, "hyperplane": "svm", "threshold": "f1",
               "pair_filter": "all"},
    "evaluation": {"n_boot": 500, "generative_metrics": True},
}

#: Paired differences the tables report (method − baseline; DEO and BA lower is better, AP higher).
DELTA_METRICS = ("DEO", "AP", "BA")
#: The acceptance line looks at pairs whose baseline DEO (mean over seeds) is at least this (percent).
ACCEPT_MIN_DEO = 5.0


class PairSpec(StrictSettings):
    """One case: target, protected attribute, training skew P(g = t), and the share of faces on which an
    attribute is drawn faintly (ToyFaces' ``--faint``)."""

    target: str
    protected: str
    skew: float = Field(0.9, ge=0.5, lt=1.0)
    faint: dict[str, float] = Field(default_factory=dict)
    name: str | None = Field(None, description="run folder name; default target-protected-s<skew>[-faint…]")
    note: str = Field("", description="why this case is in the sweep (shown in results.md)")

    @field_validator("target", "protected")
    @classmethod
    def _attribute(cls, v: str) -> str:
        if v not in ATTRIBUTES:
            raise ValueError(f"ToyFaces has no attribute {v!r}; attributes are: {', '.join(ATTRIBUTES)}")
        return v

    @field_validator("faint")
    @classmethod
    def _faint(cls, v: dict[str, float]) -> dict[str, float]:
        for a, share in v.items():
            if a not in FAINT_DRAWN:
                raise ValueError(f"{a!r} has no faint drawing in ToyFaces; faint attributes are: "
                                 f"{', '.join(FAINT_DRAWN)}")
            if not 0.0 < share <= 1.0:
                raise ValueError(f"faint share of {a} must be in (0, 1], got {share}")
        return v

    @model_validator(mode="after")
    def _check(self) -> "PairSpec":
        if self.target == self.protected:
            raise ValueError(f"target and protected are both {self.target!r}; they must differ")
        if self.name is None:
            faint = "".join(f"-faint{a}{s:g}" for a, s in sorted(self.faint.items()))
            self.name = f"{self.target}-{self.protected}-s{self.skew:g}{faint}"
        elif set(self.name) & set('/\\:*?"<>| ') or self.name in (".", ".."):
            raise ValueError(f"pair name {self.name!r} must be a plain folder name")
        return self

    def target_is_faint(self) -> bool:
        return self.faint.get(self.target, 0.0) > 0


def _pair(target: str, protected: str, skew: float, note: str, **faint: float) -> dict[str, Any]:
    return {"target": target, "protected": protected, "skew": skew, "faint": faint, "note": note}


DEFAULT_PAIRS: list[dict[str, Any]] = [
    _pair("Wearing_Hat", "Eyeglasses", 0.9, "the demo: faint hat, small dark protected", Wearing_Hat=0.5),
    _pair("Wearing_Hat", "Eyeglasses", 0.7, "the demo at a milder skew", Wearing_Hat=0.5),
    _pair("Wearing_Hat", "Eyeglasses", 0.9, "control: bold hat, the baseline is already fair"),
    _pair("Blond_Hair", "No_Beard", 0.9, "control: bold colour target (no faint form)"),
    _pair("Smiling", "Eyeglasses", 0.9, "faint small shape target (mouth)", Smiling=0.5),
    _pair("Smiling", "Pale_Skin", 0.9, "protected = the whole face's colour: large, easy for f_g", Smiling=0.5),
    _pair("Wearing_Hat", "Blond_Hair", 0.7, "protected = a large colour region next to the hat", Wearing_Hat=0.5),
    _pair("Wearing_Hat", "No_Beard", 0.9, "protected = a medium dark region, the most frequent look (0.75)",
          Wearing_Hat=0.5),
    _pair("Eyeglasses", "Wearing_Earrings", 0.9, "protected = tiny bright colour: hard for the GAN and h_g",
          Eyeglasses=0.5),
    _pair("Bangs", "Blond_Hair", 0.9, "entangled: target and protected both in the hair", Bangs=0.5),
    _pair("Mouth_Slightly_Open", "Smiling", 0.9, "entangled: both in the mouth", Mouth_Slightly_Open=0.5),
    _pair("Wearing_Hat", "Eyeglasses", 0.9, "faint protected too: f_g unsure, flips uncertain",
          Wearing_Hat=0.5, Eyeglasses=0.5),
]


class ToyFacesBenchmarkConfig(BenchmarkSettings):
    """Everything that determines a ToyFaces benchmark (saved in ``results.json``). Data and model defaults
    are the demo's; ``pairs`` is the list of cases, each run once per seed."""

    section_defaults: ClassVar[dict[str, dict[str, Any]]] = SECTION_DEFAULTS

    pairs: list[PairSpec] = Field(default_factory=lambda: [PairSpec(**p) for p in DEFAULT_PAIRS])
    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2])
    # the paper's method and the two pair filters measured against it (issue 13's remedies)
    methods: list[str] = Field(default_factory=lambda: ["baseline", "reweighting", "latent_debias",
                                                        "latent_debias_filtered", "latent_debias_verified"])
    n: int = Field(20000, ge=100, description="faces in train + val + test (test_balanced on top)")
    size: int = Field(32, description="image size: 32 or 64")
    split_fractions: tuple[float, float, float] = (0.5, 0.1, 0.4)
    gan_from: str | None = Field(
        None, description="an earlier ToyFaces benchmark folder whose GANs this sweep reuses (same pairs, seeds, "
                          "n, size and splits): each run takes OUT/pairs/<pair>/seed<s>/gan/model from there as a "
                          "given generator, so a variant of the latent settings (e.g. latent.plane_weights) is "
                          "measured on the very same GANs at a third of a run's cost. A run whose GAN has not "
                          "finished there yet is left out until a later invocation.")

    @field_validator("size")
    @classmethod
    def _size(cls, v: int) -> int:
        if v not in (32, 64):
            raise ValueError(f"size must be 32 or 64, got {v}")
        return v

    @field_validator("pairs")
    @classmethod
    def _pairs(cls, v: list[PairSpec]) -> list[PairSpec]:
        if not v:
            raise ValueError("pairs is empty")
        names = [p.name for p in v]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"pair name(s) {twice} given twice; give the pairs distinct names")
        return v

    def pair(self, name: str) -> PairSpec:
        return next(p for p in self.pairs if p.name == name)


def select_pairs(raw: dict[str, Any], names: list[str]) -> dict[str, Any]:
    """``raw`` (a config dict before validation) with only the pairs of these names, in this order (``--pairs``).
    Names are those of the config's pairs (its own, or the defaults); an unknown one is refused naming them."""
    from fairlatent.errors import FairlatentError

    pairs = [PairSpec(**p) if isinstance(p, dict) else p for p in raw.get("pairs", DEFAULT_PAIRS)]
    by_name = {p.name: p for p in pairs}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise FairlatentError(f"--pairs: no pair named {', '.join(map(repr, unknown))}; pairs are: "
                              f"{', '.join(by_name)}")
    return {**raw, "pairs": [by_name[n].model_dump() for n in names]}


# ----------------------------------------------------------------------------------------------- figures
def _stats(values: list[float]) -> dict[str, Any]:
    v = np.array([x for x in values if x is not None and np.isfinite(x)], dtype=float)
    return {"mean": float(v.mean()) if len(v) else None, "sd": float(v.std(ddof=1)) if len(v) > 1 else None,
            "n": int(len(v))}


def _worst_cell_acc(latent: dict[str, Any], who: str) -> float | None:
    """The run's labeler f_<who>'s accuracy in its worst real validation cell (None: not measured)."""
    w = (latent.get("labeler_worst_cell") or {}).get(who)
    return None if w is None else w["acc"]


def _cell_rates(cells: dict[str, int]) -> dict[str, float]:
    total = sum(cells[f"t{a}_g{b}"] for a in (0, 1) for b in (0, 1))
    return {f"t{a}_g{b}": cells[f"t{a}_g{b}"] / total if total else float("nan") for a in (0, 1) for b in (0, 1)}


def pair_summary(runs: list[dict[str, Any]], methods: list[str]) -> dict[str, Any]:
    """One pair's figures over its seeds' runs (each a ``runs`` entry of the results).

    ``delta[method][metric]``: ``per_seed`` (the run's paired median and interval), ``median`` (mean ± sd of
    the seeds' medians), ``below0`` / ``above0`` (seeds whose interval lies entirely below / above 0).
    ``metrics[method][metric]``: mean ± sd of the seeds' test medians. ``diagnostics``: mean ± sd of h_t and
    h_g held-out accuracy, cos θ, flip rate of f_g and keep rate of f_t, f_t's and f_g's accuracy in their worst
    real validation cell (the pre-flight's labeler check), and per (target, protected) cell its share among
    G(z) and among the real train images."""
    runs = sorted(runs, key=lambda r: r["seed"])
    out: dict[str, Any] = {"seeds": [r["seed"] for r in runs], "delta": {}, "metrics": {}}
    if all("baseline" in r["methods"] for r in runs):
        out["baseline_deo_by_seed"] = {str(r["seed"]): r["methods"]["baseline"]["DEO"]["median"] for r in runs}
    for m in methods:
        out["metrics"][m] = {k: _stats([r["methods"][m][k]["median"] for r in runs
                                        if m in r["methods"] and k in r["methods"][m]])
                             for k in ("AP", "DEO", "BA", "KL")}
        if m == "baseline":
            continue
        out["delta"][m] = {}
        for k in DELTA_METRICS:
            per_seed = [{"seed": r["seed"], **{q: r["methods"][m]["vs_baseline"][k][q] for q in ("median", "lo", "hi")}}
                        for r in runs if k in r["methods"].get(m, {}).get("vs_baseline", {})]
            ok = [d for d in per_seed if d["lo"] is not None and d["hi"] is not None]
            out["delta"][m][k] = {"per_seed": per_seed, "median": _stats([d["median"] for d in per_seed]),
                                  "below0": sum(d["hi"] < 0 for d in ok), "above0": sum(d["lo"] > 0 for d in ok)}
    checked = [r for r in runs if r.get("preflight") is not None]
    if checked:
        # quiet: no failed check blocks a listed method; per method: none blocks that method's pairs
        methods_checked = sorted({m for r in checked for m in r["preflight"].get("by_method", {})})
        out["preflight"] = {"quiet_seeds": [r["seed"] for r in checked if r["preflight"]["passed"]],
                            "quiet_seeds_by_method": {m: [r["seed"] for r in checked
                                                          if r["preflight"].get("by_method", {}).get(m)]
                                                      for m in methods_checked},
                            "failed": {str(r["seed"]): r["preflight"]["failed"] for r in checked
                                       if r["preflight"]["failed"]},
                            "blocking": {str(r["seed"]): r["preflight"].get("blocking", r["preflight"]["failed"])
                                         for r in checked if not r["preflight"]["passed"]}}
    lat = [r["latent"] for r in runs if r.get("latent")]
    if lat:
        diag = {k: _stats([x[k] for x in lat]) for k in LATENT_FIELDS}
        for who in ("t", "g"):  # runs of versions before the labeler check lack it: their seeds are left out
            diag[f"f_{who}_cell_acc"] = _stats([_worst_cell_acc(x, who) for x in lat])
        gen = [_cell_rates(x["generated_label_rates"]["cells"]) for x in lat]
        real = [_cell_rates(r["cells"]["train"]) for r in runs if r.get("latent")]
        diag["cells"] = {c: {"G(z)": _stats([g[c] for g in gen]), "real": _stats([x[c] for x in real])}
                         for c in gen[0]}
        out["diagnostics"] = diag
    return out


def pair_summaries(results: dict[str, Any]) -> dict[str, Any]:
    """``{pair name: pair_summary}`` over the finished runs of the results."""
    methods = results.get("config", {}).get("methods", [])
    by_pair: dict[str, list[dict[str, Any]]] = {}
    for r in results.get("runs", {}).values():
        by_pair.setdefault(r["pair"], []).append(r)
    return {p: pair_summary(rs, methods) for p, rs in by_pair.items()}


def _quiet_seeds(pair: dict[str, Any], method: str) -> list[int]:
    """The seeds on which no failed pre-flight check blocked ``method`` (every seed for a method that trains on
    no pairs: no check is about it)."""
    pf = pair.get("preflight", {})
    return pf.get("quiet_seeds_by_method", {}).get(method, pair["seeds"])


def _checked(pairs: dict[str, Any], method: str) -> bool:
    """Whether the pre-flight judges ``method`` on some run (it trains on latent pairs)."""
    return any(method in s.get("preflight", {}).get("quiet_seeds_by_method", {}) for s in pairs.values())


def pair_verdict(pair: dict[str, Any], method: str) -> str:
    """``"lowered"`` (``"raised"``) when more than half of the pair's seeds have a paired ΔDEO interval of
    ``method`` entirely below (above) 0, else ``"neither"``: the issue's rule for one pair."""
    deo, n = pair["delta"][method]["DEO"], len(pair["seeds"])
    return "lowered" if deo["below0"] * 2 > n else "raised" if deo["above0"] * 2 > n else "neither"


def acceptance(pairs: dict[str, Any], method: str = "latent_debias",
               min_deo: float = ACCEPT_MIN_DEO) -> dict[str, Any]:
    """The acceptance line over the pairs whose baseline DEO (mean over seeds) is at least ``min_deo``.

    A pair counts as *lowered* (*raised*) when more than half of its seeds' paired ΔDEO intervals lie
    entirely below (above) 0; ``mean_dAP`` is the mean over those pairs of the seeds' mean ΔAP median.
    ``refused``: the eligible pairs not lowered on which a failed check blocked the method on more than half
    of the seeds, so that ``latent.strict = true`` stops those runs naming the checks (the issue's "work, or
    refuse and say why"). ``raised_quiet``: the runs (pair/seed) whose ΔDEO interval lies above 0 although no
    failed pre-flight check blocked this method on that run (:func:`fairlatent.latent.preflight.blocks`) — the
    failures the product did not announce (the issue asks for none). A method that trains on no pairs (reweighting,
    latent_oversample) is judged by no check, so each of its rises is unannounced."""
    eligible = [name for name, s in pairs.items()
                if method in s["delta"] and s["metrics"]["baseline"]["DEO"]["mean"] is not None
                and s["metrics"]["baseline"]["DEO"]["mean"] >= min_deo]
    lowered = [p for p in eligible if pair_verdict(pairs[p], method) == "lowered"]
    raised = [p for p in eligible if pair_verdict(pairs[p], method) == "raised"]
    raised_quiet = [f"{p}/seed{d['seed']}" for p in eligible for d in _seed_deltas(pairs[p], method)
                    if d["lo"] > 0 and d["seed"] in _quiet_seeds(pairs[p], method)]
    # the title: work, or refuse and say why — a pair not lowered on which the pre-flight blocked the
    # method on most seeds is one that `latent.strict = true` refuses with the failed checks named
    refused = [p for p in eligible if p not in lowered and _checked(pairs, method)
               and (len(pairs[p]["seeds"]) - len(_quiet_seeds(pairs[p], method))) * 2 > len(pairs[p]["seeds"])]
    dap = [pairs[p]["delta"][method]["AP"]["median"]["mean"] for p in eligible]
    dap = [x for x in dap if x is not None]
    mean_dap = float(np.mean(dap)) if dap else None
    line = (f"over pairs with baseline DEO ≥ {min_deo:g}, {method} lowers DEO with a paired interval excluding 0 "
            f"on {len(lowered)} of {len(eligible)} pairs; raises it significantly on {len(raised)} "
            + (f"(on {len(raised_quiet)} run(s) with a quiet pre-flight check)" if _checked(pairs, method) else
               f"(on {len(raised_quiet)} run(s); it trains on no pairs, so no pre-flight check judges it)")
            + "; mean ΔAP = "
            + (f"{mean_dap:+.2f}" if mean_dap is not None else "–"))
    return {"method": method, "min_baseline_deo": min_deo, "eligible": eligible, "lowered": lowered,
            "raised": raised, "raised_quiet": raised_quiet, "refused": refused, "mean_dAP": mean_dap, "line": line,
            "lowered_or_refused_line": f"{method} lowers DEO on {len(lowered)} and is refused by the pre-flight "
                                       f"(blocked on most seeds; latent.strict = true stops) on {len(refused)} "
                                       f"more: {len(lowered) + len(refused)} of {len(eligible)} pairs",
            "rule": "a pair is lowered (raised) when more than half of its seeds' paired ΔDEO intervals lie "
                    "below (above) 0",
            "per_seed_bar": per_seed_bar(pairs, method, min_deo), "by_preflight": by_preflight(pairs, method)}


def _seed_deltas(pair: dict[str, Any], method: str) -> list[dict[str, Any]]:
    """The pair's per-seed ΔDEO records of ``method`` with an interval, each with its seed's baseline DEO."""
    base = pair.get("baseline_deo_by_seed", {})
    return [{**d, "baseline": base.get(str(d["seed"]))} for d in pair["delta"][method]["DEO"]["per_seed"]
            if d["lo"] is not None and d["hi"] is not None]


def per_seed_bar(pairs: dict[str, Any], method: str, min_deo: float = ACCEPT_MIN_DEO) -> dict[str, Any]:
    """The acceptance rule with the DEO bar applied to each seed instead of to the pair's mean: a pair is
    eligible through the seeds whose own baseline DEO is ≥ ``min_deo``, and lowered when more than half of
    those seeds' intervals lie below 0. Why beside the main rule: a pair whose mean clears the bar through one
    seed is judged there on seeds that had almost nothing to remove (ToyFaces: a baseline DEO of 4.5 with an
    interval of ±2 points)."""
    eligible, lowered = [], []
    for name, s in pairs.items():
        if method not in s["delta"]:
            continue
        seeds = [d for d in _seed_deltas(s, method) if d["baseline"] is not None and d["baseline"] >= min_deo]
        if not seeds:
            continue
        eligible.append(name)
        if sum(d["hi"] < 0 for d in seeds) * 2 > len(seeds):
            lowered.append(name)
    return {"eligible": eligible, "lowered": lowered,
            "line": f"with the bar on each seed's own baseline DEO, {method} lowers DEO on {len(lowered)} of "
                    f"{len(eligible)} pairs"}


def by_preflight(pairs: dict[str, Any], method: str, control_deo: float = 0.05) -> dict[str, Any] | None:
    """What ``method`` did on the runs the pre-flight was quiet for and on those it blocked it on: per group,
    the runs (pair/seed) whose ΔDEO interval lies below 0, above 0, or neither, the last split into controls
    (baseline DEO under ``control_deo`` points: nothing to remove) and the rest, each with its baseline DEO.
    Runs without a pre-flight record are left out; None for a method that trains on no pairs (no check can
    block it, e.g. reweighting)."""
    if not _checked(pairs, method):
        return None
    out: dict[str, Any] = {}
    for group in ("quiet", "blocked"):
        out[group] = {"runs": 0, "lowered": [], "raised": [], "controls": [], "neither": []}
    for name, s in pairs.items():
        if method not in s["delta"] or "preflight" not in s:
            continue
        quiet = set(_quiet_seeds(s, method))
        for d in _seed_deltas(s, method):
            g = out["quiet" if d["seed"] in quiet else "blocked"]
            g["runs"] += 1
            run = {"run": f"{name}/seed{d['seed']}", "baseline_deo": d["baseline"], "median": d["median"]}
            if d["hi"] < 0:
                g["lowered"].append(run)
            elif d["lo"] > 0:
                g["raised"].append(run)
            elif d["baseline"] is not None and d["baseline"] < control_deo:
                g["controls"].append(run)
            else:
                g["neither"].append(run)
    return out


def default_method(methods: list[str], pair_filter: str | None) -> str | None:
    """Which of ``methods`` trains what ``latent_debias`` trains at its default settings, in a sweep whose
    ``latent.pair_filter`` is ``pair_filter`` (None: the default): ``latent_debias`` itself, or the method
    fixing the default filter (``latent_debias_verified``) when the sweep runs latent_debias as the paper.
    The acceptance line is about the default: the method a user gets."""
    from fairlatent.pipeline.config import LatentConfig
    from fairlatent.pipeline.methods import get_method

    default = LatentConfig.model_fields["pair_filter"].default
    if "latent_debias" in methods and (pair_filter is None or pair_filter == default):
        return "latent_debias"
    plain = get_method("latent_debias")
    for m in methods:
        spec = get_method(m)
        if spec.build is plain.build and spec.edit == plain.edit and spec.pair_filter == default:
            return m
    return None


# ----------------------------------------------------------------------------------------------- the run
class ToyFacesBenchmark(TaskBenchmark):
    """One pipeline run per (pair, seed) in ``OUT/pairs/<pair>/seed<s>``; no shared stages."""

    def pipeline_config(self, spec: RunSpec):
        from fairlatent.pipeline.config import validate_config

        c = self.cfg
        p = c.pair(spec.extra["pair"])
        name = f"toyfaces_{p.name}_seed{spec.seed}"
        given = {} if c.gan_from is None else {"generator": {"path": str(self._source_gan(p.name, spec.seed))}}
        return validate_config({
            "seed": spec.seed, "name": name, "device": c.device,
            "data": {"source": "toyfaces", "target": p.target, "protected": p.protected, "n": c.n,
                     "size": c.size, "skew": p.skew, "faint": p.faint, "split_fractions": list(c.split_fractions)},
            **c.sections(), **given,
            "methods": c.methods,
        }, where=f"benchmark config for {name}")

    def _source_gan(self, pair: str, seed: int) -> Path:
        return Path(self.cfg.gan_from).resolve() / "pairs" / pair / f"seed{seed}" / "gan" / "model"

    def _source_gan_ready(self, pair: str, seed: int) -> bool:
        """Whether the ``gan_from`` run of (pair, seed) has a finished GAN of this sweep's data: its gan stage
        is done and its config drew the same faces (a GAN of other data would be silently wrong)."""
        from fairlatent.utils.io import read_json

        run = self._source_gan(pair, seed).parent.parent
        if not ((run / "gan" / "stage.json").is_file() and (run / "config.json").is_file()):
            return False
        stage, config = read_json(run / "gan" / "stage.json"), read_json(run / "config.json")
        ours = self.pipeline_config(RunSpec("runs", "", "", seed, None, run, None, None, {"pair": pair}))
        return bool(stage.get("done")) and config.get("data") == ours.data.model_dump(mode="json")

    def run_specs(self, prepared: Any) -> list[RunSpec]:
        """Every pipeline run, in a fixed order: seeds × pairs (so the first seed of every pair comes first);
        with ``gan_from``, only those whose GAN is ready there."""
        specs = [RunSpec("runs", f"{p.name}/seed{seed}", p.target, seed, None, self.out / "pairs" / p.name / f"seed{seed}",
                         None, None, {"pair": p.name, "protected": p.protected, "skew": p.skew, "faint": p.faint})
                 for seed in self.cfg.seeds for p in self.cfg.pairs]
        if self.cfg.gan_from is None:
            return specs
        if not (Path(self.cfg.gan_from) / "pairs").is_dir():
            from fairlatent.errors import FairlatentError

            raise FairlatentError(f"gan_from {self.cfg.gan_from}: not a ToyFaces benchmark folder (no pairs/ in it)")
        ready = [s for s in specs if self._source_gan_ready(s.extra["pair"], s.seed)]
        if len(ready) < len(specs):
            self.shared_console.print(f"gan_from: {len(specs) - len(ready)} of {len(specs)} runs wait for their GAN "
                                      f"in {self.cfg.gan_from}; run again once it has trained them")
        return ready

    def extra_results(self) -> dict[str, Any]:
        pairs = pair_summaries({**self.results, "config": self.cfg.model_dump()})
        out: dict[str, Any] = {"pairs": pairs}
        if "baseline" in self.cfg.methods:
            # one line per method, so each remedy is measured by the same rule as the paper's method
            out["acceptance_by_method"] = {m: acceptance(pairs, m) for m in self.cfg.methods if m != "baseline"}
            default = default_method(self.cfg.methods, self.cfg.sections()["latent"].get("pair_filter"))
            if default is not None:
                out["acceptance"] = {**out["acceptance_by_method"][default], "default_of": "latent_debias"}
        return out

    def markdown(self, results: dict[str, Any]) -> str:
        from fairlatent.benchmark.markdown_toyfaces import toyfaces_markdown

        return toyfaces_markdown(results)

    def print_summary(self) -> None:
        for acc in self.results.get("acceptance_by_method", {}).values():
            self.console.print(acc["line"])


def run_toyfaces_benchmark(cfg: ToyFacesBenchmarkConfig, out: str | os.PathLike, *, console: Console | None = None,
                           progress: bool = True, after_run: Callable[[Path], Any] | None = None,
                           run_nothing: bool = False, adopt_from: str | os.PathLike | None = None) -> dict[str, Any]:
    """Run (or resume) the ToyFaces benchmark in ``out``; return the results (also ``results.json``/``.md``).

    ``after_run(run_dir)`` as in :func:`fairlatent.benchmark.celeba.run_celeba_benchmark`. Under torchrun
    every rank calls this together; the (pair, seed) runs are dealt over the ranks. ``run_nothing``: only
    rewrite the results from the runs finished earlier. ``adopt_from``: a published ``results.json`` whose
    finished runs of the same settings are adopted rather than rerun (:meth:`TaskBenchmark.adopt`)."""
    return ToyFacesBenchmark(cfg, out, console=console, progress=progress, after_run=after_run,
                             run_nothing=run_nothing, adopt_from=adopt_from).run()


__all__ = ["ACCEPT_MIN_DEO", "DEFAULT_PAIRS", "default_method", "FAINT_DRAWN", "PairSpec", "ToyFacesBenchmark",
           "ToyFacesBenchmarkConfig", "acceptance", "by_preflight", "pair_summaries", "pair_summary", "pair_verdict",
           "per_seed_bar",
           "run_toyfaces_benchmark", "select_pairs"]
