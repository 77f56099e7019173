"""Which memory format a model can be trained in on this device.

Training in ``channels_last`` (NHWC) is faster on CPU, but torch 2.13's oneDNN has a kernel that corrupts the
heap in it: ``jit_avx2_1x1_convolution_bwd_weights`` — the weight gradient of a 1×1 convolution with a stride
above 1 on NHWC input with fewer than 8 input channels (one AVX2 register of floats), chosen on CPUs with AVX2
and without AVX-512. The process then dies with a segmentation fault or a ``free(): invalid next size`` abort
a few steps later, or goes on with corrupted memory. A ResNet's downsampling shortcut is such a convolution
when the network is narrower than 8 channels (``width`` below 8), as in quick runs and tests.
``benchmarks/onednn_conv1x1_crash.py`` reproduces it shape by shape; stride 1, 8 or more input channels and
contiguous (NCHW) tensors are not affected, and the gradients of the unaffected shapes match torch's
non-oneDNN convolution.

The guard is independent of the CPU on purpose: a config trains in the same memory format on every machine.
"""

from __future__ import annotations

import torch
from torch import nn

#: Input channels below this (the floats in one AVX2 register) reach the faulty oneDNN kernel.
ONEDNN_MIN_CHANNELS = 8


def faulty_onednn_convolutions(model: nn.Module) -> list[str]:
    """Names of ``model``'s convolutions whose channels_last weight gradient reaches the faulty oneDNN
    kernel on CPU: 1×1 kernels, a stride above 1 and fewer than :data:`ONEDNN_MIN_CHANNELS` input channels."""
    return [name for name, m in model.named_modules()
            if isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1) and max(m.stride) > 1
            and m.in_channels < ONEDNN_MIN_CHANNELS]  # fmt: skip


def channels_last_trainable(model: nn.Module, device: torch.device | str) -> bool:
    """Whether ``model`` can be trained in channels_last on ``device``: always on non-CPU devices; on CPU
    only when no convolution reaches the faulty kernel (see the module docstring)."""
    return torch.device(device).type != "cpu" or not faulty_onednn_convolutions(model)
