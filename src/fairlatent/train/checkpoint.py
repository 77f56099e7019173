"""Checkpoints without pickles: tensors in safetensors, configuration and loop state in JSON.

A checkpoint is a directory written atomically (a temporary sibling renamed into place), so a crash
mid-write leaves the previous checkpoint intact::

    tensors.safetensors   every tensor (model weights and buffers, optimiser moments, RNG states …)
    config.json           the configuration that built the models (checked on resume)
    state.json            loop state (step, …) plus the byte size and SHA-256 of tensors.safetensors

The digest in ``state.json`` catches a truncated or altered tensor file even when the damage happens
to leave a parseable safetensors header. Nothing here is specific to GANs: any trainer stores
``{name: tensor}`` (use :func:`module_tensors` / :func:`optimizer_tensors` to flatten modules and
optimisers) and restores with :func:`load_module_state` / :func:`load_optimizer_state`, which name
missing, unexpected or mis-shaped tensors when the checkpoint comes from another architecture.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable, Mapping

__all__ = [
    "save_checkpoint", "has_checkpoint", "load_checkpoint", "optimizer_tensors", "load_optimizer_state",
    "state_tensors",
    # re-exported from fairlatent.models.weights
    "save_tensors", "load_tensors", "module_tensors", "load_module_state",
]  # fmt: skip

import torch
from pydantic import Field

from fairlatent.errors import FairlatentError
from fairlatent.models.weights import load_module_state, load_tensors, module_tensors, save_tensors
from fairlatent.utils.io import atomic_directory, file_sha256, read_json, write_json
from fairlatent.utils.schema import Schema, check_object


class _TensorsRecord(Schema):
    bytes: int
    sha256: str


class StateSchema(Schema):
    """``state.json``: the training position and the record of the tensor file it belongs to."""

    step: int | None = None
    tensors_file: _TensorsRecord | None = Field(None, alias="_tensors_file")

TENSORS_FILE = "tensors.safetensors"
CONFIG_FILE = "config.json"
STATE_FILE = "state.json"


def save_checkpoint(
    directory: str | os.PathLike,
    tensors: Mapping[str, torch.Tensor],
    config: Mapping[str, Any],
    state: Mapping[str, Any],
) -> Path:
    """Write a checkpoint directory atomically, replacing any previous one; return its path."""
    directory = Path(directory)
    with atomic_directory(directory, overwrite=True) as tmp:
        save_tensors(tmp / TENSORS_FILE, tensors)
        write_json(tmp / CONFIG_FILE, dict(config))
        state = dict(state)
        state["_tensors_file"] = {"bytes": (tmp / TENSORS_FILE).stat().st_size, "sha256": file_sha256(tmp / TENSORS_FILE)}
        write_json(tmp / STATE_FILE, state)  # last: its presence marks a complete checkpoint
    return directory


def has_checkpoint(directory: str | os.PathLike) -> bool:
    return (Path(directory) / STATE_FILE).is_file()


def load_checkpoint(
    directory: str | os.PathLike,
    *,
    expect_config: Mapping[str, Any] | None = None,
    must_match: Iterable[str] = (),
) -> tuple[dict[str, torch.Tensor], dict[str, Any], dict[str, Any]]:
    """Load ``(tensors, config, state)`` from a checkpoint directory, validating it.

    The tensor file must have the size and SHA-256 recorded when it was written (a truncated file is
    named as such). With ``expect_config``, every key in ``must_match`` must have the same value in the
    saved configuration, so resuming with another architecture fails with a message naming the key.
    """
    directory = Path(directory)
    for name in (STATE_FILE, CONFIG_FILE, TENSORS_FILE):
        if not (directory / name).is_file():
            raise FairlatentError(f"{directory}: incomplete checkpoint (missing {name})")
    state = read_json(directory / STATE_FILE)
    check_object(state, StateSchema, str(directory / STATE_FILE))
    config = read_json(directory / CONFIG_FILE)
    check_object(config, Schema, str(directory / CONFIG_FILE))
    tfile = directory / TENSORS_FILE
    record = state.pop("_tensors_file", None)
    if record is not None:
        size = tfile.stat().st_size
        if size != record["bytes"]:
            raise FairlatentError(
                f"{tfile}: truncated or altered checkpoint file ({size} bytes, expected {record['bytes']})"
            )
        if file_sha256(tfile) != record["sha256"]:
            raise FairlatentError(f"{tfile}: corrupt checkpoint file (SHA-256 differs from {STATE_FILE})")
    tensors = load_tensors(tfile)
    if expect_config is not None:
        for key in must_match:
            if config.get(key) != expect_config.get(key):
                raise FairlatentError(
                    f"{directory}: checkpoint was made with {key}={config.get(key)!r} but the configuration "
                    f"has {key}={expect_config.get(key)!r}; use a new output directory or start afresh"
                )
    return tensors, config, state


# --- optimisers as {name: tensor} (modules: fairlatent.models.weights) -------------------------------


def optimizer_tensors(optimizer: torch.optim.Optimizer, prefix: str) -> dict[str, torch.Tensor]:
    """Per-parameter optimiser state as ``prefix.<param index>.<name>`` tensors (e.g. Adam's moments, step)."""
    out = {}
    for idx, st in optimizer.state_dict()["state"].items():
        for name, value in st.items():
            if not torch.is_tensor(value):
                value = torch.tensor(value)
            out[f"{prefix}.{idx}.{name}"] = value
    return out


def state_tensors(modules: Mapping[str, torch.nn.Module], optimizers: Mapping[str, torch.optim.Optimizer]
                  ) -> dict[str, torch.Tensor]:  # fmt: skip
    """Every module's and optimiser's tensors under their names (``<name>.<param>``, ``<name>.<index>.<state>``)."""
    out: dict[str, torch.Tensor] = {}
    for name, m in modules.items():
        out.update(module_tensors(m, name))
    for name, o in optimizers.items():
        out.update(optimizer_tensors(o, name))
    return out


def load_optimizer_state(
    optimizer: torch.optim.Optimizer, tensors: Mapping[str, torch.Tensor], prefix: str, *, source: str | os.PathLike
) -> None:
    """Restore state written by :func:`optimizer_tensors`; hyper-parameters come from the live optimiser.

    A state tensor shaped like its parameter (Adam's moments) is restored in the parameter's memory layout:
    the checkpoint stores tensors contiguous, and a fused optimiser walks a parameter and its moments as
    flat memory, so moments left contiguous beside a ``channels_last`` weight would be paired with the
    wrong elements (the per-tensor loop is indifferent to layout, so this changes nothing there).
    """
    sd = optimizer.state_dict()
    params = [q for g in optimizer.param_groups for q in g["params"]]
    n_params = len(params)
    p = f"{prefix}."
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if not key.startswith(p):
            continue
        idx_str, _, name = key[len(p) :].partition(".")
        idx = int(idx_str)
        if idx >= n_params:
            raise FairlatentError(f"{source}: optimiser state {key} for parameter {idx}, but the model has {n_params}")
        if value.shape == params[idx].shape and value.dim() > 0:
            value = torch.empty_like(params[idx], dtype=value.dtype).copy_(value)
        state.setdefault(idx, {})[name] = value
    sd["state"] = state
    try:
        optimizer.load_state_dict(sd)
    except (ValueError, RuntimeError) as exc:
        raise FairlatentError(f"{source}: optimiser state {prefix} does not fit the model ({exc})") from None
