"""Strict JSON for results: NaN and ±Infinity become ``null``, with the reason recorded beside them.

Why: Python's ``json`` writes a NaN metric as the bare token ``NaN``, which no strict JSON reader accepts
(browsers, ``jq``, most languages), so one undefined value made a whole ``report.json`` unreadable
outside Python. A ``null`` alone would hide why; :func:`nulls_with_reasons` returns, beside the converted
object, a map from each converted value's dotted path to a one-line reason the caller can store.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np


def nulls_with_reasons(obj: Any, reason: Callable[[str], str] | str = "not a finite number",
                       ) -> tuple[Any, dict[str, str]]:
    """``(copy of obj with every non-finite float as None, {dotted.path: reason})``.

    ``reason`` is a string, or a function of the dotted path (``methods.baseline.test.EOdds.median``) that
    says why that value is undefined. NumPy scalars and arrays are converted to Python values on the way.
    """
    nulls: dict[str, str] = {}

    def walk(x: Any, path: str) -> Any:
        if isinstance(x, np.ndarray):
            x = x.tolist()
        elif isinstance(x, np.generic):
            x = x.item()
        if isinstance(x, float) and not math.isfinite(x):
            nulls[path] = (reason(path) if callable(reason) else reason) + f" (was {x})"
            return None
        if isinstance(x, dict):
            return {k: walk(v, f"{path}.{k}" if path else str(k)) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [walk(v, f"{path}[{i}]") for i, v in enumerate(x)]
        return x

    return walk(obj, ""), nulls


__all__ = ["nulls_with_reasons"]
