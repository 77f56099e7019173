"""Pre-flight checks of the latent stages (fairlatent.latent.preflight, the pipeline's gate before training on
synthetic data): each check fires on planted figures and on a generator/labeler pair built to fail it, and
stays quiet on a good case; ``latent.strict`` stops the run before any ``train_<method>`` stage."""

from __future__ import annotations

import hashlib
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from fairlatent.errors import FairlatentError
from fairlatent.latent.preflight import (CELLS, Check, PreflightBounds, PreflightCaution, PreflightWarning, blocking,
                                        blocks, extra_plane_checks, failed, labeler_checks, method_verdicts,
                                        preflight_checks, warn_failed)
from fairlatent.models.latent_spec import LatentSpec
from fairlatent.pipeline.config import LatentConfig, validate_config
from fairlatent.pipeline.methods import NO_EDIT_ALTERNATIVES, method_names, no_edit_alternatives_sentence, pair_uses
from fairlatent.pipeline.run import Pipeline
from fairlatent.pipeline.stages import StageResult

B = PreflightBounds()
REAL = {"t0_g0": 450, "t0_g1": 50, "t1_g0": 50, "t1_g1": 450}  # skew 0.9, 1000 images
GOOD = dict(generated_cells={"t0_g0": 4400, "t0_g1": 600, "t1_g0": 600, "t1_g1": 4400}, real_cells=REAL,
            heldout_acc_t=0.95, heldout_acc_g=0.93, cos_theta=0.9, flip_rate_g=0.9, keep_rate_t=0.92)


def by_name(checks):
    return {c.name: c for c in checks}


