"""Generators behind one protocol, and the loader of fairlatent GAN runs and TorchScript files.

Downstream stages (latent sampling, hyperplanes, pair generation, metrics) see a :class:`Generator`: a
latent specification (:class:`~fairlatent.models.latent_spec.LatentSpec`: N(0, I) noise plus optional
categorical / uniform codes), ``sample_latents`` and ``decode``. The protocol does not assume an image
generator or an unconditional N(0, I) latent, so InfoGAN-style codes, conditional generators (a condition
array beside the latent) and tabular generators (``output_kind = "table"``) fit it; stages that need images
(labelling with an image classifier) check ``output_kind``. A latent (with its condition) fully determines
its output (generators run in ``eval()`` mode, so batch normalisation uses running statistics), which is
why latents are always stored with the images they produced.

:class:`GeneratorHandle` is the image implementation: a torch module mapping N×D latents (and, when
conditional, N×C conditions) to N×3×H×W images. Truncation: see :mod:`fairlatent.models.latent_spec`.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Literal, Protocol, runtime_checkable

import numpy as np
import torch
from torch import nn

from fairlatent.errors import FairlatentError
from fairlatent.models.latent_spec import LatentSpec, truncated_normal
from fairlatent.utils.device import default_device
from fairlatent.utils.images import to_uint8
from fairlatent.utils.io import read_json
from fairlatent.utils.schema import Schema, check_object


class _GANArch(Schema):
    arch: str
    size: int
    latent_dim: int
    width: int
    g_final_width: int = 0
    channels_last: bool = False


class GANRunRecord(Schema):
    """The fields of a GAN run's ``config.json`` that rebuilding its generator reads."""

    format: str
    config: _GANArch

OUTPUT_RANGES = ("[-1,1]", "[0,1]")


OutputKind = Literal["image", "table"]
OUTPUT_KINDS = ("image", "table")


@runtime_checkable
class Generator(Protocol):
    """What the latent stages need of a generator.

    Attributes
    ----------
    latent_spec : LatentSpec
        What a latent vector is made of; ``latent_spec.dim`` is its length.
    condition_dim : int
        Columns of the condition array a conditional generator takes (0: unconditional).
    output_kind : "image" | "table"
        ``"image"``: ``decode`` returns uint8 N×H×W×3; ``"table"``: N×F rows (tabular generators).
    """

    latent_spec: LatentSpec
    condition_dim: int
    output_kind: OutputKind

    def sample_latents(self, n: int, seed: int, truncation: float | None = None) -> np.ndarray:
        """``n`` latents (float32 n×dim) per the latent spec, a function of ``seed``."""
        ...

    def decode(self, z: np.ndarray, condition: np.ndarray | None = None) -> np.ndarray:
        """Outputs of latents ``z`` (n×dim), with an n×condition_dim ``condition`` for conditional ones."""
        ...


def check_condition(generator: Generator, z: np.ndarray, condition: np.ndarray | None) -> np.ndarray | None:
    """``condition`` as float32, refused when it does not match the generator: one given to an unconditional
    generator, none given to a conditional one, or a shape other than len(z)×condition_dim.

    A silently ignored condition would make every "conditional" sample come from the same distribution; a
    missing one has no sensible default. Implementations of :class:`Generator` call this in ``decode``.
    """
    c_dim = generator.condition_dim
    if condition is None:
        if c_dim:
            raise FairlatentError(f"this generator is conditional: decode needs a condition array of shape "
                                  f"n×{c_dim} beside the latents")
        return None
    if not c_dim:
        raise FairlatentError("this generator is unconditional: decode got a condition array it cannot use "
                              "(pass condition=None)")
    condition = np.asarray(condition)
    if condition.ndim != 2 or condition.shape != (len(z), c_dim):
        raise FairlatentError(f"condition has shape {condition.shape}, expected {len(z)}×{c_dim} "
                              f"(one row of {c_dim} per latent)")
    if not (np.issubdtype(condition.dtype, np.floating) or np.issubdtype(condition.dtype, np.integer)
            or condition.dtype == bool):
        raise FairlatentError(f"condition must be numeric, got {condition.dtype}")
    return condition.astype(np.float32)


def require_images(generator: Generator, purpose: str) -> Generator:
    """``generator`` itself when it implements :class:`Generator` with image output; otherwise a
    FairlatentError naming ``purpose`` (what needed images), so a tabular generator fails with a sentence,
    not deep inside an image classifier."""
    if not isinstance(generator, Generator):
        raise FairlatentError(f"{purpose}: {type(generator).__name__} does not implement the Generator protocol "
                              "(latent_spec, condition_dim, output_kind, sample_latents, decode)")
    if generator.output_kind != "image":
        raise FairlatentError(f"{purpose} needs an image generator (uint8 N×H×W×3 outputs); this generator's "
                              f"output_kind is {generator.output_kind!r}")
    return generator


