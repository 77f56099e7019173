"""Standing batch-norm statistics (fairlatent.train.batchnorm): exact averages, restored settings."""

from __future__ import annotations

import torch
from torch import nn

from fairlatent.train.batchnorm import standing_batchnorm_statistics


def test_statistics_are_the_exact_average_over_the_batches_and_settings_are_restored():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4, momentum=0.01), nn.ReLU(), nn.BatchNorm1d(4))
    with torch.no_grad():
        net[1].running_mean.fill_(7.0)  # stale statistics, as after a short run
        net[1].running_var.fill_(9.0)
    batches = [torch.randn(n, 3) * (1 + i) + i for i, n in enumerate((5, 8, 3))]
    with torch.no_grad(), standing_batchnorm_statistics(net):
        assert net.training
        for b in batches:
            net(b)
    assert not net.training and net[1].momentum == 0.01 and net[3].momentum == 0.1
    h = [net[0](b).detach() for b in batches]
    # momentum None: the buffers are the plain mean of the per-batch means and unbiased variances
    expected_mean = torch.stack([x.mean(0) for x in h]).mean(0)
    expected_var = torch.stack([x.var(0, unbiased=True) for x in h]).mean(0)
    assert torch.allclose(net[1].running_mean, expected_mean, atol=1e-6)
    assert torch.allclose(net[1].running_var, expected_var, atol=1e-5)
    assert int(net[1].num_batches_tracked) == 3
    # eval mode now normalises with them: the first layer's output over all rows is near zero-mean
    out = net[1](torch.cat(h))
    assert out.mean(0).abs().max() < 0.5


def test_weights_are_untouched_and_a_module_without_batchnorm_passes():
    torch.manual_seed(1)
    net = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    before = [p.clone() for p in net.parameters()]
    with torch.no_grad(), standing_batchnorm_statistics(net):
        net(torch.randn(4, 2))
    assert all(torch.equal(a, b) for a, b in zip(before, net.parameters()))
    plain = nn.Linear(2, 2)
    with standing_batchnorm_statistics(plain):
        assert plain.training
    assert not plain.training
