"""Range checks for command-line options that typer's ``min=``/``max=`` cannot say: a choice of sizes and
open intervals. Each is a typer callback, so a bad value is a usage error (exit 2) naming the option, before
anything is read or written."""

from __future__ import annotations

from typing import Any, Callable, Optional

import typer


def one_of(*allowed: int) -> Callable[[Optional[int]], Optional[int]]:
    """A callback accepting ``None`` (the default) or one of ``allowed``."""
    def check(value: Optional[int]) -> Optional[int]:
        if value is not None and value not in allowed:
            raise typer.BadParameter(f"must be {' or '.join(map(str, allowed))} (got {value})")
        return value
    return check


def positive(value: Optional[Any]) -> Optional[Any]:
    """A callback accepting ``None`` or a number > 0 (learning rates, truncation thresholds)."""
    if value is not None and not value > 0:
        raise typer.BadParameter(f"must be greater than 0 (got {value})")
    return value


def below_one(value: Optional[float]) -> Optional[float]:
    """A callback accepting ``None`` or a share in [0, 1) (a validation fraction that leaves a train split)."""
    if value is not None and not 0 <= value < 1:
        raise typer.BadParameter(f"must be in [0, 1) (got {value})")
    return value
