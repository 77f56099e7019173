"""The competitors of the imbalance benchmark, on the same backbone as the autoencoder's encoder.

Each competitor is a CNN classifier — :class:`~fairlatent.oversample.models.Encoder` (same widths as the
autoencoder it is compared with) followed by a linear layer, i.e. exactly the shape of the method's
encoder + linear probe — trained with cross-entropy for a fixed number of steps. They differ only in
what they see:

- ``ce``: the long-tailed training set as it is (uniform batches);
- ``reweighted``: the same batches, loss weight N / (K·n_c) for class c (each class weighs the same in total);
- ``ros``: random oversampling — class-balanced batches (class uniform, then an image of it uniformly);
- ``smote_pixels``: SMOTE (k = 5, imbalanced-learn) on flattened pixels up to the largest class, uniform
  batches over the balanced set;
- ``latent_smote``: SMOTE in the autoencoder's latent space, decoded by its class-conditional decoder
  (the idea of DeepSMOTE, Dablain et al. 2022), real + decoded images, uniform batches;
- ``rae_augment``: real + images decoded from the mixer's latents (:meth:`RAEModel.sample`): the decoded
  minority samples augmenting another classifier.

With ``augment_p`` > 0 each training batch is augmented as the autoencoder's real images are
(:func:`fairlatent.oversample.augment.augment`, fixed probability), so a comparison with an augmented
autoencoder can give every competitor the same. Training is a plain loop (not the resumable engine: these
are benchmark baselines of a few minutes), seeded by ``(seed, name)`` so every method sees the same initial
weights for a given seed. After training the batch-norm statistics are recomputed exactly over 16 batches
drawn as in training (:func:`fairlatent.train.batchnorm.standing_batchnorm_statistics`), as the
autoencoder's are: the encoder's momentum 0.01 leaves stale statistics after a few hundred steps, and a
comparison in which only the method got fresh ones would not be fair.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from fairlatent.errors import FairlatentError
from fairlatent.oversample.augment import GEOMETRIC, augment, check_ops
from fairlatent.oversample.models import Encoder, build_probe
from fairlatent.oversample.rae import images_to_tensor
from fairlatent.train.batchnorm import standing_batchnorm_statistics
from fairlatent.utils.seed import hash_str, rng, torch_generator

__all__ = ["CNNSettings", "smote", "train_cnn"]


@dataclass(frozen=True)
class CNNSettings:
    width: int = 16
    hidden: int = 256
    z_dim: int = 64
    steps: int = 1500
    batch_size: int = 64
    lr: float = 1e-3
    dropout: float = 0.4
    standing_statistics: bool = True  # exact batch-norm statistics after training, as the autoencoder's
    # the share of training images augmented (fairlatent.oversample.augment, fixed p), and by which ops: an
    # autoencoder trained with augmentation is compared with competitors given the same
    augment_p: float = 0.0
    augment_ops: tuple[str, ...] = GEOMETRIC

    def __post_init__(self) -> None:
        if not 0 <= self.augment_p <= 1:
            raise FairlatentError(f"CNN augment_p = {self.augment_p}: a probability, in [0, 1]")
        try:
            check_ops(self.augment_ops)
        except ValueError as e:
            raise FairlatentError(f"CNN augment_ops: {e}") from None


class CNN(nn.Module):
    def __init__(self, channels: int, size: int, n_classes: int, s: CNNSettings):
        super().__init__()
        self.encoder = Encoder(channels, size, s.z_dim, s.width, s.hidden, s.dropout)
        self.head = build_probe(s.z_dim, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(x))

    @torch.no_grad()
    def predict(self, images: np.ndarray, batch: int = 512) -> np.ndarray:
        self.eval()
        return np.concatenate([self(images_to_tensor(images[i : i + batch])).argmax(1).numpy()
                               for i in range(0, len(images), batch)])


def smote(x: np.ndarray, y: np.ndarray, seed: int, k_neighbors: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """imbalanced-learn's SMOTE up to the largest class, on rows of ``x`` (any float features)."""
    try:
        from imblearn.over_sampling import SMOTE
    except ImportError:
        raise FairlatentError("SMOTE needs imbalanced-learn: pip install 'fairlatent[imbalance]'") from None
    k = min(k_neighbors, int(np.bincount(y).min()) - 1)
    if k < 1:
        raise FairlatentError("SMOTE needs at least 2 images of every class")
    return SMOTE(k_neighbors=k, random_state=seed).fit_resample(x, y)


def train_cnn(images: np.ndarray, labels: np.ndarray, n_classes: int, settings: CNNSettings, *, seed: int,
              balanced_batches: bool = False, class_weights: np.ndarray | None = None) -> tuple[CNN, float]:
    """A CNN trained on ``images`` (uint8 N×H×W×C); returns it and the training seconds."""
    t0 = time.perf_counter()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(hash_str(f"cnn-init-{seed}"))
        model = CNN(images.shape[3], images.shape[1], n_classes, settings)
        opt = torch.optim.Adam(model.parameters(), lr=settings.lr)
        w = None if class_weights is None else torch.as_tensor(class_weights, dtype=torch.float32)
        labels = np.asarray(labels, dtype=np.int64)
        by_class = [np.flatnonzero(labels == c) for c in range(n_classes)]

        def batch(r: np.random.Generator) -> np.ndarray:
            if balanced_batches:
                cls = r.integers(n_classes, size=settings.batch_size)
                return np.array([by_class[c][r.integers(len(by_class[c]))] for c in cls])
            return r.integers(len(images), size=settings.batch_size)

        model.train()
        for step in range(settings.steps):
            idx = batch(rng(seed, "cnn-batch", step))
            x, y = images_to_tensor(images[idx]), torch.from_numpy(labels[idx])
            if settings.augment_p > 0:
                x = augment(x, torch_generator(seed, "cnn-augment", step), settings.augment_p, settings.augment_ops)
            loss = F.cross_entropy(model(x), y, weight=w)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        if settings.standing_statistics:
            with torch.no_grad(), standing_batchnorm_statistics(model):
                for i in range(16):
                    model(images_to_tensor(images[batch(rng(seed, "cnn-bn-recalibration", i))]))
    model.eval()
    return model, time.perf_counter() - t0


