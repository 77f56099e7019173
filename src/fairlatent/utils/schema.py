"""Shape checks for the JSON files fairlatent reads back: a file of the wrong shape (a list where an object
belongs, ``"step": "forty"``, a missing section) is a :class:`FairlatentError` naming the file and the field,
not a ``KeyError``/``AttributeError`` traceback deep in the code that uses it.

A schema is a pydantic model that lists the fields the reader relies on; unknown fields are allowed (files
carry more than any one reader needs). :func:`read_json_object` returns the file's dict unchanged, so callers
keep working with plain dicts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from fairlatent.errors import FairlatentError
from fairlatent.utils.io import read_json


class Schema(BaseModel):
    """Base of the file schemas: extra fields allowed, values not coerced (``"forty"`` is not a step)."""

    model_config = ConfigDict(extra="allow", strict=True)


def check_object(data: Any, schema: type[Schema], where: str) -> dict[str, Any]:
    """``data`` if it is a JSON object that fits ``schema``; else a FairlatentError naming ``where`` and the field."""
    if not isinstance(data, dict):
        raise FairlatentError(f"{where}: expected a JSON object {{...}}, got {_kind(data)}")
    try:
        schema.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "(top level)"
        got = f" (got {err['input']!r})" if "input" in err and err["type"] != "missing" else ""
        msg = "missing field" if err["type"] == "missing" else err["msg"]
        raise FairlatentError(f"{where}: field {field!r}: {msg}{got}") from None
    return data


def read_json_object(path: str | Path, schema: type[Schema]) -> dict[str, Any]:
    """Read a JSON file (see :func:`fairlatent.utils.io.read_json`) and check it with ``schema``."""
    return check_object(read_json(path), schema, str(path))


def _kind(data: Any) -> str:
    return {list: "a list", str: "a string", bool: "a boolean", type(None): "null", int: "a number",
            float: "a number"}.get(type(data), type(data).__name__)


__all__ = ["Schema", "check_object", "read_json_object"]
