"""Settings from TOML files and ``--set key=value`` overrides, validated into pydantic models.

Every configurable thing in fairlatent (the pipeline, the benchmark, a GAN or classifier training run) is a
pydantic model with ``extra="forbid"``. This module is the one path from user input to such a model:

1. :func:`load_toml` reads a file into a raw dict,
2. :func:`parse_overrides` turns ``--set`` items into ``{dotted key: value}``,
3. :func:`apply_overrides` writes them into the raw dict (dotted keys reach into sections),
4. :func:`validate_settings` validates the raw dict and raises one :class:`FairlatentError` that lists every
   problem by file (or flag) and dotted key, e.g. ``config.toml: gan.stepz: unknown key``.

So a misspelt key is named before anything trains, whichever way it came in. Settings classes derive from
:class:`StrictSettings` (unknown keys and booleans-for-numbers refused). This is the base layer: it imports
nothing from fairlatent but :mod:`fairlatent.errors` and :mod:`fairlatent.utils.io` (to read files).
"""

from __future__ import annotations

import copy
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError, ValidationInfo, field_validator

from fairlatent.errors import FairlatentError

M = TypeVar("M", bound=BaseModel)


class StrictSettings(BaseModel):
    """Base of every settings class (training specs, the pipeline config and its sections, benchmark
    configs): unknown keys are refused, and ``true``/``false`` is refused where a number belongs — pydantic
    would read ``n_boot = true`` or ``--set steps=true`` as 1 and train on it."""

    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="before")
    @classmethod
    def _no_bools_for_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        field = cls.model_fields.get(info.field_name or "")
        if isinstance(value, bool) and field is not None:
            ann = str(field.annotation)
            if ("int" in ann or "float" in ann) and "bool" not in ann:
                raise ValueError("expected a number, not true/false")
        return value


def load_toml(path: str | Path) -> dict[str, Any]:
    """The raw table of a TOML file; a missing or malformed file is a FairlatentError naming it."""
    from fairlatent.utils.io import read_user_text

    path = Path(path)
    text = read_user_text(path, what="config file")
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise FairlatentError(f"{path}: not valid TOML ({exc})") from None


def parse_value(text: str) -> Any:
    """A ``--set`` value: a TOML literal (``3``, ``1e-3``, ``true``, ``[1, 2]``, ``"x"``, ``{a = 1}``), else
    the text itself as a string, so ``--set arch=resnet`` needs no quotes."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def parse_overrides(items: Iterable[str], flag: str = "--set") -> dict[str, Any]:
    """``["gan.steps=2000", "seed=1"]`` → ``{"gan.steps": 2000, "seed": 1}`` (later items win).

    An item without ``=`` or with an empty key part is an error naming the item.
    """
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key or any(not part for part in key.split(".")):
            raise FairlatentError(f"{flag} {item!r}: expected KEY=VALUE, e.g. {flag} steps=2000 "
                                  f"(a dotted KEY reaches into a section: gan.steps=2000)")
        out[key] = parse_value(value.strip())
    return out


def apply_overrides(raw: Mapping[str, Any], overrides: Mapping[str, Any], flag: str = "--set") -> dict[str, Any]:
    """A deep copy of ``raw`` with each dotted key of ``overrides`` set (sections created as needed).

    Setting a key inside something that is not a section (``seed.x=1`` where ``seed = 0``) is an error.
    """
    out = copy.deepcopy(dict(raw))
    for key, value in overrides.items():
        node = out
        *parents, leaf = key.split(".")
        for i, p in enumerate(parents):
            child = node.setdefault(p, {})
            if isinstance(child, BaseModel):  # a section given as a model: overlay on what it set
                child = node[p] = child.model_dump(exclude_unset=True)
            if not isinstance(child, dict):
                raise FairlatentError(f"{flag} {key}={value!r}: {'.'.join(parents[: i + 1])} is a value, "
                                      f"not a section")
            node = child
        node[leaf] = value
    return out


def _origin(dotted: str, where: str, sources: Mapping[str, str] | None) -> str:
    """The label of the longest prefix of ``dotted`` that has a recorded source, else ``where``."""
    if sources:
        parts = dotted.split(".")
        for n in range(len(parts), 0, -1):
            label = sources.get(".".join(parts[:n]))
            if label is not None:
                return label
        # an unknown section that only an override introduced (``--set gann.steps=3`` → loc ``gann``)
        labels = {lab for key, lab in sources.items() if key.startswith(dotted + ".")}
        if len(labels) == 1:
            return labels.pop()
    return where


def format_validation_error(exc: ValidationError, where: str, sources: Mapping[str, str] | None = None) -> str:
    """One line per problem: ``<where>: <dotted key>: <message>``.

    ``where`` names the input (a file, a command); ``sources`` may name another origin for some dotted keys
    (``{"steps": "--set"}``) so a problem is reported against the flag or file that introduced it.
    """
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
        msg = err["msg"]
        forbidden = err["type"] == "extra_forbidden"
        if forbidden:
            msg = "unknown key"
        elif msg.startswith("Value error, "):  # our own validators' messages read better without the prefix
            msg = msg[len("Value error, "):]
        shown = "input" in err and not forbidden and not isinstance(err["input"], (dict, BaseModel))
        lines.append(f"{_origin(loc, where, sources)}: {loc}: {msg}" + (f" (got {err['input']!r})" if shown else ""))
    return "\n".join(lines)


def validate_settings(model: type[M], raw: Mapping[str, Any], where: str,
                      sources: Mapping[str, str] | None = None) -> M:
    """``model.model_validate(raw)``, with every problem raised as one FairlatentError (see
    :func:`format_validation_error`)."""
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise FairlatentError(format_validation_error(exc, where, sources)) from None


def settings_from(model: type[M], *, config: str | Path | None = None, given: Mapping[str, Any] | None = None,
                  overrides: Iterable[str] = (), where: str = "settings",
                  given_sources: Mapping[str, str] | None = None) -> M:
    """A model from, in increasing precedence: its defaults, a TOML ``config`` file, ``given`` values (e.g.
    explicit command-line flags; ``None`` values are skipped) and ``--set`` ``overrides``.

    Each problem is reported against where its key came from: the file, the flag (``given_sources`` maps a
    key to its flag) or ``--set``.
    """
    raw: dict[str, Any] = load_toml(config) if config is not None else {}
    sources: dict[str, str] = {}
    if config is not None:
        where = str(config)
    for k, v in (given or {}).items():
        if v is not None:
            raw[k] = v
            sources[k] = (given_sources or {}).get(k, where)
    sets = parse_overrides(overrides)
    sources.update({k: "--set" for k in sets})
    return validate_settings(model, apply_overrides(raw, sets), where, sources)


__all__ = ["load_toml", "parse_value", "parse_overrides", "apply_overrides", "format_validation_error",
           "validate_settings", "settings_from"]
