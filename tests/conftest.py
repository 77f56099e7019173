"""Shared fixtures.

``toyfaces_small``: a small ToyFaces data set (600 faces + 90 test_balanced, 32×32, seed 0, default
Wearing_Hat/Eyeglasses skew 0.9) built once per test session in a temporary directory. Treat it as
read-only; copy it if a test must modify it.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

# One intra-op thread: the tests' tensors are small (threads only add overhead), results are bitwise
# reproducible only at a fixed thread count, and with another busy process on a 2-core machine a 2-thread
# torch step was measured ~30x slower than a 1-thread one.
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def toyfaces_small(tmp_path_factory) -> Path:
    from fairlatent.data.toyfaces import make_toyfaces

    return make_toyfaces(tmp_path_factory.mktemp("toyfaces") / "toyfaces_small", n=600, size=32, seed=0,
                         progress=False)
