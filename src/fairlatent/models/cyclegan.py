"""CycleGAN networks: the ResNet translator and the PatchGAN discriminator (Zhu et al., ICCV 2017).

Both follow the paper's appendix (7.2, "Network architectures") and the reference implementation
(junyanz/pytorch-CycleGAN-and-pix2pix, ``models/networks.py``: ``ResnetGenerator``, ``ResnetBlock``,
``NLayerDiscriminator``, ``init_weights``); they are written here from that description, not copied.

Translator (:class:`ResnetTranslator`), in the paper's notation (``c7s1-k``: 7×7 conv, stride 1, k
filters, instance norm, ReLU; ``dk``: 3×3 conv stride 2; ``Rk``: residual block of two 3×3 convs;
``uk``: 3×3 fractional-strided conv, stride ½)::

    c7s1-w, d2w, d4w, R4w × n_blocks, u2w, uw, c7s1-3 (no norm), tanh

with reflection padding before every 7×7 and 3×3 stride-1 conv (fewer border artefacts than zero
padding), instance normalisation without learned affine parameters or running statistics (so ``eval()``
and ``train()`` compute the same function and every image is translated on its own), and conv biases on
(the reference turns them off only for batch norm). A consequence worth knowing: the first conv is linear
and is followed by instance norm, which removes each channel's image mean, so the translator is exactly
blind to a global colour offset of its input (G(x + c) = G(x) for a constant colour c; tested). It
keeps structure, not overall tint — an image's tint in the output is what the training data implies for
its structure, which matters when the protected attribute (or a target) is partly a global colour. The paper uses 6 blocks at 128 px and 9 at 256 px;
fewer are allowed for small images (``n_blocks``), because at 32 px the bottleneck is only 8×8 and six
blocks already see the whole of it. The image side must be a multiple of 4 (two halvings, two doublings).

Discriminator (:class:`PatchDiscriminator`): ``C64-C128-C256-C512`` of 4×4 convs (LeakyReLU 0.2, instance
norm on all but the first), the first ``n_layers`` with stride 2, then a stride-1 layer and a stride-1
conv to one channel: a map of logits, each judging one overlapping patch. With ``n_layers = 3`` each
logit sees 70×70 pixels — 27 % of the side of the paper's 256-px images. At 32 px a 70-px patch would
be the whole image (and more), so the depth is scaled to the image (:func:`patch_layers`).

Width: ``width`` is the paper's k of the first layer (reference ``ngf = ndf = 64``); channels are capped
at 8·width as in the reference. The training default (:class:`fairlatent.train.cyclegan.CycleGANConfig`)
is smaller for 32-px CPU runs.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = [
    "ResnetTranslator",
    "PatchDiscriminator",
    "patch_layers",
    "patch_receptive_field",
    "check_translator_size",
    "init_cyclegan_weights",
    "PATCH_FRACTION",
]

# The reference's patch: 70 px of a 256-px image. patch_layers() keeps each logit's receptive field at
# most this share of the image side (and at least one stride-2 layer).
PATCH_FRACTION = 0.3


def check_translator_size(size: int) -> int:
    """The image side the translator works at: a multiple of 4 (two stride-2 halvings), at least 16."""
    if size < 16 or size % 4:
        raise ValueError(f"image size {size} is not supported by the CycleGAN translator: the side must be a "
                         "multiple of 4 and at least 16")
    return size


def init_cyclegan_weights(module: nn.Module, gain: float = 0.02) -> None:
    """The reference's default ``init_type='normal'``: conv weights ~ N(0, 0.02), biases 0.

    The reference seeds torch globally; here the caller draws these from a seeded generator scope so
    the initial weights are a function of the config seed alone.
    """
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def _norm(channels: int) -> nn.Module:
    # affine=False, no running statistics: the reference's 'instance' norm layer
    return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)


class ResidualBlock(nn.Module):
    """``x + [pad, conv3, IN, ReLU, pad, conv3, IN](x)`` (the paper's Rk; no dropout, the reference's default)."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3), _norm(channels), nn.ReLU(True),
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3), _norm(channels),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResnetTranslator(nn.Module):
    """Image → image of the same size, N×3×S×S in [-1, 1] to N×3×S×S in [-1, 1] (tanh output).

    ``width`` channels at full resolution, 2·width at S/2, 4·width in the ``n_blocks`` residual blocks at S/4.
    """

    def __init__(self, size: int, width: int = 64, n_blocks: int = 6):
        super().__init__()
        if width < 1 or n_blocks < 0:
            raise ValueError(f"width must be ≥ 1 and n_blocks ≥ 0, got width={width}, n_blocks={n_blocks}")
        self.size, self.width, self.n_blocks = check_translator_size(size), width, n_blocks
        w = width
        layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(3, w, 7), _norm(w), nn.ReLU(True)]
        for k in (1, 2):  # d2w, d4w
            layers += [nn.Conv2d(w * k, w * 2 * k, 3, stride=2, padding=1), _norm(w * 2 * k), nn.ReLU(True)]
        layers += [ResidualBlock(4 * w) for _ in range(n_blocks)]
        for k in (4, 2):  # u2w, uw
            layers += [nn.ConvTranspose2d(w * k, w * k // 2, 3, stride=2, padding=1, output_padding=1),
                       _norm(w * k // 2), nn.ReLU(True)]  # fmt: skip
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(w, 3, 7), nn.Tanh()]
        self.body = nn.Sequential(*layers)
        init_cyclegan_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def patch_receptive_field(n_layers: int) -> int:
    """Side in pixels of the patch one logit of a :class:`PatchDiscriminator` with ``n_layers`` sees.

    Walking back from one output pixel: the two stride-1 4×4 convs give 4 + 3 = 7 pixels; each stride-2
    4×4 conv before them maps r to 2(r − 1) + 4. So 1 → 16, 2 → 34, 3 → 70 (the paper's 70×70 PatchGAN).
    """
    r = 7
    for _ in range(n_layers):
        r = 2 * (r - 1) + 4
    return r


def patch_layers(size: int, fraction: float = PATCH_FRACTION) -> int:
    """The number of stride-2 layers for ``size``-px images: the deepest whose patch is at most
    ``fraction`` of the side, and at least 1.

    The paper's 70-px patch on 256-px images is 27 % of the side; the rule reproduces its 3 layers at 256
    and gives 2 (34-px patches) at 128, 1 (16-px patches) at 64. At 32 and 16 px no depth is that local,
    and the smallest (1 layer, 16-px patches: half or all of the image) is used — a patch of 7 px (0
    stride-2 layers) would judge little more than texture.
    """
    n = 1
    while patch_receptive_field(n + 1) <= fraction * size:
        n += 1
    return n


class PatchDiscriminator(nn.Module):
    """N×3×S×S images → N×1×P×P logits, one per overlapping patch (the reference's ``NLayerDiscriminator``).

    ``n_layers=None`` chooses :func:`patch_layers` (size). P = S / 2^n_layers − 2.
    """

    def __init__(self, size: int, width: int = 64, n_layers: int | None = None):
        super().__init__()
        check_translator_size(size)
        n = patch_layers(size) if n_layers is None else n_layers
        if n < 1 or size // 2**n - 2 < 1:
            raise ValueError(f"n_layers={n} does not fit {size}-px images (needs 1 ≤ n_layers and size/2^n_layers ≥ 3)")
        self.size, self.width, self.n_layers = size, width, n
        self.receptive_field = patch_receptive_field(n)
        w = width
        layers: list[nn.Module] = [nn.Conv2d(3, w, 4, stride=2, padding=1), nn.LeakyReLU(0.2, True)]
        cin = w
        for i in range(1, n + 1):  # n − 1 more stride-2 layers, then one stride-1 layer
            cout = w * min(2**i, 8)
            layers += [nn.Conv2d(cin, cout, 4, stride=2 if i < n else 1, padding=1), _norm(cout),
                       nn.LeakyReLU(0.2, True)]  # fmt: skip
            cin = cout
        layers += [nn.Conv2d(cin, 1, 4, stride=1, padding=1)]
        self.body = nn.Sequential(*layers)
        init_cyclegan_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)