# ------------------------------------------------------------------ the pure function, planted figures
def test_good_figures_pass_every_check():
    checks = preflight_checks(bounds=B, **GOOD)
    assert [c.name for c in checks] == [f"cell_rate[{c}]" for c in CELLS] + [
        "h_t_heldout_acc", "h_g_heldout_acc", "abs_cos_theta", "flip_rate_g", "keep_rate_t"]
    assert failed(checks) == []
    # cell t0_g1: 600/10000 over 50/1000 = 1.2
    assert by_name(checks)["cell_rate[t0_g1]"].value == pytest.approx(1.2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warn_failed(checks)
    assert caught == []


def test_cell_never_drawn_fails():
    gen = {**GOOD["generated_cells"], "t1_g0": 0}
    checks = by_name(preflight_checks(bounds=B, generated_cells=gen, real_cells=REAL))
    c = checks["cell_rate[t1_g0]"]
    assert not c.passed and c.value == 0.0 and "never drew" in c.message
    assert [n for n, x in checks.items() if not x.passed] == ["cell_rate[t1_g0]"]


def test_cell_over_drawn_and_under_drawn_fail_and_the_band_edges_pass():
    # t1_g0 drawn at 0.2 against a real 0.05: 4× > r = 3
    gen = {"t0_g0": 4000, "t0_g1": 500, "t1_g0": 2000, "t1_g1": 3500}
    c = by_name(preflight_checks(bounds=B, generated_cells=gen, real_cells=REAL))["cell_rate[t1_g0]"]
    assert not c.passed and c.value == pytest.approx(4.0) and c.kind == "ratio" and c.bound == 3.0
    assert "above" in c.message
    # t0_g0 drawn at 0.1 against a real 0.45: 0.222 < 1/3
    gen = {"t0_g0": 1000, "t0_g1": 500, "t1_g0": 500, "t1_g1": 8000}
    c = by_name(preflight_checks(bounds=B, generated_cells=gen, real_cells=REAL))["cell_rate[t0_g0]"]
    assert not c.passed and c.value == pytest.approx(1000 / 10000 / 0.45) and "below" in c.message
    # exactly r and exactly 1/r are inside the band
    gen = {"t0_g0": 150, "t0_g1": 150, "t1_g0": 150, "t1_g1": 550}  # t0_g1, t1_g0: 0.15 / 0.05 = 3; t0_g0: 1/3
    checks = by_name(preflight_checks(bounds=B, generated_cells=gen, real_cells=REAL))
    assert checks["cell_rate[t0_g1]"].value == pytest.approx(3.0) and checks["cell_rate[t0_g1]"].passed
    assert checks["cell_rate[t0_g0]"].value == pytest.approx(1 / 3) and checks["cell_rate[t0_g0]"].passed
    # a tighter r makes the same figures fail
    tight = preflight_checks(bounds=PreflightBounds(cell_ratio=2.0), generated_cells=gen, real_cells=REAL)
    assert {c.name for c in failed(tight)} == {"cell_rate[t0_g0]", "cell_rate[t0_g1]", "cell_rate[t1_g0]"}


def test_cell_absent_from_real_data_is_undefined_not_failed():
    real = {**REAL, "t1_g0": 0}
    c = by_name(preflight_checks(bounds=B, generated_cells=GOOD["generated_cells"], real_cells=real))["cell_rate[t1_g0]"]
    assert c.value is None and c.passed and "no image in this cell" in c.message


@pytest.mark.parametrize("cos", [0.99, -0.99, 1.0])
def test_parallel_planes_fail_the_cos_ceiling_either_sign(cos):
    c = by_name(preflight_checks(bounds=B, cos_theta=cos))["abs_cos_theta"]
    assert not c.passed and c.value == pytest.approx(abs(cos)) and c.kind == "ceiling" and c.bound == B.max_cos


def test_heldout_accuracy_floor():
    checks = by_name(preflight_checks(bounds=B, heldout_acc_t=0.69, heldout_acc_g=0.7))
    assert not checks["h_t_heldout_acc"].passed and checks["h_g_heldout_acc"].passed  # the floor itself passes


def test_a_nan_figure_fails_with_a_reason():
    c = by_name(preflight_checks(bounds=B, heldout_acc_t=float("nan")))["h_t_heldout_acc"]
    assert not c.passed and c.value is None and "not a finite number" in c.message


def test_edit_that_does_not_flip_fails_and_names_a_non_default_edit():
    checks = by_name(preflight_checks(bounds=B, flip_rate_g=0.5, keep_rate_t=0.95))
    assert not checks["flip_rate_g"].passed and checks["keep_rate_t"].passed
    checks = by_name(preflight_checks(bounds=B, flip_rate_g=0.95, keep_rate_t=0.4, edit="reflect"))
    assert not checks["keep_rate_t[reflect]"].passed and "reflect" in checks["keep_rate_t[reflect]"].message


def test_extra_planes_are_checked_for_accuracy_and_for_each_angle_given():
    """A second protected attribute's plane: nearly parallel to h_t (so it cannot be flipped with the target
    held) fails the cos ceiling against h_t only; a weak per-group target plane fails the accuracy floor."""
    planes = {"Smiling": {"heldout_acc": 0.91, "cos_t": -0.99, "cos_g": 0.2},
              "t[Male=0]": {"heldout_acc": 0.61, "cos_g": 0.1}}
    checks = by_name(extra_plane_checks(planes, bounds=B))
    assert list(checks) == ["h_Smiling_heldout_acc", "abs_cos[Smiling,h_t]", "abs_cos[Smiling,h_g]",
                            "h_t[Male=0]_heldout_acc", "abs_cos[t[Male=0],h_g]"]
    assert {c.name for c in failed(list(checks.values()))} == {"abs_cos[Smiling,h_t]", "h_t[Male=0]_heldout_acc"}
    assert checks["abs_cos[Smiling,h_t]"].value == pytest.approx(0.99)
    assert "0.610 is below the floor 0.700" in checks["h_t[Male=0]_heldout_acc"].message
    assert extra_plane_checks({}, bounds=B) == []


def test_warnings_name_the_figure_and_the_bound_once_per_failure_every_time():
    checks = preflight_checks(bounds=B, **{**GOOD, "cos_theta": 0.99, "flip_rate_g": 0.5})
    for _ in range(2):  # said again on a second call from the same line (a second run in one process)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("default")
            warn_failed(checks)
        texts = [str(w.message) for w in caught]
        assert [w.category for w in caught] == [PreflightWarning, PreflightWarning]
        assert "abs_cos_theta" in texts[0] and "0.990" in texts[0] and "0.970" in texts[0]
        assert "flip_rate_g" in texts[1] and "0.500" in texts[1] and "floor 0.700" in texts[1]


def test_settings_defaults_match_and_are_validated():
    assert LatentConfig().preflight_bounds() == PreflightBounds()
    assert LatentConfig().strict is False
    cfg = validate_config({"latent": {"preflight_max_cos": 0.5, "strict": True}})
    assert cfg.latent.preflight_bounds().max_cos == 0.5 and cfg.latent.strict
    for bad in ({"preflight_cell_ratio": 0.5}, {"preflight_min_flip_rate": 1.5}, {"preflight_max_cos": -0.1}):
        with pytest.raises(FairlatentError, match=next(iter(bad))):
            validate_config({"latent": bad})


# ------------------------------------------------------------------ real objects through the pipeline's stages
DIM = 8
SCALE = 25.0  # pixel = 128 + SCALE · feature


class FeatureGenerator:
    """A hand-made image generator (the Generator protocol): pixel (0, 0, k) of G(z) shows feature k of z.

    Feature 0 is z·e_t (the target), feature 1 is z·u (the protected), with u at ``angle_deg`` from e_t, so
    two half-spaces through the origin that disagree on angle/180 of latents. ``shell``: outside ‖z‖ > shell
    the generator draws feature 1 at −|z·u| (the protected attribute absent), as a GAN may do far from its
    training latents. ``same``: feature 1 is feature 0 (t and g the same attribute). ``t_offset``: target
    feature z·e_t + offset (more targets drawn)."""

    condition_dim = 0
    output_kind = "image"

    def __init__(self, angle_deg: float = 18.0, *, shell: float | None = None, same: bool = False,
                 t_offset: float = 0.0, never_t1_g0: bool = False):
        self.latent_spec = LatentSpec(normal_dim=DIM)
        a = math.radians(angle_deg)
        self.e_t = np.eye(DIM)[0]
        self.u = math.cos(a) * np.eye(DIM)[0] + math.sin(a) * np.eye(DIM)[1]
        self.shell, self.same, self.t_offset, self.never_t1_g0 = shell, same, t_offset, never_t1_g0

    def sample_latents(self, n, seed, truncation=None):
        return self.latent_spec.sample(n, seed, truncation)

    def features(self, z):
        z = np.asarray(z, dtype=np.float64)
        f_t = z @ self.e_t + self.t_offset
        f_g = f_t.copy() if self.same else z @ self.u
        if self.never_t1_g0:  # a target image always shows the protected attribute too
            f_g = np.where(f_t > 0, np.abs(f_g) + 0.5, f_g)
        if self.shell is not None:
            f_g = np.where(np.linalg.norm(z, axis=1) > self.shell, -np.abs(f_g) - 0.5, f_g)
        return f_t, f_g

    def decode(self, z, condition=None):
        f_t, f_g = self.features(z)
        img = np.full((len(z), 4, 4, 3), 128, dtype=np.uint8)
        img[:, 0, 0, 0] = np.clip(np.round(128 + SCALE * f_t), 0, 255)
        img[:, 0, 0, 1] = np.clip(np.round(128 + SCALE * f_g), 0, 255)
        return img


class PixelLabeler:
    """A hand-made classifier handle: score of attribute k = pixel (0, 0, k) read back as a feature."""

    def __init__(self, attributes):
        self.attributes = list(attributes)
        self.thresholds = {a: {"f1": 0.0, "calibrated": 0.0} for a in self.attributes}

    def predict_scores(self, images):
        return np.stack([(images[:, 0, 0, k].astype(np.float64) - 128) / SCALE
                         for k in range(len(self.attributes))], axis=1)


def pipeline_with(tmp_path: Path, data: Path, gen: FeatureGenerator, methods=("baseline", "latent_debias"),
                  **latent) -> Pipeline:
    """A Pipeline over the ToyFaces fixture whose gan and labeler stages are the hand-made objects above; the
    latents, hyperplanes, pairs and preflight stages are the pipeline's own code. latent_debias is the paper's
    (every pair: every failed check blocks it) unless ``pair_filter`` says otherwise."""
    latent = {"pair_filter": "all", **latent}
    cfg = validate_config({"data": {"source": "path", "path": str(data)},
                           "latent": {"n_fit": 600, "n_holdout": 300, "n_pairs": 400, **latent},
                           "methods": list(methods)})
    pipe = Pipeline(cfg, tmp_path / "run", console=Console(quiet=True), progress=False)
    labeler = PixelLabeler([pipe.t, pipe.g])
    tag = repr(vars(gen))

    def fake_gan():
        pipe.stages.results["gan"] = StageResult("gan", tmp_path, f"gen {tag}", {}, 0.0, False)

    def fake_labeler():
        pipe.stages.results["labeler"] = StageResult("labeler", tmp_path, "pixel", {}, 0.0, False)

    pipe.stage_gan, pipe.stage_labeler = fake_gan, fake_labeler
    # the pixel labelers read the generator's images only, not real faces: no labeler check (tests of it
    # call the real stage with labelers of real images)
    pipe.stage_labeler_check = lambda: None
    pipe._generator = lambda: gen
    pipe._labelers = lambda: (labeler, labeler)
    return pipe


def run_latent_stages(pipe: Pipeline, *, pairs: bool = True, category=PreflightWarning):
    """data → latents → hyperplanes (→ pairs → preflight) as Pipeline.run() orders them; the warnings of
    ``category`` said (blocking failures; PreflightCaution: the others)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        pipe.stage_data()
        pipe.stage_gan()
        pipe.stage_labeler()
        pipe.stage_latents()
        pipe.stage_hyperplanes()
        pipe._preflight_gate(pipe._preflight_geometry())
        if pairs:
            pipe.stage_pairs()
            pipe._preflight_gate(pipe._preflight_edits())
            pipe.stage_preflight()
    return [str(w.message) for w in caught if w.category is category]


def failed_names(pipe: Pipeline) -> set[str]:
    return {c["name"] for c in pipe.preflight["checks"] if not c["passed"]}


def test_good_generator_and_labelers_pass_quietly_and_store_cell_samples(tmp_path, toyfaces_small):
    pipe = pipeline_with(tmp_path, toyfaces_small, FeatureGenerator(18.0))
    said = run_latent_stages(pipe)
    assert said == [] and pipe.preflight["passed"] and failed_names(pipe) == set()
    checks = {c["name"]: c for c in pipe.preflight["checks"]}
    assert checks["abs_cos_theta"]["value"] == pytest.approx(math.cos(math.radians(18)), abs=0.03)
    assert checks["flip_rate_g"]["value"] > 0.95 and checks["keep_rate_t"]["value"] > 0.95
    # the cell samples are G(z) of latents the labeler put in each cell
    samples = np.load(pipe.stages.results["preflight"].dir / "cell_samples.npz")
    for c in CELLS:
        imgs = samples[c]
        assert 0 < len(imgs) <= 16
        t = imgs[:, 0, 0, 0] > 128
        g = imgs[:, 0, 0, 1] > 128
        assert np.all(t == (c[1] == "1")) and np.all(g == (c[4] == "1"))


def test_cell_never_drawn_fires_through_the_stages(tmp_path, toyfaces_small):
    pipe = pipeline_with(tmp_path, toyfaces_small, FeatureGenerator(18.0, never_t1_g0=True))
    said = run_latent_stages(pipe, pairs=False)
    checks = {c.name: c for c in pipe._preflight_geometry()}
    assert pipe.stages.results["latents"].outputs["cells"]["t1_g0"] == 0
    assert not checks["cell_rate[t1_g0]"].passed
    assert any("cell_rate[t1_g0]" in s and "never drew" in s for s in said)


def test_cell_over_drawn_fires_with_the_ratio_of_the_labelled_latents(tmp_path, toyfaces_small):
    # a cell drawn at another rate than the real one is said as a caution, whatever the pairs (it does not
    # make a pair wrong: preflight.blocks)
    pipe = pipeline_with(tmp_path, toyfaces_small, FeatureGenerator(18.0, t_offset=1.0))
    said = run_latent_stages(pipe, pairs=False, category=PreflightCaution)
    c = {c.name: c for c in pipe._preflight_geometry()}["cell_rate[t1_g0]"]
    # recomputed here from the latents the stage saved and the generator's own features
    z = np.load(pipe.stages.results["latents"].dir / "z.npy")
    f_t, f_g = FeatureGenerator(18.0, t_offset=1.0).features(z)
    px = lambda f: np.clip(np.round(128 + SCALE * f), 0, 255) > 128  # noqa: E731
    gen_rate = float((px(f_t) & ~px(f_g)).mean())
    real = pipe._data()
    tr = real.split_indices("train")
    rt, rg = real.labels(pipe.t, tr), real.labels(pipe.g, tr)
    real_rate = float(((rt == 1) & (rg == 0)).mean())
    assert c.value == pytest.approx(gen_rate / real_rate) and c.value > 3 and not c.passed
    assert any(s.startswith("pre-flight caution cell_rate[t1_g0]") and "above" in s for s in said)


def test_parallel_planes_fire_the_cos_check_before_the_pairs(tmp_path, toyfaces_small):
    # t and g labelled identically: h_t and h_g are one plane
    pipe = pipeline_with(tmp_path, toyfaces_small, FeatureGenerator(same=True))
    said = run_latent_stages(pipe, pairs=False)
    c = {c.name: c for c in pipe._preflight_geometry()}["abs_cos_theta"]
    assert c.value == pytest.approx(1.0, abs=1e-6) and not c.passed
    assert any("abs_cos_theta" in s and "ceiling 0.970" in s for s in said)
    assert "pairs" not in pipe.stages.results


def test_edit_that_does_not_flip_on_the_images_fires(tmp_path, toyfaces_small):
    # exact in latent space, but G draws no protected attribute outside ‖z‖ > 4.5, where most z' land
    pipe = pipeline_with(tmp_path, toyfaces_small, FeatureGenerator(18.0, shell=4.5))
    said = run_latent_stages(pipe)
    assert pipe.stages.results["pairs"].outputs["complementary"]["latent_target_score_change"] < 1e-6
    flip = {c["name"]: c for c in pipe.preflight["checks"]}["flip_rate_g"]
    assert flip["value"] == pipe.stages.results["pairs"].outputs["complementary"]["flip_rate_g"]
    assert flip["value"] < 0.7 and not flip["passed"] and not pipe.preflight["passed"]
    assert failed_names(pipe) == {"flip_rate_g"}
    assert len(said) == 1 and "flip_rate_g" in said[0] and "floor 0.700" in said[0]


def test_strict_stops_before_any_train_stage(tmp_path, toyfaces_small):
    pipe = pipeline_with(tmp_path, toyfaces_small, FeatureGenerator(18.0, shell=4.5), strict=True)
    trained = []
    real_stage_train = pipe.stage_train
    pipe.stage_train = lambda m: (trained.append(m), real_stage_train(m))
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("default")
        with pytest.raises(FairlatentError) as info:
            pipe.run()
    msg = str(info.value)
    assert "latent.strict" in msg and "flip_rate_g" in msg and "0.700" in msg
    # the refusal names what can still run: methods no pre-flight check judges (no hyperplane, no edit)
    assert msg.endswith(no_edit_alternatives_sentence()) and "latent_oversample_probe, latent_oversample" in msg
    assert pair_uses(list(NO_EDIT_ALTERNATIVES), "verified") == {} and set(NO_EDIT_ALTERNATIVES) <= set(method_names())
    assert trained == [] and not any(n.startswith("train_") for n in pipe.stages.results)
    assert not list((tmp_path / "run").glob("train_*"))
    assert "pairs" in pipe.stages.results  # the edit is checked after the pairs, before training


def test_strict_stops_on_the_geometry_before_rendering_pairs(tmp_path, toyfaces_small):
    pipe = pipeline_with(tmp_path, toyfaces_small, FeatureGenerator(18.0, never_t1_g0=True), strict=True)
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("default")
        with pytest.raises(FairlatentError, match=r"cell_rate\[t1_g0\]"):
            pipe.run()
    assert "pairs" not in pipe.stages.results and not list((tmp_path / "run").glob("train_*"))


# ------------------------------------------------------------------ which failures block which pairs
def _check(name: str, value: float = 0.5, passed: bool = False) -> Check:
    return Check(name, value, 0.7, "floor", passed, "planted")


@pytest.mark.parametrize("name, value, all_, agree, verified", [
    ("f_t_cell_acc", 0.1, True, True, True),  # the labelers label (and verify) every pair
    ("f_g_cell_acc", 0.1, True, True, True),
    ("cell_rate[t1_g0]", 0.0, True, True, True),  # never drawn
    ("cell_rate[t1_g0]", 5.0, False, False, False),  # drawn at another rate: a caution
    ("cell_rate[t0_g1]", 0.1, False, False, False),
    ("flip_rate_g", 0.4, True, True, False),
    ("keep_rate_t", 0.4, True, False, False),
    ("verified_rate", 0.3, False, False, True),  # the verified pairs are what is left to train on
    ("h_g_heldout_acc", 0.6, True, True, False),
    ("abs_cos_theta", 0.99, True, True, False),
])
def test_a_failure_blocks_the_methods_whose_pairs_it_can_make_wrong(name, value, all_, agree, verified):
    c = _check(name, value)
    assert [blocks(c, [("complementary", f)]) for f in ("all", "agree", "verified")] == [all_, agree, verified]
    assert not blocks(c, [])  # no method trains on pairs
    # several methods: blocks when it blocks one of them; the verdict per method tells them apart
    assert blocks(c, [("complementary", "verified"), ("complementary", "all")]) == (all_ or verified)
    assert method_verdicts([c, _check("h_t_heldout_acc", 0.9, passed=True)],
                           {"a": ("complementary", "all"), "v": ("complementary", "verified")}) == \
        {"a": not all_, "v": not verified}


def test_an_edits_flip_and_keep_checks_block_only_the_methods_on_that_edit():
    flip_domain = _check("flip_rate_g[complementary_domain]", 0.3)
    assert blocks(flip_domain, [("complementary_domain", "all")])
    assert not blocks(flip_domain, [("complementary", "all")])
    multi = _check("keep_rate_t[multi_protected: flip Eyeglasses+Smiling]", 0.3)
    assert blocks(multi, [("multi_protected", "all")]) and not blocks(multi, [("complementary", "verified")])
    assert blocking([flip_domain, multi, _check("flip_rate_g", 0.9, passed=True)],
                    [("complementary_domain", "all")]) == [flip_domain]


def test_verified_pairs_turn_the_proxies_into_cautions_and_strict_goes_on(tmp_path, toyfaces_small):
    # the edit does not flip on the images (as in the test below), but latent_debias at its default trains only
    # on the pairs where it did: said as a caution, the run passes, strict does not stop it
    gen = FeatureGenerator(18.0, shell=4.5)
    pipe = pipeline_with(tmp_path, toyfaces_small, gen, pair_filter="verified", strict=True)
    cautions = run_latent_stages(pipe, category=PreflightCaution)
    assert failed_names(pipe) == {"flip_rate_g"}
    assert len(cautions) == 1 and cautions[0].startswith("pre-flight caution flip_rate_g") and "not blocking" in cautions[0]
    flip = {c["name"]: c for c in pipe.preflight["checks"]}["flip_rate_g"]
    assert not flip["passed"] and flip["blocks"] is False
    assert pipe.preflight["passed"] and pipe.preflight["by_method"] == {"latent_debias": True}
    # listed beside it, a method on the pairs whose target held (no flip verified) is blocked by the same figure
    both = pipeline_with(tmp_path / "both", toyfaces_small, gen, methods=("baseline", "latent_debias",
                                                                          "latent_debias_filtered"),
                         pair_filter="verified")
    said = run_latent_stages(both)
    assert len(said) == 1 and "flip_rate_g" in said[0]
    assert not both.preflight["passed"]
    assert both.preflight["by_method"] == {"latent_debias": True, "latent_debias_filtered": False}


def test_an_edit_verified_on_too_few_pairs_blocks_the_verified_pairs(tmp_path, toyfaces_small):
    # the protected attribute vanishes beyond ‖z‖ > 3: most z' land there, so few pairs flip f_g
    pipe = pipeline_with(tmp_path, toyfaces_small, FeatureGenerator(18.0, shell=3.0), pair_filter="verified")
    said = run_latent_stages(pipe)
    stats = pipe.stages.results["pairs"].outputs["complementary"]
    rate = stats["verified_kept"] / stats["pairs"]
    check = {c["name"]: c for c in pipe.preflight["checks"]}["verified_rate"]
    assert check["value"] == pytest.approx(rate) and rate < 0.4 and check["blocks"] is True
    assert len(said) == 1 and said[0].startswith("pre-flight check verified_rate failed") and "floor 0.400" in said[0]
    assert pipe.preflight["by_method"] == {"latent_debias": False} and not pipe.preflight["passed"]


def test_a_cell_never_drawn_blocks_even_verified_pairs(tmp_path, toyfaces_small):
    pipe = pipeline_with(tmp_path, toyfaces_small, FeatureGenerator(18.0, never_t1_g0=True), pair_filter="verified",
                         strict=True)
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("default")
        with pytest.raises(FairlatentError, match=r"cell_rate\[t1_g0\]"):
            pipe.run()
    assert "pairs" not in pipe.stages.results


# ------------------------------------------------------------------ the labelers on real validation images
class LookupLabeler(PixelLabeler):
    """Scores a real image of ``ds`` by looking its labels up — f_t gives the image's *protected* label when
    ``reads_g`` (a labeler that learnt the shortcut), its target label otherwise; f_g its protected label —
    and any other image (the generator's) by its pixels, as :class:`PixelLabeler`."""

    def __init__(self, ds, t: str, g: str, *, reads_g: bool):
        super().__init__([t, g])
        rows = np.arange(len(ds))
        self.known = {hashlib.sha1(img.tobytes()).hexdigest(): (lt, lg)
                      for img, lt, lg in zip(ds.images, ds.labels(t, rows), ds.labels(g, rows))}
        self.reads_g = reads_g

    def predict_scores(self, images):
        out = super().predict_scores(images)
        for i, img in enumerate(images):
            hit = self.known.get(hashlib.sha1(np.ascontiguousarray(img).tobytes()).hexdigest())
            if hit is not None:
                t, g = hit
                out[i] = (2.0 * (g if self.reads_g else t) - 1, 2.0 * g - 1)
        return out


@pytest.fixture(scope="module")
def toyfaces_mild(tmp_path_factory) -> Path:
    """Skew 0.6 and a large validation split: every (t, g) cell has ≥ 20 validation images to be judged."""
    from fairlatent.data.toyfaces import make_toyfaces

    return make_toyfaces(tmp_path_factory.mktemp("mild") / "toyfaces", n=800, size=32, seed=1, skew=0.6,
                         split_fractions=(0.5, 0.3, 0.2), progress=False)


@pytest.mark.parametrize("reads_g", [False, True])
def test_a_labeler_that_reads_the_protected_attribute_fails_on_the_real_validation_cells(tmp_path, toyfaces_mild,
                                                                                         reads_g):
    # planes 72° apart disagree on 72/180 = 40 % of latents, the data's skew 0.6: the cells are drawn right
    pipe = pipeline_with(tmp_path, toyfaces_mild, FeatureGenerator(72.0))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        pipe.stage_data()
        pipe.stage_gan()
        pipe.stage_labeler()
        lab = LookupLabeler(pipe._data(), pipe.t, pipe.g, reads_g=reads_g)
        pipe._labelers = lambda: (lab, lab)
        Pipeline.stage_labeler_check(pipe)
        pipe.stage_latents()
        pipe.stage_hyperplanes()
        pipe._preflight_gate(pipe._preflight_geometry())
    said = [str(w.message) for w in caught if w.category is PreflightWarning]
    out = pipe.stages.results["labeler_check"].outputs
    assert out["split"] == "val" and min(out["counts"].values()) >= 20
    checks = by_name(pipe._preflight_geometry())
    assert checks["f_g_cell_acc"].passed and checks["f_g_cell_acc"].value == 1.0
    if reads_g:  # right where t and g agree, wrong in both cells where they disagree: worst cell 0
        assert out["accuracy"]["t"] == {"t0_g0": 1.0, "t0_g1": 0.0, "t1_g0": 0.0, "t1_g1": 1.0}
        assert not checks["f_t_cell_acc"].passed and checks["f_t_cell_acc"].value == 0.0
        assert said == [m for m in said if "f_t_cell_acc" in m] and len(said) == 1
        assert "worst cell (t0_g1" in said[0] and "below the floor 0.600" in said[0]
    else:
        assert set(out["accuracy"]["t"].values()) == {1.0} and said == []
        assert all(c.passed for c in checks.values())


def test_a_cell_with_too_few_validation_images_is_not_judged():
    acc = {"t": {"t0_g0": 1.0, "t1_g0": 0.0}, "g": {"t0_g0": 1.0, "t1_g0": 1.0}}
    checks = by_name(labeler_checks(acc, {"t0_g0": 50, "t1_g0": 19}, bounds=B))
    assert checks["f_t_cell_acc"].passed and checks["f_t_cell_acc"].value == 1.0  # t1_g0 has 19 < 20 images
    none = by_name(labeler_checks(acc, {"t0_g0": 5, "t1_g0": 5}, bounds=B))
    assert none["f_t_cell_acc"].value is None and "not judged" in none["f_t_cell_acc"].message
