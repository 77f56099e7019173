"""Pipeline config validation and stage caching (no models needed)."""

from __future__ import annotations

import pytest

from fairlatent.errors import FairlatentError
from fairlatent.pipeline.config import load_config, validate_config
from fairlatent.pipeline.stages import StageRunner


def test_unknown_key_is_named(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text('seed = 1\n[data]\ntarget = "Smiling"\nskw = 0.9\n')
    with pytest.raises(FairlatentError, match=r"data\.skw: unknown key"):
        load_config(f)


def test_skew_out_of_range_and_same_attributes():
    with pytest.raises(FairlatentError, match=r"data\.skew"):
        validate_config({"data": {"skew": 1.5}})
    with pytest.raises(FairlatentError, match="both 'Smiling'"):
        validate_config({"data": {"target": "Smiling", "protected": "Smiling"}})


def test_unknown_method_lists_known():
    with pytest.raises(FairlatentError, match="unknown method.*latent_debias"):
        validate_config({"methods": ["baseline", "magic"]})


def test_bad_toml_and_missing_file(tmp_path):
    with pytest.raises(FairlatentError, match="config file not found"):
        load_config(tmp_path / "nope.toml")
    f = tmp_path / "bad.toml"
    f.write_text("seed = = 1")
    with pytest.raises(FairlatentError, match="not valid TOML"):
        load_config(f)


def test_builtin_configs_validate():
    from fairlatent.cli.pipeline_commands import _builtin_config

    for name in ("demo", "demo_fast"):
        cfg = _builtin_config(name)
        assert cfg.data.target == "Wearing_Hat" and cfg.data.protected == "Eyeglasses" and cfg.data.skew == 0.9


def test_stage_runner_skips_unchanged_and_reruns_on_change(tmp_path):
    calls = []

    def make(tag):
        def fn(d):
            calls.append(tag)
            (d / "out.txt").write_text(tag)
            return {"tag": tag}
        return fn

    r = StageRunner(tmp_path)
    a = r.run("a", {"x": 1}, make("a1"))
    r.run("b", {"y": 1}, make("b1"), deps=("a",))
    assert calls == ["a1", "b1"] and not a.skipped
    # same config: both skipped, outputs restored
    r2 = StageRunner(tmp_path)
    assert r2.run("a", {"x": 1}, make("a2")).skipped
    assert r2.run("b", {"y": 1}, make("b2"), deps=("a",)).outputs == {"tag": "b1"}
    assert calls == ["a1", "b1"]
    # upstream change invalidates downstream, stale files cleared
    r3 = StageRunner(tmp_path)
    r3.run("a", {"x": 2}, make("a3"))
    res = r3.run("b", {"y": 1}, make("b3"), deps=("a",))
    assert not res.skipped and calls[-2:] == ["a3", "b3"]


def test_stage_runner_resumes_interrupted_stage_with_its_files(tmp_path):
    seen = []

    def crash(d):
        (d / "checkpoint").write_text("half")
        raise KeyboardInterrupt

    def resume(d):
        seen.append((d / "checkpoint").read_text())
        return {}

    with pytest.raises(KeyboardInterrupt):
        StageRunner(tmp_path).run("train", {"k": 1}, crash)
    assert not (tmp_path / "train" / "stage.json").exists()
    StageRunner(tmp_path).run("train", {"k": 1}, resume)
    assert seen == ["half"]  # the interrupted stage's checkpoint was kept for the resume
    # a different config does not resume from a stale checkpoint
    with pytest.raises(KeyboardInterrupt):
        StageRunner(tmp_path).run("other", {"k": 1}, crash)
    StageRunner(tmp_path).run("other", {"k": 2}, lambda d: seen.append((d / "checkpoint").exists()) or {})
    assert seen[-1] is False


# ------------------------------------------------------------------ typed sections (one source of truth)
@pytest.mark.parametrize("raw, key", [
    ({"gan": {"stepz": 5}}, "gan.stepz"),
    ({"classifier": {"epoch": 3}}, "classifier.epoch"),
    ({"labeler": {"widht": 8}}, "labeler.widht"),
    ({"latent": {"n_pair": 10}}, "latent.n_pair"),
    ({"evaluation": {"nboot": 10}}, "evaluation.nboot"),
    ({"sede": 1}, "sede"),
])
def test_misspelt_key_in_any_section_is_named_at_load_time(tmp_path, raw, key):
    f = tmp_path / "config.toml"
    lines = []
    for k, v in raw.items():
        if isinstance(v, dict):
            lines.append(f"[{k}]")
            lines += [f"{kk} = {vv}" for kk, vv in v.items()]
        else:
            lines.insert(0, f"{k} = {v}")
    f.write_text("\n".join(lines) + "\n")
    with pytest.raises(FairlatentError) as exc:
        load_config(f)
    assert str(exc.value) == f"{f}: {key}: unknown key"


def test_section_values_are_checked_by_the_training_specs():
    with pytest.raises(FairlatentError, match=r"gan\.steps: Input should be greater than or equal to 1"):
        validate_config({"gan": {"steps": 0}})
    with pytest.raises(FairlatentError, match=r"classifier\.lr"):
        validate_config({"classifier": {"lr": -1.0}})
    # a cross-field rule of GANConfig, refused before anything trains
    with pytest.raises(FairlatentError, match="d_minibatch_std=3 needs a batch_size divisible"):
        validate_config({"gan": {"d_minibatch_std": 3, "batch_size": 64}})
    assert validate_config({}).latent.plane_weights == "none"  # the reference's unweighted planes
    with pytest.raises(FairlatentError, match=r"latent\.plane_weights: Input should be 'none' or 'cells'"):
        validate_config({"latent": {"plane_weights": "classes"}})


def test_removed_agreement_filter_points_to_the_method():
    with pytest.raises(FairlatentError, match=r"latent: latent\.agreement_filter was removed: list "
                                              r"'latent_debias_filtered' in methods"):
        validate_config({"latent": {"agreement_filter": True}})


def test_unknown_method_is_rejected_at_load_time_listing_the_registry(tmp_path):
    from fairlatent.pipeline.methods import method_names

    f = tmp_path / "c.toml"
    f.write_text('methods = ["baseline", "latent_debias_filterd"]\n')
    with pytest.raises(FairlatentError) as exc:
        load_config(f)
    msg = str(exc.value)
    assert msg.startswith(f"{f}: methods: unknown method(s) ['latent_debias_filterd']")
    assert all(name in msg for name in method_names())
    assert validate_config({"methods": ["synthetic_only"]}).methods == ["synthetic_only"]


def _old_specs(raw):
    """The merging of the untyped sections before they were typed (Pipeline._gan_config & co.)."""
    from fairlatent.train.classifier import ClassifierConfig
    from fairlatent.train.gan import GANConfig

    run = {"seed": raw.get("seed", 0), "device": raw.get("device")}
    gan = GANConfig(**{**run, **raw.get("gan", {})})
    clf = ClassifierConfig(**{**run, **raw.get("classifier", {})})
    lab = ClassifierConfig(**{**run, **raw.get("classifier", {}), **raw.get("labeler", {})})
    return gan, clf, lab


@pytest.mark.parametrize("name", ["demo", "demo_fast"])
def test_builtin_config_specs_equal_the_old_merging(name):
    """The stage cache keys of existing runs depend on these: typed sections must not change them."""
    import tomllib
    from importlib import resources

    from fairlatent.cli.pipeline_commands import _builtin_config

    raw = tomllib.loads((resources.files("fairlatent.pipeline") / "configs" / f"{name}.toml").read_text())
    cfg = _builtin_config(name)
    gan, clf, lab = _old_specs(raw)
    assert cfg.gan_spec() == gan and cfg.gan_spec().cache_key() == gan.cache_key()
    assert cfg.classifier_spec() == clf and cfg.classifier_spec().model_dump() == clf.model_dump()
    assert cfg.labeler_spec() == lab and cfg.labeler_spec().model_dump() == lab.model_dump()
    # the sections dump as written, as the untyped dicts did (config.json, report.json)
    dumped = cfg.model_dump()
    for section in ("gan", "classifier", "labeler"):
        assert dumped[section] == raw.get(section, {})
    if name == "demo_fast":
        assert lab.epochs == 5 and clf.epochs == 2 and gan.steps == 1500


def test_run_seed_and_device_are_section_defaults_and_labeler_overlays_classifier():
    raw = {"seed": 7, "device": "cpu", "gan": {"steps": 9, "seed": 3},
           "classifier": {"epochs": 2, "width": 8, "device": "cpu:0"}, "labeler": {"epochs": 4, "seed": 11}}
    cfg = validate_config(raw)
    gan, clf, lab = _old_specs(raw)
    assert (cfg.gan_spec().seed, cfg.gan_spec().device, cfg.gan_spec().steps) == (3, "cpu", 9)
    assert (cfg.classifier_spec().seed, cfg.classifier_spec().device) == (7, "cpu:0")
    assert (cfg.labeler_spec().epochs, cfg.labeler_spec().width, cfg.labeler_spec().seed) == (4, 8, 11)
    assert (cfg.gan_spec(), cfg.classifier_spec(), cfg.labeler_spec()) == (gan, clf, lab)
    # a dump validates back to the same specs (unset keys stay unset, so the run's seed still applies)
    again = validate_config(cfg.model_dump())
    assert (again.gan_spec(), again.classifier_spec(), again.labeler_spec()) == (gan, clf, lab)
    again.seed = 1
    assert again.classifier_spec().seed == 1 and again.gan_spec().seed == 3


def test_load_config_with_set_overrides(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text('seed = 1\n[gan]\nsteps = 100\n')
    cfg = load_config(f, ["gan.batch_size=16", "classifier.lr=1e-2", "methods=[\"baseline\"]", "name=x"])
    assert (cfg.gan.steps, cfg.gan.batch_size, cfg.classifier.lr, cfg.methods, cfg.name) == (
        100, 16, 1e-2, ["baseline"], "x")
    with pytest.raises(FairlatentError, match=r"^--set: gan\.stepz: unknown key$"):
        load_config(f, ["gan.stepz=3"])


def test_edit_codes_false_needs_codes_and_an_edit_that_supports_it():
    with pytest.raises(FairlatentError, match="latent.edit_codes = false holds the generator's codes fixed in the "
                                              "edit, but this GAN has none"):
        validate_config({"latent": {"edit_codes": False}})
    info = {"gan": {"info_categorical": [10], "info_continuous": 2}, "latent": {"edit_codes": False}}
    assert validate_config(info).latent.edit_codes is False
    with pytest.raises(FairlatentError, match=r"not for \['complementary_domain'\]"):
        validate_config({**info, "methods": ["baseline", "latent_debias_domain"]})
    # left out of the dump at its default, so the configs (and keys) of earlier runs do not change
    assert "edit_codes" not in validate_config({}).model_dump()["latent"]
    assert validate_config(info).model_dump()["latent"]["edit_codes"] is False
