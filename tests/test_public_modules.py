"""Every public module supports ``from module import *``: each name its ``__all__`` promises exists.

A name listed in ``__all__`` but not defined (a function moved elsewhere, a typo) breaks the star import
for every user of the module, and no other test would notice, because ordinary imports name what they take.
"""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import fairlatent


def public_modules() -> list[str]:
    names = ["fairlatent"]
    for info in pkgutil.walk_packages(fairlatent.__path__, prefix="fairlatent."):
        if any(part.startswith("_") for part in info.name.split(".")):
            continue  # private modules and __main__ (importing it would run the CLI)
        names.append(info.name)
    return sorted(names)


def test_the_walk_finds_the_areas():
    names = set(public_modules())
    assert {"fairlatent.metrics.fairness", "fairlatent.models.generator", "fairlatent.report.build",
            "fairlatent.pipeline.run", "fairlatent.cli.app"} <= names


@pytest.mark.parametrize("name", public_modules())
def test_star_import(name):
    module = importlib.import_module(name)
    missing = [n for n in getattr(module, "__all__", ()) if not hasattr(module, n)]
    assert not missing, f"{name}.__all__ names undefined {missing}"
    namespace: dict = {}
    exec(f"from {name} import *", namespace)  # noqa: S102 - the import statement itself is under test
    for n in getattr(module, "__all__", ()):
        assert namespace[n] is getattr(module, n)
