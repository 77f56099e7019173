"""utils/settings.py: --set parsing, overrides into nested tables, errors naming file and dotted key."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ConfigDict, Field

from fairlatent.errors import FairlatentError
from fairlatent.utils.settings import (apply_overrides, load_toml, parse_overrides, parse_value, settings_from,
                                       validate_settings)


class Inner(BaseModel):
    model_config = ConfigDict(extra="forbid")
    steps: int = Field(10, ge=1)
    rate: float = 0.5


class Outer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = "x"
    flag: bool = False
    sizes: list[int] = Field(default_factory=list)
    inner: Inner = Inner()


def test_values_are_toml_literals_with_string_fallback():
    assert parse_value("3") == 3 and isinstance(parse_value("3"), int)
    assert parse_value("1e-3") == 1e-3 and parse_value("2.5") == 2.5
    assert parse_value("true") is True and parse_value("false") is False
    assert parse_value("[1, 2, 3]") == [1, 2, 3]
    assert parse_value('"quoted string"') == "quoted string"
    assert parse_value("resnet") == "resnet"  # not TOML: the text itself
    assert parse_value("a b") == "a b"
    assert parse_value("{ a = 1 }") == {"a": 1}


def test_parse_overrides_dotted_keys_and_malformed_items():
    assert parse_overrides(["gan.steps=2000", "seed=1", "name=demo", "gan.steps=3"]) == {
        "gan.steps": 3, "seed": 1, "name": "demo"}
    assert parse_overrides(["path=a=b"]) == {"path": "a=b"}  # only the first '=' splits
    for bad in ("nokey", "=3", "gan.=3", ".x=1"):
        with pytest.raises(FairlatentError, match=f"--set {bad!r}: expected KEY=VALUE"):
            parse_overrides(["seed=1", bad])


def test_apply_overrides_creates_sections_and_does_not_touch_input():
    raw = {"seed": 0, "gan": {"width": 16}}
    out = apply_overrides(raw, {"gan.steps": 5, "data.n": 100, "seed": 2})
    assert out == {"seed": 2, "gan": {"width": 16, "steps": 5}, "data": {"n": 100}}
    assert raw == {"seed": 0, "gan": {"width": 16}}
    with pytest.raises(FairlatentError, match="seed is a value, not a section"):
        apply_overrides(raw, {"seed.x": 1})


def test_validation_lists_every_problem_by_dotted_key_and_origin():
    with pytest.raises(FairlatentError) as exc:
        validate_settings(Outer, {"nmae": "y", "inner": {"stepz": 3, "steps": 0}}, "c.toml",
                          {"inner.steps": "--set"})
    lines = str(exc.value).splitlines()
    assert "c.toml: nmae: unknown key" in lines
    assert "c.toml: inner.stepz: unknown key" in lines
    assert any(line.startswith("--set: inner.steps: Input should be greater than or equal to 1") for line in lines)
    assert len(lines) == 3


def test_settings_from_precedence(tmp_path):
    f = tmp_path / "s.toml"
    f.write_text('name = "file"\nflag = true\n[inner]\nsteps = 4\nrate = 0.1\n')
    s = settings_from(Outer, config=f, given={"name": "flag", "sizes": None}, overrides=["inner.steps=7"])
    assert (s.name, s.flag, s.inner.steps, s.inner.rate, s.sizes) == ("flag", True, 7, 0.1, [])
    s = settings_from(Outer, given={"name": "flag"}, overrides=["name=set", "sizes=[1,2]"])
    assert s.name == "set" and s.sizes == [1, 2]
    f.write_text("[inner]\nstepz = 4\n")
    with pytest.raises(FairlatentError, match=rf"{f}: inner\.stepz: unknown key"):
        settings_from(Outer, config=f)


def test_load_toml_errors(tmp_path):
    with pytest.raises(FairlatentError, match="config file not found"):
        load_toml(tmp_path / "missing.toml")
    (tmp_path / "bad.toml").write_text("a = = 1")
    with pytest.raises(FairlatentError, match="bad.toml: not valid TOML"):
        load_toml(tmp_path / "bad.toml")


def test_settings_is_base_layer():
    """utils/settings.py may import only fairlatent.errors / fairlatent.utils from the package."""
    import ast
    import inspect

    import fairlatent.utils.settings as mod

    tree = ast.parse(inspect.getsource(mod))
    names = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    names |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    ours = {n for n in names if n.startswith("fairlatent")}
    assert ours and all(n == "fairlatent.errors" or n.startswith("fairlatent.utils") for n in ours), ours