class GeneratorHandle:
    """An image generator network plus what is needed to use it; implements :class:`Generator`.

    The module maps N×D float latents (and, when ``condition_dim`` > 0, an N×C float condition as a second
    argument) to N×3×H×W square images in ``output_range``.

    Attributes
    ----------
    latent_spec : LatentSpec
        Default ``LatentSpec(normal_dim=latent_dim)``: the N(0, I) latent of fairlatent's GANs.
    latent_dim : int
        ``latent_spec.dim``, the length of a latent vector.
    condition_dim : int
    output_kind : "image"
    image_size : int
    source : Path
        The run directory or TorchScript file it was loaded from.
    """

    output_kind: OutputKind = "image"

    def __init__(self, module: nn.Module, *, latent_dim: int | None = None, output_range: str, device: torch.device,
                 source: Path, image_size: int | None = None, latent_spec: LatentSpec | None = None,
                 condition_dim: int = 0):  # fmt: skip
        if output_range not in OUTPUT_RANGES:
            raise FairlatentError(f"output_range must be one of {', '.join(OUTPUT_RANGES)}, got {output_range!r}")
        if latent_spec is None:
            if latent_dim is None:
                raise FairlatentError("a generator needs latent_dim or latent_spec")
            latent_spec = LatentSpec(normal_dim=int(latent_dim))
        elif latent_dim is not None and int(latent_dim) != latent_spec.dim:
            raise FairlatentError(f"latent_dim {latent_dim} disagrees with the latent spec's {latent_spec.dim}")
        if condition_dim < 0:
            raise FairlatentError(f"condition_dim must be ≥ 0, got {condition_dim}")
        self.module, self.latent_spec, self.output_range = module, latent_spec, output_range
        self.latent_dim, self.condition_dim = latent_spec.dim, int(condition_dim)
        self.device, self.source = device, Path(source)
        self.image_size = image_size if image_size is not None else self._probe_size()

    def _forward(self, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        try:
            x = self.module(z) if c is None else self.module(z, c)
        except Exception as exc:  # a TorchScript module reports a wrong latent size as a RuntimeError
            cond = f", conditions of shape {tuple(c.shape)}" if c is not None else ""
            raise FairlatentError(
                f"{self.source}: the generator failed on latents of shape {tuple(z.shape)}{cond} "
                f"(latent_dim={self.latent_dim}; is that the generator's latent dimension?): {_last_line(exc)}"
            ) from None
        if not torch.is_tensor(x) or x.ndim != 4 or x.shape[1] != 3 or x.shape[2] != x.shape[3] or x.shape[0] != z.shape[0]:
            shape = tuple(x.shape) if torch.is_tensor(x) else type(x).__name__
            raise FairlatentError(
                f"{self.source}: the generator must return N×3×H×W square images for N latents; got {shape}"
            )
        return x * 2.0 - 1.0 if self.output_range == "[0,1]" else x

    def _probe_size(self) -> int:
        c = torch.zeros(1, self.condition_dim, device=self.device) if self.condition_dim else None
        with torch.inference_mode():
            return int(self._forward(torch.zeros(1, self.latent_dim, device=self.device), c).shape[-1])

    def sample_latents(self, n: int, seed: int, truncation: float | None = None) -> np.ndarray:
        """``n`` latents (float32 n×D) per :attr:`latent_spec`, a function of ``seed``; truncation to [−τ, τ]
        applies to the N(0, I) part only."""
        return self.latent_spec.sample(n, seed, truncation)

    def decode(self, z: np.ndarray, condition: np.ndarray | None = None, *, batch_size: int = 256) -> np.ndarray:
        """Images (uint8 n×H×W×3) of latents ``z`` (n×D) and, for a conditional generator, ``condition``
        (n×C); each image depends only on its own latent and condition."""
        z = self.latent_spec.check(z)
        condition = check_condition(self, z, condition)
        out = np.empty((len(z), self.image_size, self.image_size, 3), dtype=np.uint8)
        with torch.inference_mode():
            for i in range(0, len(z), batch_size):
                zb = torch.from_numpy(np.ascontiguousarray(z[i : i + batch_size], dtype=np.float32))
                cb = None if condition is None else torch.from_numpy(condition[i : i + batch_size]).to(self.device)
                out[i : i + len(zb)] = to_uint8(self._forward(zb.to(self.device), cb))
        return out

    def render(self, latents: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """:meth:`decode` without a condition (the API before conditional generators)."""
        return self.decode(latents, batch_size=batch_size)

    def sample(self, n: int, seed: int, truncation: float | None = None, batch_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
        """``(images uint8 n×H×W×3, latents float32 n×D)``; the latents regenerate the images via :meth:`render`."""
        z = self.sample_latents(n, seed, truncation)
        return self.render(z, batch_size=batch_size), z

    def __repr__(self) -> str:
        return f"GeneratorHandle({self.source}, latent_dim={self.latent_dim}, image_size={self.image_size})"


def load_generator(path: str | os.PathLike, *, latent_dim: int | None = None, output_range: str | None = None,
                   device: str | torch.device | None = None) -> GeneratorHandle:  # fmt: skip
    """Open a fairlatent GAN run directory or a TorchScript generator file.

    A run directory (``config.json`` + ``generator.safetensors``, written by
    :func:`fairlatent.train.gan.train_gan`) gives the EMA generator when the run kept one. A TorchScript
    file (``torch.jit.save`` of a module mapping N×D latents to N×3×H×W images) needs ``latent_dim`` and
    ``output_range`` ("[-1,1]" for tanh outputs, "[0,1]" for sigmoid-style outputs).
    """
    path = Path(path)
    dev = default_device(str(device) if device is not None else None)
    if path.is_dir():
        return _load_run(path, latent_dim, output_range, dev)
    if not path.is_file():
        raise FairlatentError(f"{path}: no such GAN run directory or TorchScript file")
    if latent_dim is None or output_range is None:
        raise FairlatentError(
            f"{path}: a TorchScript generator needs latent_dim and output_range ('[-1,1]' or '[0,1]') "
            f"(CLI: --latent-dim, --output-range)"
        )
    if output_range not in OUTPUT_RANGES:
        raise FairlatentError(f"output_range must be one of {', '.join(OUTPUT_RANGES)}, got {output_range!r}")
    try:
        with warnings.catch_warnings():  # torch 2.x flags TorchScript as deprecated; it is the exchange format here
            warnings.simplefilter("ignore", DeprecationWarning)
            module = torch.jit.load(str(path), map_location=dev)
    except Exception as exc:
        raise FairlatentError(f"{path}: not a loadable TorchScript file ({_last_line(exc)})") from None
    module.eval()
    return GeneratorHandle(module, latent_dim=latent_dim, output_range=output_range, device=dev, source=path)


def _last_line(exc: BaseException) -> str:
    """The error itself, without the TorchScript call trace torch prints above it (28 lines for a wrong
    latent size): the last non-empty line of the message."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return lines[-1] if lines else type(exc).__name__


def _load_run(path: Path, latent_dim: int | None, output_range: str | None, device: torch.device) -> GeneratorHandle:
    from fairlatent.models.gan import build_generator
    from fairlatent.models.weights import load_module_state, load_tensors

    if not (path / "config.json").is_file():
        raise FairlatentError(f"{path}: not a fairlatent GAN run (no config.json)")
    record = read_json(path / "config.json")
    if not isinstance(record, dict) or record.get("format") != "fairlatent-gan":
        got = record.get("format") if isinstance(record, dict) else record
        raise FairlatentError(f"{path}/config.json: not a fairlatent GAN run (format={got!r})")
    check_object(record, GANRunRecord, f"{path}/config.json")
    if not (path / "generator.safetensors").is_file():
        raise FairlatentError(
            f"{path}: the run has not finished (no generator.safetensors); resume it with `fairlatent train-gan`"
        )
    cfg = record["config"]
    if cfg.get("info_categorical") or cfg.get("info_continuous"):  # an InfoGAN run: its latent holds the codes
        from fairlatent.models.infogan import load_infogan

        handle = load_infogan(path, device)
        if latent_dim is not None and latent_dim != handle.latent_dim:
            raise FairlatentError(f"{path}: the run's latent (noise and codes) has dimension {handle.latent_dim}, "
                                  f"not {latent_dim}")
        return handle
    if latent_dim is not None and latent_dim != cfg["latent_dim"]:
        raise FairlatentError(f"{path}: the run's latent dimension is {cfg['latent_dim']}, not {latent_dim}")
    if output_range not in (None, "[-1,1]"):
        raise FairlatentError(f"{path}: fairlatent generators output [-1,1], not {output_range}")
    G = build_generator(cfg["arch"], size=cfg["size"], latent_dim=cfg["latent_dim"], width=cfg["width"],
                        final_width=cfg.get("g_final_width", 0))  # runs written before the setting lack it
    load_module_state(G, load_tensors(path / "generator.safetensors"), "G", source=path / "generator.safetensors")
    G.to(device).eval().requires_grad_(False)
    if cfg.get("channels_last", False):
        G.to(memory_format=torch.channels_last)
    return GeneratorHandle(G, latent_dim=cfg["latent_dim"], output_range="[-1,1]", device=device,
                           source=path, image_size=int(cfg["size"]))  # fmt: skip


__all__ = ["OUTPUT_KINDS", "OUTPUT_RANGES", "Generator", "GeneratorHandle", "LatentSpec", "check_condition",
           "load_generator", "require_images", "truncated_normal"]
