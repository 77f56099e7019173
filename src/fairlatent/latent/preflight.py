"""Pre-flight checks of the latent stages, before any classifier is trained on synthetic data.

The de-biasing method (Ramaswamy et al., CVPR 2021) trusts four things it never verifies:

1. the generator draws every (target, protected) cell, at a rate near the real one — a cell it never draws
   cannot be edited into existence with the right look, and a cell drawn far *more* often than in the real
   data is as suspect (the labeler's threshold, or the GAN, invents it);
2. the linear hyperplanes h_t, h_g describe the labels of G(z) (held-out accuracy);
3. h_t and h_g are not nearly parallel (cos θ = w_t·w_g): the complementary edit moves a latent
   ``2|d| / sin θ`` along a direction that shares ``cos θ`` of its length with the target; near-parallel
   planes mean the labeler's idea of the target leans on the protected attribute;
4. the edit does on the images what it does in latent space: f_g flips on G(z') and f_t keeps its label;
5. the labelers see what they label: f_t (f_g) is right about the target (protected attribute) on real
   validation images of every (target, protected) cell — a labeler that recalls the target only where the
   protected attribute agrees with it gives G(z) the labels of the shortcut, and every figure above, measured
   with its labels, then looks better than the edit is.

:func:`preflight_checks` turns the figures the pipeline already has into a list of :class:`Check`; it is
pure (no files, no models), so a test can plant each failure in closed form. Any group of figures may be
left out (``None``), which is how the pipeline checks the geometry before it renders pairs and the edit after.

**Which failures block.** A figure matters only to a method whose training set depends on it
(:func:`blocks`). ``latent_debias`` trains by default on the *verified* pairs, those on which f_t's label
held and f_g's flipped on the rendered images: for it the latent-space proxies of those facts (h_t's and h_g's
held-out accuracy, cos θ, the flip and keep rates) only say how many pairs survive, and the cell rates of G(z)
say how the GAN mixes its cells, not whether a pair is right. What can still make its pairs wrong is a labeler
that cannot see what it labels (the labeler check), a cell the generator never draws, or an edit that works on
so few pairs that the verified ones are a selected corner of the latent space (the verified-rate floor). A method that trains
on every pair (the paper), or on the pairs whose target held, depends on the rest too. A failure that blocks
no listed method is a *caution*: said and recorded, but the run counts as passed and ``latent.strict`` does
not stop it. On the ToyFaces sweep's first 13 runs (docs/benchmarks/toyfaces.md) the cell-rate band failed
on 8, and the verified pairs lowered DEO significantly on all 8; the flip or keep floor failed on all four
runs where the paper's method did not lower DEO (and on one where it did), and the verified pairs lowered DEO
on three of those four — the fourth, Smiling–Pale_Skin, fails the labeler check.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal

__all__ = ["CELLS", "Check", "LABELER_MIN_IMAGES", "PreflightBounds", "PreflightCaution", "PreflightWarning",
           "blocking", "blocks", "extra_plane_checks", "failed", "labeler_checks", "method_verdicts",
           "preflight_checks", "strict_failure_message", "verdict", "warn_failed", "worst_cells"]

#: a cell needs this many real validation images for the labeler check to judge it (below: undefined)
LABELER_MIN_IMAGES = 20

#: the four labelled cells, (target, protected) ∈ {0, 1}²
CELLS = ("t0_g0", "t0_g1", "t1_g0", "t1_g1")

Kind = Literal["floor", "ceiling", "ratio"]


class PreflightWarning(UserWarning):
    """A pre-flight check of the latent stages failed (the run goes on unless ``latent.strict``)."""


class PreflightCaution(UserWarning):
    """A pre-flight check failed whose figure no listed method depends on (:func:`blocks`): said, not blocking."""


@dataclass(frozen=True)
class PreflightBounds:
    """The bounds of the checks; :class:`fairlatent.pipeline.config.LatentConfig` documents why each default.

    ``cell_ratio`` r: a generated cell rate / real train cell rate outside [1/r, r] fails.
    ``min_heldout_acc``: floor of h_t's and h_g's held-out accuracy on the labels of G(z).
    ``max_cos``: ceiling of |cos θ| = |w_t·w_g|.
    ``min_flip_rate`` / ``min_keep_rate``: floors of the share of pairs whose f_g label flipped / f_t label
    held, measured on the rendered images G(z), G(z').
    ``min_labeler_acc``: floor of f_t's and f_g's accuracy on the real validation images of each cell.
    ``min_verified_rate``: floor of the share of an edit's pairs on which both held (f_g flipped and f_t
    kept): the pairs a method on verified pairs trains on. 0.4 is what the flip and keep floors imply
    (0.7 + 0.7 − 1).
    """

    cell_ratio: float = 3.0
    min_heldout_acc: float = 0.7
    max_cos: float = 0.97
    min_flip_rate: float = 0.7
    min_keep_rate: float = 0.7
    min_labeler_acc: float = 0.6
    min_verified_rate: float = 0.4


@dataclass(frozen=True)
class Check:
    """One check: ``value`` against ``bound`` (a floor, a ceiling, or a ratio band [1/bound, bound]).

    ``value`` is None when the figure is undefined (a cell with no real image); ``message`` then says why.
    """

    name: str
    value: float | None
    bound: float
    kind: Kind
    passed: bool
    message: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _floor(name: str, what: str, value: float, bound: float) -> Check:
    ok = value >= bound
    rel = "at or above" if ok else "below"
    return Check(name, float(value), float(bound), "floor", ok, f"{what} {value:.3f} is {rel} the floor {bound:.3f}")


def _ceiling(name: str, what: str, value: float, bound: float) -> Check:
    ok = value <= bound
    rel = "at or below" if ok else "above"
    return Check(name, float(value), float(bound), "ceiling", ok, f"{what} {value:.3f} is {rel} the ceiling {bound:.3f}")


def _cell_checks(generated: Mapping[str, int], real: Mapping[str, int], r: float) -> list[Check]:
    n_gen, n_real = sum(int(generated.get(c, 0)) for c in CELLS), sum(int(real.get(c, 0)) for c in CELLS)
    out = []
    for c in CELLS:
        g_count, r_count = int(generated.get(c, 0)), int(real.get(c, 0))
        name = f"cell_rate[{c}]"
        label = f"generated rate of cell {c} (f_t, f_g labels of G(z))"
        if g_count == 0:
            out.append(Check(name, 0.0, float(r), "ratio", False,
                             f"{label}: the generator never drew this cell in {n_gen} samples (real train rate "
                             f"{r_count / max(n_real, 1):.3f}); the ratio to the real rate must lie in "
                             f"[1/{r:g}, {r:g}]"))
            continue
        if r_count == 0 or n_real == 0:
            out.append(Check(name, None, float(r), "ratio", True,
                             f"{label}: ratio undefined, the real train split has no image in this cell"))
            continue
        gen_rate, real_rate = g_count / n_gen, r_count / n_real
        ratio = gen_rate / real_rate
        ok = 1.0 / r <= ratio <= r
        side = "within" if ok else ("above" if ratio > r else "below")
        out.append(Check(name, float(ratio), float(r), "ratio", ok,
                         f"{label} {gen_rate:.3f} is {ratio:.2f}× the real train rate {real_rate:.3f}, {side} "
                         f"the allowed band [1/{r:g}, {r:g}]"))
    return out


def preflight_checks(*, bounds: PreflightBounds = PreflightBounds(),
                     generated_cells: Mapping[str, int] | None = None, real_cells: Mapping[str, int] | None = None,
                     heldout_acc_t: float | None = None, heldout_acc_g: float | None = None,
                     cos_theta: float | None = None, flip_rate_g: float | None = None,
                     keep_rate_t: float | None = None, verified_rate: float | None = None,
                     edit: str = "complementary") -> list[Check]:
    """The checks whose figures are given, in a fixed order: cells, h_t, h_g, cos θ, flip, keep, verified.

    ``generated_cells`` / ``real_cells``: counts per cell name of :data:`CELLS` (both or neither).
    ``flip_rate_g`` / ``keep_rate_t``: of the pairs of the edit ``edit`` (its name is in the check's name
    unless it is the paper's complementary edit).
    """
    checks: list[Check] = []
    if (generated_cells is None) != (real_cells is None):
        raise ValueError("generated_cells and real_cells go together")
    if generated_cells is not None and real_cells is not None:
        checks += _cell_checks(generated_cells, real_cells, bounds.cell_ratio)
    if heldout_acc_t is not None:
        checks.append(_floor("h_t_heldout_acc", "held-out accuracy of h_t (target hyperplane)", heldout_acc_t,
                             bounds.min_heldout_acc))
    if heldout_acc_g is not None:
        checks.append(_floor("h_g_heldout_acc", "held-out accuracy of h_g (protected hyperplane)", heldout_acc_g,
                             bounds.min_heldout_acc))
    if cos_theta is not None:
        checks.append(_ceiling("abs_cos_theta", f"|cos θ| = |w_t·w_g| (cos θ = {cos_theta:.3f})",
                               abs(cos_theta), bounds.max_cos))
    tag = "" if edit == "complementary" else f"[{edit}]"
    on = "" if edit == "complementary" else f" ({edit} edit)"
    if flip_rate_g is not None:
        checks.append(_floor(f"flip_rate_g{tag}", f"share of pairs whose f_g label flipped on G(z'){on}",
                             flip_rate_g, bounds.min_flip_rate))
    if keep_rate_t is not None:
        checks.append(_floor(f"keep_rate_t{tag}", f"share of pairs whose f_t label held on G(z'){on}",
                             keep_rate_t, bounds.min_keep_rate))
    if verified_rate is not None:
        checks.append(_floor(f"verified_rate{tag}", f"share of pairs verified on the images (f_t held and f_g "
                             f"flipped){on}", verified_rate, bounds.min_verified_rate))
    # a NaN figure fails every comparison above already; say why rather than print "nan is below the floor"
    return [Check(c.name, None, c.bound, c.kind, False, f"{c.name} is not a finite number ({c.value}), so it "
                  f"cannot be checked against its bound {c.bound:g}")
            if c.value is not None and not math.isfinite(c.value) else c for c in checks]


def labeler_checks(accuracy: Mapping[str, Mapping[str, float]], counts: Mapping[str, int], *,
                   bounds: PreflightBounds = PreflightBounds(), split: str = "val") -> list[Check]:
    """For each labeler (``"t"``, ``"g"``), its accuracy in its worst (target, protected) cell among the cells
    with at least :data:`LABELER_MIN_IMAGES` real images, against ``bounds.min_labeler_acc``.

    ``accuracy``: ``{"t": {cell: acc}, "g": {cell: acc}}``, each labeler's share of correct labels of its own
    attribute among the real ``split`` images of the cell; ``counts``: ``{cell: images}``. The worst cell is
    the one that matters: f_t that reads the protected attribute is right in the two cells where t and g
    agree and wrong in the two where they disagree — the cells the pairs fill. Too few images in every cell:
    one undefined (passed) check per labeler that says so."""
    out: list[Check] = []
    worst = worst_cells(accuracy, counts)
    for who, attr in (("t", "target"), ("g", "protected attribute")):
        name = f"f_{who}_cell_acc"
        if worst[who] is None:
            out.append(Check(name, None, bounds.min_labeler_acc, "floor", True,
                             f"f_{who}'s accuracy per cell: no cell has {LABELER_MIN_IMAGES} real {split} images, "
                             "so it is not judged"))
            continue
        cell, acc = worst[who]
        out.append(_floor(name, f"f_{who}'s accuracy on the {attr} in its worst cell ({cell}, "
                                f"{int(counts[cell])} real {split} images)", acc, bounds.min_labeler_acc))
    return out


def worst_cells(accuracy: Mapping[str, Mapping[str, float]],
                counts: Mapping[str, int]) -> dict[str, tuple[str, float] | None]:
    """``{"t": (cell, acc), "g": (cell, acc)}``: each labeler's least accurate cell among those with at least
    :data:`LABELER_MIN_IMAGES` images (None: no such cell)."""
    out: dict[str, tuple[str, float] | None] = {}
    for who in ("t", "g"):
        judged = {c: float(a) for c, a in accuracy[who].items() if int(counts.get(c, 0)) >= LABELER_MIN_IMAGES}
        out[who] = min(judged.items(), key=lambda kv: kv[1]) if judged else None
    return out


def extra_plane_checks(planes: Mapping[str, Mapping[str, float]], *,
                       bounds: PreflightBounds = PreflightBounds()) -> list[Check]:
    """The checks of planes beyond h_t and h_g, in the order given: for each, its held-out accuracy against
    the floor and, for each plane it is compared with, ``|cos|`` against the ceiling.

    ``planes``: ``{name: {"heldout_acc": a, "cos_t": c, "cos_g": c}}`` (the ``cos_*`` keys optional), e.g.
    the planes of the extra protected attributes the multi-protected edit flips or holds (a plane nearly
    parallel to h_t cannot be flipped with the target score held, one parallel to h_g cannot be held while
    g flips), or the per-group target planes of the domain-dependent edit (``cos_g`` only)."""
    against = {"cos_t": "h_t", "cos_g": "h_g"}
    out: list[Check] = []
    for name, rec in planes.items():
        out.append(_floor(f"h_{name}_heldout_acc", f"held-out accuracy of the {name} hyperplane",
                          float(rec["heldout_acc"]), bounds.min_heldout_acc))
        for key, other in against.items():
            if key in rec:
                out.append(_ceiling(f"abs_cos[{name},{other}]", f"|cos| of the {name} hyperplane with {other}",
                                    abs(float(rec[key])), bounds.max_cos))
    return out


def failed(checks: list[Check]) -> list[Check]:
    return [c for c in checks if not c.passed]


#: How a method uses synthetic pairs: (edit, pair filter) — e.g. ("complementary", "verified").
Use = tuple[str, str]


def _edit_of(name: str) -> str:
    """The edit a flip/keep check is about: ``flip_rate_g`` → complementary, ``flip_rate_g[domain]`` →
    domain, ``flip_rate_g[multi_protected: flip A+B]`` → multi_protected."""
    if "[" not in name:
        return "complementary"
    return name[name.index("[") + 1:].rstrip("]").split(":")[0]


def blocks(check: Check, uses: Iterable[Use]) -> bool:
    """Whether a failure of ``check`` can make the training set of a method using ``uses`` wrong.

    * the labelers' accuracy per real cell (``f_t_cell_acc``, ``f_g_cell_acc``): always — every pair's labels,
      and the verification itself, are theirs;
    * a cell the generator never drew: always; a cell drawn at another rate than the real one: never (the
      mix of G(z)'s cells is not what the pairs are judged by);
    * the flip rate of an edit: for a method using that edit's pairs unverified or filtered on the target only
      (``all``, ``agree``), since a pair whose G(z') did not change group teaches the correlation itself;
    * the keep rate of an edit: for a method using all of that edit's pairs (``agree`` and ``verified`` drop
      the pairs whose target changed);
    * the share of an edit's pairs verified on the images: for a method on its verified pairs (below the
      floor the edit fails on the images for most latents, and the survivors are a selected corner of the
      latent space, not a counterfactual of the data);
    * the planes' held-out accuracy and |cos|: for a method using any pairs not verified on the images.
    """
    uses = list(uses)
    if not uses:
        return False
    name = check.name
    if name in ("f_t_cell_acc", "f_g_cell_acc"):
        return True
    if name.startswith("cell_rate["):
        return check.value == 0.0
    if name.startswith("flip_rate_g"):
        return any(e == _edit_of(name) and f in ("all", "agree") for e, f in uses)
    if name.startswith("keep_rate_t"):
        return any(e == _edit_of(name) and f == "all" for e, f in uses)
    if name.startswith("verified_rate"):
        return any(e == _edit_of(name) and f == "verified" for e, f in uses)
    return any(f != "verified" for _, f in uses)


def blocking(checks: list[Check], uses: Iterable[Use]) -> list[Check]:
    """The failed checks that block a method using ``uses`` (:func:`blocks`)."""
    uses = list(uses)
    return [c for c in failed(checks) if blocks(c, uses)]


def method_verdicts(checks: list[Check], uses_by_method: Mapping[str, Use]) -> dict[str, bool]:
    """Per method that trains on pairs, whether no failed check blocks it: the pre-flight verdict that goes
    with that method's results (a run can be trustworthy for the verified pairs and not for all of them)."""
    return {m: not blocking(checks, [use]) for m, use in uses_by_method.items()}


def verdict(checks: list[Check], uses_by_method: Mapping[str, Use]) -> dict[str, Any]:
    """The run's verdict as ``report.json`` and the benchmarks record it: ``passed`` (no failed check blocks
    a listed method), ``blocking`` (the names of those that do) and ``by_method`` (:func:`method_verdicts`)."""
    block = blocking(checks, uses_by_method.values())
    return {"passed": not block, "blocking": [c.name for c in block],
            "by_method": method_verdicts(checks, uses_by_method)}


def warn_failed(checks: list[Check], uses: Iterable[Use] | None = None) -> None:
    """One warning per failed check, naming the figure and its bound: a :class:`PreflightWarning` when it
    blocks a method using ``uses`` (None: every failure blocks), else a :class:`PreflightCaution` that says
    which pairs make it harmless.

    Emitted with a fresh registry each time, so a failing check is said on every run of a long-lived
    process too (Python's default filter shows a warning once per code location); a user's "ignore" or
    "error" filter still applies.
    """
    uses = None if uses is None else list(uses)
    for c in failed(checks):
        if uses is None or blocks(c, uses):
            warnings.warn_explicit(f"pre-flight check {c.name} failed: {c.message}", PreflightWarning,
                                   __file__, 0, module=__name__, registry=None)
        else:
            warnings.warn_explicit(f"pre-flight caution {c.name}: {c.message} (not blocking: no listed method "
                                   "trains on pairs whose correctness depends on it)", PreflightCaution,
                                   __file__, 0, module=__name__, registry=None)


def strict_failure_message(checks: list[Check], uses: Iterable[Use] | None = None) -> str:
    bad = failed(checks) if uses is None else blocking(checks, uses)
    return (f"pre-flight check{'s' if len(bad) > 1 else ''} failed and latent.strict = true, so no classifier is "
            f"trained on the synthetic data: " + "; ".join(f"{c.name}: {c.message}" for c in bad))
