"""The test suite's own rules, checked so they hold as it grows (issue: hardening).

A ``pytest.raises`` of the base ``Exception`` passes on any bug at all (a ``TypeError`` from a typo, an
``AttributeError``) as long as the message happens to match; every expected error names its type.
"""

from __future__ import annotations

import re
from pathlib import Path

TESTS = Path(__file__).parent

_BROAD = re.compile(r"raises\(\s*(Base)?" + "Exception" + r"\b")


def test_no_test_expects_a_bare_exception():
    offenders = [f"{p.name}:{i}" for p in sorted(TESTS.rglob("*.py"))
                 for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if _BROAD.search(line)]
    assert not offenders, f"a bare Exception in pytest.raises accepts any bug; name the error type: {offenders}"
