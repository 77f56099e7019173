"""Shared fixtures.

``toyfaces_small``: a small ToyFaces data set (600 faces + 90 test_balanced, 32×32, seed 0, default
Wearing_Hat/Eyeglasses skew 0.9) built once per test session in a temporary directory. Treat it as
read-only; copy it if a test must modify it.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

# One intra-op thread: the tests' tensors are small (threads only add overhead), results are bitwise
# reproducible only at a fixed thread count, and with another busy process on a 2-core machine a 2-thread
# torch step was measured ~30x slower than a 1-thread one.
torch.set_num_threads(1)


@pytest.fixture
def live_process():
    """A live process other than this one (the holder of a lock, a registered job), killed afterwards."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    yield proc
    proc.kill()
    proc.wait()


@pytest.fixture(scope="session")
def benchmark_script():
    """``benchmark_script("name")``: ``benchmarks/name.py`` loaded as a module (benchmarks/ is not a package),
    so tests can call a study's or post-hoc script's functions and ``main``."""
    import importlib.util

    root = Path(__file__).resolve().parents[1] / "benchmarks"

    def load(name: str):
        spec = importlib.util.spec_from_file_location(f"benchmarks_{name}", root / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load


@pytest.fixture(scope="session")
def toyfaces_small(tmp_path_factory) -> Path:
    from fairlatent.data.toyfaces import make_toyfaces

    return make_toyfaces(tmp_path_factory.mktemp("toyfaces") / "toyfaces_small", n=600, size=32, seed=0,
                         progress=False)


class CliResult:
    """What one in-process ``fairlatent`` invocation did: exit code, stdout, stderr."""

    def __init__(self, code: int, out: str, err: str):
        self.code, self.out, self.err = code, out, err

    @property
    def text(self) -> str:
        return self.out + self.err

    def __repr__(self) -> str:  # shown by pytest when an assertion about the result fails
        return f"CliResult(code={self.code!r}, out={self.out[-2000:]!r}, err={self.err[-2000:]!r})"


@pytest.fixture
def cli(capsys):
    """Run ``fairlatent ARGV`` in-process (the console script's ``main``) and return a :class:`CliResult`.

    ``cli(["data", "show", "x"])``; ``cli.user_error(argv, *fragments)`` additionally asserts the hostile-
    input contract: exit status 2, no Python traceback, and every fragment (case-insensitive) in the output.
    """
    from fairlatent.cli import main

    def run(argv) -> CliResult:
        capsys.readouterr()
        try:
            main([str(a) for a in argv])
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        cap = capsys.readouterr()
        return CliResult(code, cap.out, cap.err)

    def user_error(argv, *fragments: str) -> CliResult:
        res = run(argv)
        assert res.code == 2, res
        assert "Traceback" not in res.text, res
        low = " ".join(res.text.lower().split())  # rich may wrap long lines
        for frag in fragments:
            assert " ".join(frag.lower().split()) in low, (frag, res)
        return res

    run.user_error = user_error
    return run
