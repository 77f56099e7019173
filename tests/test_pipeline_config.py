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
