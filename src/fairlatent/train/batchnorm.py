"""Standing batch-norm statistics: recompute a trained module's running mean and variance exactly.

A model used in eval mode normalises with the running statistics its batch-norm layers collected during
training. Two things make those statistics stale: an exponential moving average of the *weights* (the
statistics were gathered under other weights, and averaging the buffers too only averages stale values),
and a small batch-norm momentum over a short run (Keras' 0.99, i.e. PyTorch momentum 0.01, still carries
5 % of the initial mean 0 / variance 1 after 300 updates). Both wash out a generator's colours and shift a
classifier's features. The remedy (the "standing statistics" of BigGAN, the ``bn_update`` of SWA) is to
reset the statistics and average them exactly over a few batches run through the final weights.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from torch import nn

__all__ = ["standing_batchnorm_statistics"]


@contextmanager
def standing_batchnorm_statistics(module: nn.Module) -> Iterator[nn.Module]:
    """Inside the block, every forward pass of ``module`` adds to an exact average of its batch-norm statistics.

    On entry the running statistics of every batch-norm layer are reset and their momentum set to ``None``
    (cumulative average: after n batches the buffers hold the mean of the n batch means and of the n
    unbiased batch variances), and the module is put in train mode. On exit the momenta are restored and
    the module is left in eval mode. Call it under ``torch.no_grad()``; the weights are not touched.
    A module without batch norm passes through unchanged (still left in eval mode).
    """
    bns = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
    module.train()
    try:
        yield module
    finally:
        module.eval()
        for m, mom in zip(bns, momenta):
            m.momentum = mom
