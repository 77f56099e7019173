"""The networks of the class-preserving regularized autoencoder (Mondal et al., AISTATS 2023).

Architectures follow the reference code (``code/osrae.py`` of github.com/arnabkmondal/OversamplingRAE,
TensorFlow; re-written here, not copied), with the widths as settings so a CPU run can shrink them:

- :class:`Encoder`: conv(c, 4×4, /2)–BN–LReLU(0.2)–dropout(0.4), conv(2c, 4×4, /2)–BN–LReLU–dropout,
  dense(h)–BN–LReLU–dropout, dense(z). Reference: c = 64, h = 1024, convolutions without bias.
- :class:`Decoder` (class-conditional): [z, one-hot y] → dense(h)–BN–ReLU → dense(2c·S/4·S/4)–BN–ReLU →
  deconv(2c, 4×4, ×2)–BN–ReLU → deconv(c, 4×4, ×2)–BN–ReLU → conv(C, 3×3)–sigmoid, pixels in [0, 1].
- linear probe: one ``nn.Linear(z, K)`` — the final classifier of the method.
- :class:`Mixer`: [z₁, z₂, noise, one-hot y] → 4 × (dense(h)–BN–ReLU–dropout(0.4)) → softmax over 2 convex
  weights. The softmax makes the output a point of the simplex by construction.
- :class:`Critic` (conditional WGAN critic): conv(c, /2)–LReLU, conv(2c, /2)–LReLU, [flatten, one-hot y] →
  dense(h)–LReLU → dense(1); no normalisation (the gradient penalty is per sample).

Batch norms use Keras' defaults (momentum 0.99 → PyTorch ``momentum=0.01``, ε = 1e-3) and weights its
Glorot-uniform initialisation with zero biases, so a run starts where the reference's does.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["Critic", "Decoder", "Encoder", "Mixer", "build_probe", "glorot_init", "mix"]


def _bn1(n: int) -> nn.BatchNorm1d:
    return nn.BatchNorm1d(n, eps=1e-3, momentum=0.01)


def _bn2(n: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(n, eps=1e-3, momentum=0.01)


def glorot_init(module: nn.Module) -> nn.Module:
    """Keras' default initialisation: Glorot-uniform kernels, zero biases (of every conv and dense layer)."""
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return module


class Encoder(nn.Module):
    def __init__(self, channels_in: int, size: int, z_dim: int, width: int = 64, hidden: int = 1024,
                 dropout: float = 0.4):  # fmt: skip
        super().__init__()
        c = width
        self.features = nn.Sequential(
            nn.Conv2d(channels_in, c, 4, 2, 1, bias=False), _bn2(c), nn.LeakyReLU(0.2), nn.Dropout(dropout),
            nn.Conv2d(c, 2 * c, 4, 2, 1, bias=False), _bn2(2 * c), nn.LeakyReLU(0.2), nn.Dropout(dropout),
            nn.Flatten(),
            nn.Linear(2 * c * (size // 4) ** 2, hidden), _bn1(hidden), nn.LeakyReLU(0.2), nn.Dropout(dropout),
            nn.Linear(hidden, z_dim),
        )  # fmt: skip
        glorot_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


class Decoder(nn.Module):
    def __init__(self, channels_out: int, size: int, z_dim: int, n_classes: int, width: int = 64,
                 hidden: int = 1024):  # fmt: skip
        super().__init__()
        c, s = width, size // 4
        self.n_classes, self.shape = n_classes, (2 * c, s, s)
        self.fc = nn.Sequential(
            nn.Linear(z_dim + n_classes, hidden), _bn1(hidden), nn.ReLU(),
            nn.Linear(hidden, 2 * c * s * s), _bn1(2 * c * s * s), nn.ReLU(),
        )  # fmt: skip
        self.up = nn.Sequential(
            nn.ConvTranspose2d(2 * c, 2 * c, 4, 2, 1), _bn2(2 * c), nn.ReLU(),
            nn.ConvTranspose2d(2 * c, c, 4, 2, 1), _bn2(c), nn.ReLU(),
            nn.Conv2d(c, channels_out, 3, 1, 1), nn.Sigmoid(),
        )  # fmt: skip
        glorot_init(self)

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Images in [0, 1] for latents ``z`` (N×z) and class indices ``y`` (N): the class is an input."""
        h = self.fc(torch.cat([z, F.one_hot(y, self.n_classes).to(z.dtype)], 1))
        return self.up(h.view(-1, *self.shape))


class Mixer(nn.Module):
    def __init__(self, z_dim: int, n_classes: int, hidden: int = 1024, layers: int = 4, dropout: float = 0.4,
                 components: int = 2):  # fmt: skip
        super().__init__()
        self.n_classes = n_classes
        blocks: list[nn.Module] = []
        d = 3 * z_dim + n_classes
        for _ in range(layers):
            blocks += [nn.Linear(d, hidden), _bn1(hidden), nn.ReLU(), nn.Dropout(dropout)]
            d = hidden
        self.body = nn.Sequential(*blocks)
        self.head = nn.Linear(d, components)
        glorot_init(self)

    def forward(self, z1: torch.Tensor, z2: torch.Tensor, noise: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Convex weights N×2 (non-negative, rows summing to 1) for mixing ``z1`` and ``z2`` of class ``y``."""
        h = self.body(torch.cat([z1, z2, noise, F.one_hot(y, self.n_classes).to(z1.dtype)], 1))
        return torch.softmax(self.head(h), dim=1)


def mix(alpha: torch.Tensor, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
    """α₀·z₁ + α₁·z₂ for convex weights ``alpha`` (N×2)."""
    return alpha[:, :1] * z1 + alpha[:, 1:2] * z2


class Critic(nn.Module):
    def __init__(self, channels_in: int, size: int, n_classes: int, width: int = 64, hidden: int = 1024):
        super().__init__()
        c = width
        self.n_classes = n_classes
        self.conv = nn.Sequential(
            nn.Conv2d(channels_in, c, 4, 2, 1, bias=False), nn.LeakyReLU(0.2),
            nn.Conv2d(c, 2 * c, 4, 2, 1, bias=False), nn.LeakyReLU(0.2), nn.Flatten(),
        )  # fmt: skip
        self.fc = nn.Sequential(nn.Linear(2 * c * (size // 4) ** 2 + n_classes, hidden), nn.LeakyReLU(0.2),
                                nn.Linear(hidden, 1))  # fmt: skip
        glorot_init(self)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h = torch.cat([self.conv(x), F.one_hot(y, self.n_classes).to(x.dtype)], 1)
        return self.fc(h).squeeze(1)


def build_probe(z_dim: int, n_classes: int) -> nn.Linear:
    """The linear probe on the latent space (the method's classifier)."""
    return glorot_init(nn.Linear(z_dim, n_classes))
