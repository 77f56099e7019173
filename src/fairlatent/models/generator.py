"""Load a generator — a fairlatent GAN run or the user's own TorchScript file — behind one handle.

Downstream stages (latent sampling, hyperplanes, pair generation, metrics) only see
:class:`GeneratorHandle`: latents in (float32 n×D numpy), images out (uint8 n×H×W×3). A latent fully
determines its image (generators run in ``eval()`` mode, so batch normalisation uses running
statistics), which is why latents are always returned with the images they produced.

Truncation (the "truncation trick"): each latent component with |z_i| > τ is redrawn from N(0, 1)
until it falls inside [−τ, τ], i.e. z is drawn from the standard normal truncated to the cube. Lower
τ trades diversity (recall) for fidelity (precision).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from fairlatent.errors import FairlatentError
from fairlatent.utils.device import default_device
from fairlatent.utils.images import to_uint8
from fairlatent.utils.io import read_json
from fairlatent.utils.seed import rng

OUTPUT_RANGES = ("[-1,1]", "[0,1]")


def truncated_normal(generator: np.random.Generator, shape: tuple[int, int], truncation: float | None) -> np.ndarray:
    """Standard-normal float32 array; with ``truncation`` τ every entry outside [−τ, τ] is redrawn until inside.

    Vectorised rejection: each round redraws only the entries still outside, so the expected number of
    rounds is 1 / P(|z| ≤ τ) (≈ 1.5 for τ = 1, ≈ 2.6 for τ = 0.5).
    """
    z = generator.standard_normal(shape, dtype=np.float32)
    if truncation is None:
        return z
    if not truncation > 0:
        raise FairlatentError(f"truncation must be > 0, got {truncation}")
    bad = np.abs(z) > truncation
    while bad.any():
        z[bad] = generator.standard_normal(int(bad.sum()), dtype=np.float32)
        bad = np.abs(z) > truncation
    return z


class GeneratorHandle:
    """A generator network plus what is needed to use it: latent dimension, image size, output range.

    Attributes
    ----------
    latent_dim : int
    image_size : int
    source : Path
        The run directory or TorchScript file it was loaded from.
    """

    def __init__(self, module: nn.Module, *, latent_dim: int, output_range: str, device: torch.device,
                 source: Path, image_size: int | None = None):  # fmt: skip
        if output_range not in OUTPUT_RANGES:
            raise FairlatentError(f"output_range must be one of {', '.join(OUTPUT_RANGES)}, got {output_range!r}")
        self.module, self.latent_dim, self.output_range = module, int(latent_dim), output_range
        self.device, self.source = device, Path(source)
        self.image_size = image_size if image_size is not None else self._probe_size()

    def _forward(self, z: torch.Tensor) -> torch.Tensor:
        try:
            x = self.module(z)
        except Exception as exc:  # a TorchScript module reports a wrong latent size as a RuntimeError
            raise FairlatentError(
                f"{self.source}: the generator failed on latents of shape {tuple(z.shape)} "
                f"(latent_dim={self.latent_dim}; is that the generator's latent dimension?): {exc}"
            ) from None
        if not torch.is_tensor(x) or x.ndim != 4 or x.shape[1] != 3 or x.shape[2] != x.shape[3] or x.shape[0] != z.shape[0]:
            shape = tuple(x.shape) if torch.is_tensor(x) else type(x).__name__
            raise FairlatentError(
                f"{self.source}: the generator must return N×3×H×W square images for N latents; got {shape}"
            )
        return x * 2.0 - 1.0 if self.output_range == "[0,1]" else x

    def _probe_size(self) -> int:
        with torch.inference_mode():
            return int(self._forward(torch.zeros(1, self.latent_dim, device=self.device)).shape[-1])

    def sample_latents(self, n: int, seed: int, truncation: float | None = None) -> np.ndarray:
        """``n`` latents (float32 n×D) from N(0, I), or its truncation to [−τ, τ]^D; a function of ``seed``."""
        if n < 0:
            raise FairlatentError(f"number of samples must be ≥ 0, got {n}")
        return truncated_normal(rng(seed, "generator-latents"), (int(n), self.latent_dim), truncation)

    def render(self, latents: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Images (uint8 n×H×W×3) of ``latents`` (n×D); each image depends only on its own latent."""
        latents = np.asarray(latents)
        if latents.ndim != 2 or latents.shape[1] != self.latent_dim:
            raise FairlatentError(
                f"latents have shape {latents.shape}, expected n×{self.latent_dim} "
                f"(this generator's latent dimension is {self.latent_dim}, got "
                f"{latents.shape[-1] if latents.ndim else 'a scalar'})"
            )
        if not np.issubdtype(latents.dtype, np.floating):
            raise FairlatentError(f"latents must be floating point, got {latents.dtype}")
        out = np.empty((len(latents), self.image_size, self.image_size, 3), dtype=np.uint8)
        with torch.inference_mode():
            for i in range(0, len(latents), batch_size):
                z = torch.from_numpy(np.ascontiguousarray(latents[i : i + batch_size], dtype=np.float32))
                out[i : i + len(z)] = to_uint8(self._forward(z.to(self.device)))
        return out

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
        raise FairlatentError(f"{path}: not a loadable TorchScript file ({exc})") from None
    module.eval()
    return GeneratorHandle(module, latent_dim=latent_dim, output_range=output_range, device=dev, source=path)


def _load_run(path: Path, latent_dim: int | None, output_range: str | None, device: torch.device) -> GeneratorHandle:
    from fairlatent.models.gan import build_generator
    from fairlatent.models.weights import load_module_state, load_tensors

    if not (path / "config.json").is_file():
        raise FairlatentError(f"{path}: not a fairlatent GAN run (no config.json)")
    record = read_json(path / "config.json")
    if record.get("format") != "fairlatent-gan":
        raise FairlatentError(f"{path}/config.json: not a fairlatent GAN run (format={record.get('format')!r})")
    if not (path / "generator.safetensors").is_file():
        raise FairlatentError(
            f"{path}: the run has not finished (no generator.safetensors); resume it with `fairlatent train-gan`"
        )
    cfg = record["config"]
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
