"""Activations of one convolutional layer of a network, named by its module path, streamed in batches.

Why hooks and module paths: any layer of any ``nn.Module`` can be dissected without changing the network —
``blocks.2`` (the output of the last residual stage of a fairlatent classifier, the default), ``blocks.1.conv2``,
``stem``. A forward hook copies the layer's output for each batch of probe images; the caller consumes the
batch and drops it, so memory is bounded by the batch size whatever the probe's size (the dissection
spills the maps to a temporary file on disk, never holding all of them in memory).

:func:`zeroing_units` is the same hook used the other way: it zeroes chosen channels of the layer's output
(ablation), so the rest of the network sees the layer without those units.
"""

from __future__ import annotations

import contextlib
from typing import Iterator, Sequence

import numpy as np
import torch
import torch.nn as nn

from fairlatent.errors import FairlatentError
from fairlatent.utils.images import to_tensor


def default_layer(module: nn.Module) -> str:
    """The last convolutional stage: the last residual block of a fairlatent classifier (``blocks.N``), the
    last module whose output is a spatial map for other networks."""
    blocks = getattr(module, "blocks", None)
    if isinstance(blocks, nn.Sequential) and len(blocks):
        return f"blocks.{len(blocks) - 1}"
    names = spatial_layers(module, image_size=getattr(module, "image_size", 32))
    if not names:
        raise FairlatentError("the network has no layer with a spatial (N×C×H×W) output")
    return names[-1]


def spatial_layers(module: nn.Module, image_size: int) -> list[str]:
    """Module paths whose output is an N×C×H×W map, in forward order (one dummy image is run to find them)."""
    order: list[str] = []
    hooks = []
    for name, sub in module.named_modules():
        if not name:
            continue
        hooks.append(sub.register_forward_hook(
            lambda _m, _i, out, name=name: order.append(name)
            if isinstance(out, torch.Tensor) and out.ndim == 4 and name not in order else None))
    try:
        first = next(module.parameters(), None)
        device = first.device if first is not None else "cpu"
        with torch.inference_mode():
            module(torch.zeros(1, 3, image_size, image_size, device=device))
    finally:
        for h in hooks:
            h.remove()
    return order


def resolve_layer(module: nn.Module, layer: str | None, image_size: int) -> tuple[str, nn.Module]:
    """The named layer (default: :func:`default_layer`); an unknown name is an error listing the layers."""
    name = default_layer(module) if layer is None else str(layer)
    subs = dict(module.named_modules())
    known = spatial_layers(module, image_size)
    if name not in subs or name not in known:
        raise FairlatentError(f"unknown layer {name!r}; layers with a spatial output are: {', '.join(known)}")
    return name, subs[name]


@contextlib.contextmanager
def capturing(layer: nn.Module) -> Iterator[list[torch.Tensor]]:
    """Within the block, each forward pass appends the layer's output to the yielded list."""
    store: list[torch.Tensor] = []
    handle = layer.register_forward_hook(lambda _m, _i, out: store.append(out))
    try:
        yield store
    finally:
        handle.remove()


@contextlib.contextmanager
def zeroing_units(layer: nn.Module, units: Sequence[int]) -> Iterator[None]:
    """Within the block, the layer's output channels ``units`` are zero (a no-op for no units)."""
    units = [int(u) for u in units]
    if not units:
        yield
        return

    def hook(_m, _i, out):
        out = out.clone()
        out[:, units] = 0
        return out

    handle = layer.register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


def image_batches(images: np.ndarray, indices: np.ndarray, batch_size: int, device) -> Iterator[tuple[int, torch.Tensor]]:
    """``(start, tensor)`` per batch of ``images[indices]`` (uint8 N×H×W×3, e.g. memory-mapped) in [-1, 1]."""
    for start in range(0, len(indices), batch_size):
        batch = np.asarray(images[indices[start:start + batch_size]])
        yield start, to_tensor(np.ascontiguousarray(batch), device)


def stream_activations(module: nn.Module, layer: nn.Module, images: np.ndarray, indices: np.ndarray, *,
                       batch_size: int = 256, device=None) -> Iterator[tuple[int, torch.Tensor, torch.Tensor]]:
    """Yield ``(start, activations B×C×h×w float32 (CPU, contiguous), network outputs B×…)`` per batch."""
    if device is None:
        first = next(module.parameters(), None)
        device = first.device if first is not None else torch.device("cpu")
    with capturing(layer) as store, torch.inference_mode():
        for start, x in image_batches(images, indices, batch_size, device):
            store.clear()
            out = module(x)
            if len(store) != 1:
                raise FairlatentError(f"the layer ran {len(store)} times in one forward pass; pick a layer that runs once")
            acts = store[0].detach().float().cpu().contiguous()
            yield start, acts, out.detach().float().cpu()
