"""Attribute classifiers: a small ResNet for 32–128 px images, and the handle every stage uses to score images.

One network predicts any number of binary attributes at once (one logit per attribute), so a single
classifier can label generated images with every attribute. Its penultimate layer (after global average
pooling) is the "domain" feature space used by the generative metrics.

On disk a trained classifier is a directory holding ``model.safetensors`` (the weights) and
``config.json`` (attributes, image size, architecture, validation thresholds and metrics); ``config.json``
is written last, so its presence marks a complete model. :func:`load_classifier` opens it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F
from pydantic import Field

from fairlatent.errors import FairlatentError
from fairlatent.models.domain_heads import check_domain_head
from fairlatent.models.weights import load_module_state, load_tensors
from fairlatent.utils.device import default_device
from fairlatent.utils.images import to_tensor
from fairlatent.utils.io import atomic_file, read_json
from fairlatent.utils.schema import Schema, check_object

FORMAT_NAME = "fairlatent-classifier"
FORMAT_VERSION = 1
ARCH_NAME = "resnet"


class ResidualBlock(nn.Module):
    """The basic ResNet block: two 3×3 convolutions with BatchNorm, plus an identity (or 1×1) shortcut.

    ``out = relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))``. The second BatchNorm's scale starts at
    zero so every block starts as the identity, which lets a deep stack train from the first step.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        nn.init.zeros_(self.bn2.weight)
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False), nn.BatchNorm2d(out_channels)
            )
        else:
            self.shortcut = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.bn1(self.conv1(x)))
        h = self.bn2(self.conv2(h))
        return F.relu(h + self.shortcut(x))


