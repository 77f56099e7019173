"""Feature extractors for the generative metrics, and the on-disk feature cache.

An extractor maps a batch of uint8 N×H×W×3 images to float32 features (and, when it can, class logits
for the Inception Score). Three are built in:

- ``inception``: Inception-v3 of the TF graph (:mod:`.inception`) — the standard for FID/KID/IS; pool3.
- ``domain``: the penultimate layer of a fairlatent attribute classifier trained on the real data
  (``load_classifier(dir).features``). Domain features see what matters in the data set (faces, not
  ImageNet objects) and need no downloaded weights; the numbers are comparable only between runs that use
  the same classifier, which is why results name the extractor.
- ``pixels``: flattened pixels in [0, 1], optionally projected to ``dim`` dimensions by a seeded Gaussian
  matrix with N(0, 1/dim) entries (Johnson–Lindenstrauss: distances are preserved up to 1 ± O(1/√dim)).
  For tests and tiny data.

Any object with ``name``, ``identity``, ``fixed_size`` and ``extract(images) -> dict`` (key ``"features"``,
optionally ``"logits"``) works; a plain callable ``images -> features`` is wrapped by
:class:`CallableExtractor`.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Callable, Protocol, runtime_checkable

import numpy as np
import torch

from fairlatent.errors import FairlatentError
from fairlatent.utils.device import default_device
from fairlatent.utils.io import save_npy, write_json


@runtime_checkable
class FeatureExtractor(Protocol):
    """What :func:`extract_features` needs from an extractor.

    ``name`` is shown in results; ``identity`` keys the cache (must change whenever the weights do);
    ``fixed_size`` is True when every image must have the same size as the real set's (then mismatched
    fake images are resized first).
    """

    name: str
    identity: str
    fixed_size: bool

    def extract(self, images: np.ndarray) -> dict[str, np.ndarray]: ...


class Features:
    """Precomputed N×D features, wrapped so an input is unambiguously "features", not images."""

    def __init__(self, array: np.ndarray, name: str = "precomputed"):
        arr = np.asarray(array)
        if arr.ndim != 2:
            raise FairlatentError(f"Features must be an N×D array, got shape {arr.shape}")
        self.array = arr
        self.name = name

    def __len__(self) -> int:
        return len(self.array)


class PixelsExtractor:
    """Pixels scaled to [0, 1], flattened, optionally Gaussian-projected to ``dim`` dimensions (seeded)."""

    fixed_size = True

    def __init__(self, dim: int | None = None, seed: int = 0):
        self.dim = dim
        self.seed = seed
        self._proj: dict[int, torch.Tensor] = {}
        self.name = "pixels" if dim is None else f"pixels-proj{dim}"
        self.identity = f"{self.name}:seed{seed}"

    def _projection(self, p: int) -> torch.Tensor:
        if p not in self._proj:
            from fairlatent.utils.seed import torch_generator

            g = torch_generator(self.seed, "pixels-projection", p)
            self._proj[p] = torch.randn(p, self.dim, generator=g) / np.sqrt(self.dim)
        return self._proj[p]

    def extract(self, images: np.ndarray) -> dict[str, np.ndarray]:
        x = torch.from_numpy(_writable(images).reshape(len(images), -1)).float().div_(255.0)
        if self.dim is not None:
            x = x @ self._projection(x.shape[1])
        return {"features": x.numpy()}


class InceptionExtractor:
    """Inception-v3 (TF graph) pool3 features and ``logits_unbiased`` (for the Inception Score)."""

    fixed_size = False

    def __init__(self, weights: str | os.PathLike | None = None, *, device=None, fuse: bool = True):
        from fairlatent.metrics.generative.inception import find_inception_weights, load_inception
        from fairlatent.utils.io import file_sha256

        path = find_inception_weights(weights)
        self.device = default_device(device) if not isinstance(device, torch.device) else device
        self.net = load_inception(path, fuse=fuse).to(self.device)
        self.name = f"inception:{path.name}"
        self.identity = f"inception-v3-tf:{file_sha256(path)}"

    @torch.inference_mode()
    def extract(self, images: np.ndarray) -> dict[str, np.ndarray]:
        x = torch.from_numpy(_writable(images)).to(self.device).permute(0, 3, 1, 2)
        pool3, logits_unbiased, _ = self.net(x)
        return {"features": pool3.float().cpu().numpy(), "logits": logits_unbiased.float().cpu().numpy()}


class DomainExtractor:
    """Penultimate-layer features of a fairlatent attribute classifier (``ClassifierHandle.features``)."""

    fixed_size = True

    def __init__(self, classifier):
        if isinstance(classifier, (str, os.PathLike)):
            from fairlatent.models.classifier import load_classifier

            path = Path(classifier)
            self.handle = load_classifier(path)
        else:
            self.handle = classifier
            path = getattr(classifier, "path", None) or getattr(classifier, "directory", None)
        self.name = f"domain:{path}" if path is not None else f"domain:{type(classifier).__name__}"
        self.identity = "domain:" + (_directory_fingerprint(Path(path)) if path is not None else f"object{id(classifier)}")
        size = getattr(self.handle, "image_size", None)
        self.image_size = int(size) if size else None

    def extract(self, images: np.ndarray) -> dict[str, np.ndarray]:
        feats = np.asarray(self.handle.features(images), dtype=np.float32)
        return {"features": feats}


class CallableExtractor:
    """Wrap ``fn(images uint8 N×H×W×3) -> N×D`` as an extractor (name from the function)."""

    fixed_size = True

    def __init__(self, fn: Callable[[np.ndarray], np.ndarray], name: str | None = None):
        self.fn = fn
        self.name = name or f"callable:{getattr(fn, '__qualname__', type(fn).__name__)}"
        self.identity = f"{self.name}:{id(fn)}"  # process-local: not cached across runs unless named

    def extract(self, images: np.ndarray) -> dict[str, np.ndarray]:
        return {"features": np.asarray(self.fn(images), dtype=np.float32)}


def _writable(images: np.ndarray) -> np.ndarray:
    """A C-contiguous, writable view or copy (torch refuses read-only memory maps without a warning)."""
    arr = np.ascontiguousarray(images)
    return arr if arr.flags.writeable else arr.copy()


def _directory_fingerprint(path: Path) -> str:
    """Hash of the weight files (safetensors/json/pt) of a model directory: names, sizes and contents."""
    h = hashlib.sha256(str(path.resolve()).encode())
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in (".safetensors", ".json", ".pt"))
    for p in files:
        h.update(p.name.encode())
        h.update(hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()[:32]


def make_extractor(
    features="domain",
    *,
    classifier=None,
    inception_weights=None,
    pixels_dim: int | None = None,
    seed: int = 0,
    device=None,
):
    """Resolve ``features`` ("domain" | "inception" | "pixels" | extractor | callable) into an extractor.

    "domain" falls back to Inception when no classifier is given but Inception weights are; with neither,
    a :class:`FairlatentError` explains both options.
    """
    if isinstance(features, FeatureExtractor):
        return features
    if callable(features) and not isinstance(features, str):
        return CallableExtractor(features)
    if features == "pixels":
        return PixelsExtractor(pixels_dim, seed)
    if features == "inception":
        return InceptionExtractor(inception_weights, device=device)
    if features == "domain":
        if classifier is not None:
            return DomainExtractor(classifier)
        if inception_weights is not None:
            return InceptionExtractor(inception_weights, device=device)
        raise FairlatentError(
            "features='domain' needs a trained fairlatent attribute classifier (classifier=DIR, CLI: "
            "--classifier DIR); or use features='inception' with Inception weights (inception_weights=PATH, "
            "CLI: --inception-weights PATH), or features='pixels' for tiny data"
        )
    raise FairlatentError(f"unknown feature extractor {features!r}; use domain, inception, pixels or an extractor")


class FeatureCache:
    """Features on disk, keyed by (data identity, extractor identity): ``<dir>/<key>.{features,logits}.npy``.

    Written atomically, so an interrupted extraction never leaves a cache entry that looks complete.
    """

    def __init__(self, directory: str | os.PathLike):
        self.directory = Path(directory)

    @staticmethod
    def key(data_identity: str, extractor_identity: str) -> str:
        return hashlib.sha256(f"{data_identity}|{extractor_identity}".encode()).hexdigest()[:40]

    def load(self, key: str, need_logits: bool) -> dict[str, np.ndarray] | None:
        feats = self.directory / f"{key}.features.npy"
        logits = self.directory / f"{key}.logits.npy"
        if not feats.is_file() or (need_logits and not logits.is_file()):
            return None
        out = {"features": np.load(feats, allow_pickle=False)}
        if logits.is_file():
            out["logits"] = np.load(logits, allow_pickle=False)
        return out

    def save(self, key: str, outputs: dict[str, np.ndarray], info: dict) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        if "logits" in outputs:
            save_npy(self.directory / f"{key}.logits.npy", outputs["logits"])
        write_json(self.directory / f"{key}.json", info)
        save_npy(self.directory / f"{key}.features.npy", outputs["features"])  # last: marks entry complete
