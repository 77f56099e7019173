"""Weight files without pickles: ``{name: tensor}`` in safetensors, loaded into modules strictly.

This is the models layer's one way to read and write tensors, used by the loaders of trained models
(:mod:`fairlatent.models.generator`, :mod:`fairlatent.models.classifier`) and by the training checkpoints
above it (:mod:`fairlatent.train.checkpoint`). A damaged file and weights of another architecture are
user errors (:class:`~fairlatent.errors.FairlatentError`) that name the file and the first tensors at fault.
A failed write (a full disk, no permission) is an :class:`OSError` naming the destination, which the CLI
prints as one line; safetensors reports those as its own ``SafetensorError`` carrying only ``os error N``.
"""

from __future__ import annotations

import errno
import os
import re
from pathlib import Path
from typing import Mapping

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from fairlatent.errors import FairlatentError
from fairlatent.utils.io import atomic_file


def save_tensors(path: str | os.PathLike, tensors: Mapping[str, torch.Tensor]) -> None:
    """Write ``{name: tensor}`` to a safetensors file atomically (tensors copied to contiguous CPU)."""
    cpu = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    with atomic_file(path) as tmp:
        try:
            save_file(cpu, str(tmp))
        except OSError as exc:
            raise type(exc)(exc.errno, exc.strerror, str(path)) from None
        except SafetensorError as exc:  # "(os error 28)" or "Os { code: 28, …": the errno only in the text
            found = re.search(r"os error (\d+)|Os \{ code: (\d+)", str(exc))
            if found is None:
                raise  # not the environment: a bug (e.g. tensors sharing memory) keeps its traceback
            code = int(found.group(1) or found.group(2))
            raise OSError(code, os.strerror(code) if code in errno.errorcode else str(exc), str(path)) from None


def load_tensors(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a safetensors file; a missing, truncated or corrupt file raises a :class:`FairlatentError`."""
    path = Path(path)
    if not path.is_file():
        raise FairlatentError(f"{path}: file not found")
    try:
        return load_file(str(path), device="cpu")
    except Exception as exc:  # safetensors raises SafetensorError / OSError for damaged files
        raise FairlatentError(f"{path}: unreadable or truncated safetensors file ({exc})") from None


def module_tensors(module: torch.nn.Module, prefix: str) -> dict[str, torch.Tensor]:
    """``module.state_dict()`` (parameters and buffers) with every key prefixed by ``prefix + '.'``."""
    return {f"{prefix}.{k}": v for k, v in module.state_dict().items()}


def load_module_state(
    module: torch.nn.Module, tensors: Mapping[str, torch.Tensor], prefix: str, *, source: str | os.PathLike
) -> None:
    """Load the ``prefix.``-named tensors into ``module`` exactly (no missing, extra or mis-shaped keys).

    ``prefix=""`` takes the names as they are. A mismatch means the file was written for another
    architecture; the error lists the first differences so the user can tell which (e.g. another width,
    image size or latent dimension).
    """
    p = f"{prefix}." if prefix else ""
    saved = {k[len(p) :]: v for k, v in tensors.items() if k.startswith(p)}
    own = module.state_dict()
    missing = [k for k in own if k not in saved]
    unexpected = [k for k in saved if k not in own]
    shapes = [
        f"{p}{k}: file {tuple(saved[k].shape)} vs model {tuple(v.shape)}"
        for k, v in own.items()
        if k in saved and tuple(saved[k].shape) != tuple(v.shape)
    ]
    if missing or unexpected or shapes:
        parts = []
        if shapes:
            parts.append("shape mismatch " + "; ".join(shapes[:3]))
        if missing:
            parts.append("missing " + ", ".join(f"{p}{k}" for k in missing[:3]))
        if unexpected:
            parts.append("unexpected " + ", ".join(f"{p}{k}" for k in unexpected[:3]))
        raise FairlatentError(
            f"{source}: weights do not fit the {type(module).__name__} built from the configuration "
            f"(another architecture?): {' | '.join(parts)}"
        )
    module.load_state_dict(saved, strict=True)