class AttributeClassifier(nn.Module):
    """A ResNet for small images with one logit per attribute.

    Layout: stem (3×3 conv, stride 2 at 64 px and above, plus a 3×3 max-pool at 128 px and above, so
    the first stage always works at 32 px or less) → ``stages`` residual stages of ``depth`` blocks with
    ``width·2^i`` channels (every stage after the first halves the resolution) → global average pool →
    penultimate features (``feature_dim = width·2^(stages-1)``) → linear head with ``n_outputs`` logits.

    Parameters
    ----------
    n_outputs : int
        Number of attributes (logits).
    image_size : int
        Side of the square input images; decides the stem's downsampling.
    width : int
        Channels of the first stage; cost grows as ``width²``.
    depth : int
        Residual blocks per stage.
    stages : int
        Number of residual stages.
    domains : int
        Heads, one per protected group (domain-independent training, Wang et al., CVPR 2020, "Towards
        fairness in visual recognition"): the head is ``domains`` linear classifiers over the shared features.
        Training takes each image's logits from its own group's head (``forward(x, domain)``); inference, which
        has no group label, takes the mean of the groups' logits (``forward(x)``): the paper's rule
        ``ŷ = argmax_y Σ_d s(y, d)`` for one logit per attribute, divided by ``domains`` (the same ranking;
        thresholds are chosen on validation anyway). 1 = the ordinary single head.
    domain_head : str
        With ``domains > 1``: ``"independent"`` (the heads above) or ``"discriminative"`` (Wang et al.'s
        domain-discriminative training): one softmax per attribute over its 2·``domains`` (value, group)
        cells, trained with the cross-entropy of each image's own cell (``forward(x, domain)`` returns the cell
        logits N×2×domains×A for that loss, :func:`fairlatent.train.classifier.weighted_bce`); inference, without
        the group, sums the group out: the logit ``log Σ_d e^{s(1,d)} − log Σ_d e^{s(0,d)}``, whose sigmoid is
        P(value = 1) = Σ_d P(1, d) (the paper's "sum of probabilities" rule). The network must tell the groups
        apart in its features but not in its score.
    """

    def __init__(self, n_outputs: int, image_size: int, width: int = 16, depth: int = 1, stages: int = 3,
                 domains: int = 1, domain_head: str = "independent") -> None:
        super().__init__()
        if int(domains) < 1:
            raise FairlatentError(f"classifier domains must be ≥ 1, got {domains}")
        self.domain_head = check_domain_head(domain_head, "classifier")
        if domain_head != "independent" and int(domains) < 2:
            raise FairlatentError(f"classifier domain_head {domain_head!r} needs domains ≥ 2, got {domains}")
        self.domains = int(domains)
        self.n_outputs, self.image_size = int(n_outputs), int(image_size)
        self.width, self.depth, self.stages = int(width), int(depth), int(stages)
        stem: list[nn.Module] = [
            nn.Conv2d(3, width, 3, stride=2 if image_size >= 64 else 1, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
        ]
        if image_size >= 128:
            stem.append(nn.MaxPool2d(3, stride=2, padding=1))
        self.stem = nn.Sequential(*stem)
        blocks: list[nn.Module] = []
        channels = width
        for i in range(stages):
            out = width * 2**i
            for j in range(depth):
                blocks.append(ResidualBlock(channels, out, stride=2 if (i > 0 and j == 0) else 1))
                channels = out
        self.blocks = nn.Sequential(*blocks)
        self.feature_dim = channels
        self.head = nn.Linear(channels, n_outputs * self.domains * (2 if self.discriminative else 1))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def arch(self) -> dict[str, Any]:
        """The constructor arguments, as stored in ``config.json``."""
        arch = dict(
            name=ARCH_NAME, n_outputs=self.n_outputs, image_size=self.image_size, width=self.width,
            depth=self.depth, stages=self.stages, feature_dim=self.feature_dim,
        )
        if self.domains > 1:  # absent for a single head, as in every classifier saved before heads existed
            arch["domains"] = self.domains
        if self.discriminative:  # absent for independent heads, as before discriminative ones existed
            arch["domain_head"] = self.domain_head
        return arch

    @property
    def discriminative(self) -> bool:
        """Whether the head is one softmax over (value, group) cells (``domain_head = "discriminative"``)."""
        return self.domain_head == "discriminative"

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features N×F (global average pool of the last stage)."""
        return self.blocks(self.stem(x)).mean(dim=(2, 3))

    def domain_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Every group's logits, N×domains×A (independent heads)."""
        if self.discriminative:
            raise FairlatentError("domain_logits: a discriminative head has cell logits (cell_logits)")
        return self.head(self.features(x)).view(len(x), self.domains, self.n_outputs)

    def cell_logits(self, x: torch.Tensor) -> torch.Tensor:
        """The discriminative head's logits N×2×domains×A: ``[n, v, d, a]`` scores the cell (attribute a = v,
        group d); a softmax over (v, d) for each attribute gives the cells' probabilities."""
        if not self.discriminative:
            raise FairlatentError("cell_logits: only a discriminative head (domain_head='discriminative') has cells")
        return self.head(self.features(x)).view(len(x), 2, self.domains, self.n_outputs)

    def forward(self, x: torch.Tensor, domain: torch.Tensor | None = None) -> torch.Tensor:
        """Logits N×A for images N×3×H×W in [-1, 1]. Independent heads: with ``domain`` (N group indices) each
        image's own group's head (training); without, the mean over the groups' heads (inference).
        Discriminative head: with ``domain``, the cell logits N×2×domains×A (training: the loss picks each
        image's cell); without, the group summed out, ``logsumexp_d s(1, d) − logsumexp_d s(0, d)``."""
        if self.domains == 1:
            return self.head(self.features(x))
        if self.discriminative:
            cells = self.cell_logits(x)
            if domain is not None:
                return cells
            return torch.logsumexp(cells[:, 1], dim=1) - torch.logsumexp(cells[:, 0], dim=1)
        logits = self.domain_logits(x)
        if domain is None:
            return logits.mean(dim=1)
        return logits[torch.arange(len(x), device=logits.device), domain.long()]


def build_classifier(arch: dict[str, Any]) -> AttributeClassifier:
    """Rebuild the network from the ``arch`` entry of ``config.json``."""
    if arch.get("name") != ARCH_NAME:
        raise FairlatentError(f"unknown classifier architecture {arch.get('name')!r}; expected {ARCH_NAME!r}")
    try:
        return AttributeClassifier(
            n_outputs=int(arch["n_outputs"]), image_size=int(arch["image_size"]), width=int(arch["width"]),
            depth=int(arch["depth"]), stages=int(arch.get("stages", 3)), domains=int(arch.get("domains", 1)),
            domain_head=str(arch.get("domain_head", "independent")),
        )
    except KeyError as exc:
        raise FairlatentError(f"classifier architecture lacks {exc.args[0]!r}: {arch}") from None


@dataclass
class ClassifierHandle:
    """A trained classifier ready to score uint8 images.

    Attributes
    ----------
    attributes : list of str
        Attribute names, in logit order.
    image_size : int
        Side of the square images it expects.
    config : dict
        The full ``config.json`` (architecture, training config, validation metrics per epoch, best epoch).
    thresholds : dict
        ``{attr: {"calibrated": float, "f1": float}}`` chosen on validation; predict positive when
        ``score > threshold`` (see :mod:`fairlatent.models.thresholds`).
    module : AttributeClassifier
        The network in eval mode (for neuron audits).
    """

    path: Path
    attributes: list[str]
    image_size: int
    config: dict[str, Any]
    thresholds: dict[str, dict[str, float]]
    module: AttributeClassifier
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    def _check_images(self, images: np.ndarray) -> None:
        if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
            desc = f"{images.dtype} {images.shape}" if isinstance(images, np.ndarray) else type(images).__name__
            raise FairlatentError(f"classifier {self.path}: expected uint8 N×H×W×3 images, got {desc}")
        h, w = images.shape[1:3]
        if (h, w) != (self.image_size, self.image_size):
            raise FairlatentError(
                f"classifier {self.path}: expects {self.image_size}×{self.image_size} images, got {h}×{w}"
            )

    def _run(self, images: np.ndarray, fn, batch_size: int) -> np.ndarray:
        self._check_images(images)
        out = []
        with torch.inference_mode():
            for start in range(0, len(images), batch_size):
                batch = np.asarray(images[start : start + batch_size])
                if not batch.flags.writeable:  # e.g. a memory-mapped data set; torch wants writable memory
                    batch = batch.copy()
                x = to_tensor(batch, self.device)
                out.append(fn(x).float().cpu())
        if not out:
            width = self.module.feature_dim if fn == self.module.features else len(self.attributes)
            return np.zeros((0, width), dtype=np.float32)
        return torch.cat(out).numpy().astype(np.float32, copy=False)

    def predict_logits(self, images: np.ndarray, batch_size: int = 512) -> np.ndarray:
        """Logits float32 N×A."""
        return self._run(images, self.module, batch_size)

    def predict_scores(self, images: np.ndarray, batch_size: int = 512) -> np.ndarray:
        """Sigmoid probabilities float32 N×A, one column per attribute (``self.attributes`` order)."""
        return self._run(images, lambda x: torch.sigmoid(self.module(x)), batch_size)

    def features(self, images: np.ndarray, batch_size: int = 512) -> np.ndarray:
        """Penultimate features float32 N×F (the "domain" feature extractor for FID etc.)."""
        return self._run(images, self.module.features, batch_size)

    def predict(self, images: np.ndarray, *, threshold: str = "calibrated", batch_size: int = 512) -> np.ndarray:
        """0/1 int8 predictions N×A: ``score > thresholds[attr][threshold]`` (``"calibrated"`` or ``"f1"``)."""
        if threshold not in ("calibrated", "f1"):
            raise FairlatentError(f"unknown threshold {threshold!r}; use 'calibrated' or 'f1'")
        scores = self.predict_scores(images, batch_size)
        cut = np.array([self.thresholds[a][threshold] for a in self.attributes], dtype=np.float64)
        return (scores > cut).astype(np.int8)

    def column(self, attribute: str) -> int:
        """Index of one attribute's column; an unknown name is an error listing the known ones."""
        if attribute not in self.attributes:
            raise FairlatentError(
                f"classifier {self.path} has no attribute {attribute!r}; it predicts: {', '.join(self.attributes)}"
            )
        return self.attributes.index(attribute)


def read_classifier_config(path: str | os.PathLike) -> dict[str, Any]:
    """Read and check ``config.json`` of a classifier directory."""
    path = Path(path)
    if not path.is_dir():
        raise FairlatentError(f"{path}: not a classifier directory (no such directory)")
    if not (path / "config.json").is_file():
        hint = " (training was interrupted: run the same training command again to resume)" if (
            path / "checkpoint"
        ).is_dir() else ""
        raise FairlatentError(f"{path}: missing config.json; not a complete fairlatent classifier{hint}")
    config = read_json(path / "config.json")
    if not isinstance(config, dict) or config.get("format") != FORMAT_NAME:
        got = config.get("format") if isinstance(config, dict) else type(config).__name__
        raise FairlatentError(f"{path}/config.json: not a fairlatent classifier (format={got!r})")
    for key in ("attributes", "image_size", "arch", "thresholds"):
        if key not in config:
            raise FairlatentError(f"{path}/config.json: missing {key!r}")
    check_object(config, ClassifierRecord, f"{path}/config.json")
    missing = [a for a in config["attributes"] if a not in config["thresholds"]]
    if missing:
        raise FairlatentError(f"{path}/config.json: field 'thresholds': no thresholds for {missing}")
    return config


class ClassifierRecord(Schema):
    """The fields of a classifier's ``config.json`` that scoring relies on (see :func:`read_classifier_config`)."""

    attributes: list[str] = Field(min_length=1)
    image_size: int = Field(ge=1)
    arch: dict[str, Any]
    thresholds: dict[str, dict[str, float]]


def load_classifier(path: str | os.PathLike, *, device: str | torch.device | None = None) -> ClassifierHandle:
    """Open a trained classifier directory (``config.json`` + ``model.safetensors``) for scoring."""
    path = Path(path)
    config = read_classifier_config(path)
    module = build_classifier(config["arch"])
    weights = path / "model.safetensors"
    load_module_state(module, load_tensors(weights), "", source=weights)
    attributes = list(config["attributes"])
    if module.n_outputs != len(attributes):
        raise FairlatentError(
            f"{path}/config.json: {len(attributes)} attributes but the network has {module.n_outputs} outputs"
        )
    dev = default_device(str(device) if device is not None else None)
    # channels_last like in training: to_tensor yields NHWC-strided batches, and on CPU the forward pass is
    # ~1.4× faster in this layout (benchmarks/bench_classifier.py); the weights' values are unchanged.
    module.to(dev, memory_format=torch.channels_last).eval()
    thresholds = {a: {k: float(v) for k, v in config["thresholds"][a].items()} for a in attributes}
    return ClassifierHandle(
        path=path, attributes=attributes, image_size=int(config["image_size"]), config=config,
        thresholds=thresholds, module=module, device=dev,
    )


def score_dataset(
    model_dir: str | os.PathLike,
    data_dir: str | os.PathLike,
    out_csv: str | os.PathLike,
    *,
    split: str | None = None,
    batch_size: int = 512,
) -> Path:
    """Score every image of a data set (or one split) and write ``id`` + one score column per attribute.

    Scores are sigmoid probabilities written with 9 significant digits, so reading the CSV back as float32
    gives exactly the scores :meth:`ClassifierHandle.predict_scores` returned. The file is written atomically.
    """
    from fairlatent.data.dataset import load_dataset

    handle = load_classifier(model_dir)
    data = load_dataset(data_dir)
    if data.images.shape[1:3] != (handle.image_size, handle.image_size):
        raise FairlatentError(
            f"{data.path}: images are {data.images.shape[1]}×{data.images.shape[2]} but classifier {handle.path} "
            f"expects {handle.image_size}×{handle.image_size}"
        )
    idx = np.arange(len(data)) if split is None else data.split_indices(split)
    scores = np.zeros((0, len(handle.attributes)), dtype=np.float32)
    chunks = []
    chunk = 8192  # read the memory-mapped images in pieces, not all at once
    for start in range(0, len(idx), chunk):
        chunks.append(handle.predict_scores(np.asarray(data.images[idx[start : start + chunk]]), batch_size))
    if chunks:
        scores = np.concatenate(chunks)
    table = pd.DataFrame(scores, columns=handle.attributes)
    table.insert(0, "id", data.ids[idx])
    out_csv = Path(out_csv)
    with atomic_file(out_csv) as tmp:
        table.to_csv(tmp, index=False, float_format="%.9g")
    return out_csv
