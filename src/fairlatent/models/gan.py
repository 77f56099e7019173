"""GAN architectures: DCGAN, a ResNet generator with a spectral-norm ResNet discriminator, and InfoGAN's MNIST pair.

Both families work at 32, 64 and 128 px. A generator maps latents ``z`` (N×D, D = ``latent_dim``) to
images N×3×S×S in [-1, 1] (tanh output); a discriminator maps such images to one real-valued logit per
image (N). The spatial size doubles ``log2(S / 4)`` times from a 4×4 seed, so the channel schedule is

    channels at resolution 4·2^i  =  width · 2^(n_up - 1 - i),  capped at 8 · width,

i.e. wide at low resolution and ``width`` channels at the last hidden layer (the classic DCGAN shape:
``width=64`` at 64 px gives 512-256-128-64). The discriminator mirrors it.

Why these choices
-----------------
- The DCGAN discriminator has no batch normalisation, so the same network is valid for WGAN-GP (whose
  gradient penalty is defined per sample). Its optional minibatch-std feature (``minibatch_std=k``,
  the training default) is the one exception to "one image, one logit": it adds a statistic of each
  group of ``k`` images, which lets D notice a generator that drops a minority mode.
- Generators use batch normalisation in training and running statistics in ``eval()`` mode, so a
  rendered image depends only on its own latent: any image can be regenerated from its latent alone.
- The ResNet discriminator uses spectral normalisation (Miyato et al. 2018), which bounds each layer's
  Lipschitz constant by 1 and makes hinge-loss training stable without a gradient penalty.
- InfoGAN (Chen et al. 2016): a discriminator built with ``q_dim > 0`` carries a :class:`QHead` on its
  trunk (the features its logit is computed from), and ``D(x, with_q=True)`` returns ``(logits, q)``.
  Sharing the trunk is what makes InfoGAN's mutual-information term almost free: the recognition network
  Q costs one small MLP on top of D (the reference code, openai/InfoGAN, does the same). Without
  ``q_dim`` the discriminators are exactly as before (same modules, same state-dict keys).
- ``infogan_mnist`` re-implements the networks of InfoGAN's reference MNIST model (openai/InfoGAN,
  ``RegularizedGAN``, ``network_type="mnist"``): fully connected 1,024-unit layers and batch norm in G, D
  and Q (see :class:`InfoGANMNISTGenerator` and :class:`InfoGANMNISTDiscriminator`). Its discriminator is
  the one with batch norm; the trainer gives it real and generated images as two groups normalised apart
  (:attr:`InfoGANMNISTDiscriminator.batch_groups`), as the reference's two separate D calls do.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.parametrizations import spectral_norm

ARCHITECTURES = ("dcgan", "resnet", "infogan_mnist")
SIZES = (32, 64, 128)


def _n_up(size: int) -> int:
    if size not in SIZES:
        raise ValueError(f"image size {size} is not supported; sizes are {', '.join(map(str, SIZES))}")
    return int(math.log2(size // 4))


def _channels(size: int, width: int) -> list[int]:
    """Channels at resolutions 4, 8, …, size/2 (generator order); the last entry is ``width``."""
    n = _n_up(size)
    return [min(width * 2 ** (n - 1 - i), 8 * width) for i in range(n)]


def _dcgan_init(module: nn.Module) -> None:
    """DCGAN initialisation (Radford et al. 2016): conv/linear weights ~ N(0, 0.02), BN scale ~ N(1, 0.02)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d,)):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


class DCGANGenerator(nn.Module):
    """z → Linear → 4×4 feature map → [ConvTranspose(4, stride 2) + BN + ReLU]… → ConvTranspose → tanh.

    With ``final_width=f`` (> 0) the last up-sampling produces ``f`` hidden channels at full resolution
    instead of the 3 colour channels, followed by BN + ReLU + a 3×3 convolution to RGB. Why: in the
    classic shape the only layer that works at full resolution is a stride-2 transposed convolution
    straight to RGB, so each output pixel is a linear function of just 4 half-resolution features (the
    cause of checkerboard artefacts) and pixel-sized details (ToyFaces' 2-pixel earrings) have no
    full-resolution nonlinearity to be drawn with. ``final_width=0`` is the classic shape.
    """

    def __init__(self, latent_dim: int = 128, size: int = 32, width: int = 64, final_width: int = 0):
        super().__init__()
        self.latent_dim, self.size, self.width, self.final_width = latent_dim, size, width, final_width
        ch = _channels(size, width)
        self.c0 = ch[0]
        self.fc = nn.Linear(latent_dim, ch[0] * 16, bias=False)
        self.bn0 = nn.BatchNorm2d(ch[0])
        layers: list[nn.Module] = []
        for cin, cout in zip(ch[:-1], ch[1:]):
            layers += [nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(True)]
        if final_width > 0:
            layers += [nn.ConvTranspose2d(ch[-1], final_width, 4, 2, 1, bias=False), nn.BatchNorm2d(final_width),
                       nn.ReLU(True), nn.Conv2d(final_width, 3, 3, 1, 1), nn.Tanh()]  # fmt: skip
        else:
            layers += [nn.ConvTranspose2d(ch[-1], 3, 4, 2, 1), nn.Tanh()]
        self.body = nn.Sequential(*layers)
        _dcgan_init(self)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.fc(z).view(z.shape[0], self.c0, 4, 4)
        return self.body(F.relu(self.bn0(x)))


class QHead(nn.Module):
    """InfoGAN's recognition network Q on D's trunk features: Linear → LeakyReLU(0.2) → Linear to ``q_dim``.

    ``q_dim`` is the flat size of Q's outputs (categorical logits, then continuous means and log-stds;
    :func:`fairlatent.models.infogan.split_q` cuts them apart). The reference MNIST model (openai/InfoGAN)
    uses a 128-unit hidden layer with batch norm; here there is no batch norm, because the discriminators
    have none (D sees real and generated images in one batch, whose mixed statistics would leak between
    the two halves, and WGAN-GP's per-sample penalty needs per-sample outputs).
    """

    def __init__(self, in_features: int, q_dim: int, hidden: int = 128):
        super().__init__()
        self.in_features, self.q_dim = in_features, q_dim
        self.net = nn.Sequential(nn.Linear(in_features, hidden), nn.LeakyReLU(0.2, True), nn.Linear(hidden, q_dim))
        _dcgan_init(self)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.net(h)


class DCGANDiscriminator(nn.Module):
    """[Conv(4, stride 2) + LeakyReLU(0.2)]… down to 4×4 → Linear → one logit per image (no batch norm).

    With ``spectral=True`` every layer is spectrally normalised (SNGAN's "standard CNN" use of it):
    the discriminator is then 1-Lipschitz per layer, which keeps its logits, and so G's gradients, from
    blowing up when D is trained with a larger learning rate than G.

    With ``minibatch_std=k`` (> 1) the 4×4 features get one more channel, the *minibatch standard
    deviation* of Karras et al. 2018: for each group of ``k`` consecutive images,
    ``s = mean_{c,h,w} sqrt(Var_group(h[c,h,w]) + 1e-8)``, broadcast over the group. It lets D see how
    varied a batch is, so a generator that drops a minority mode (e.g. a detail present on 30 % of the
    faces) is penalised. D's output then depends on the other images of the group: the batch size must
    be a multiple of ``k``, real and generated images must not share a group (the trainer concatenates
    two equal halves), and WGAN-GP's per-sample penalty no longer applies exactly.

    With ``pack=m`` (> 1) D is a PacGAN discriminator (Lin et al. 2018): each run of ``m`` consecutive
    images is stacked along the channels into one input (first layer 3·m → width) and gets one logit, so
    N images give N/m logits. A generator that under-produces a mode is easier to catch on packs (the
    chance that a pack holds the mode at least once differs more than single-image rates), and D does
    1/m of the work after its first layer.

    With ``q_dim`` > 0 an InfoGAN :class:`QHead` reads the flattened 4×4 trunk features (before the
    minibatch-std statistic, so Q's output for an image depends on that image alone); packing is refused
    then, since Q must see one image per output.
    """

    def __init__(self, size: int = 32, width: int = 64, spectral: bool = False, minibatch_std: int = 0,
                 first_width: int = 0, pack: int = 1, q_dim: int = 0):  # fmt: skip
        super().__init__()
        if q_dim and pack > 1:
            raise ValueError(f"an InfoGAN Q head needs one image per discriminator input; pack={pack} stacks several")
        self.size, self.width, self.spectral, self.minibatch_std = size, width, spectral, minibatch_std
        self.first_width, self.pack = first_width, pack
        ch = _channels(size, width)[::-1]  # width … widest
        sn = spectral_norm if spectral else (lambda m: m)
        layers: list[nn.Module] = []
        # first_width > 0: a 3×3 conv at full resolution before the first down-sampling, so pixel-sized
        # details get their own nonlinear features before the stride-2 layers mix them with neighbours
        c_in = 3 * pack
        ins = [first_width if first_width > 0 else c_in] + ch[:-1]
        convs = [nn.Conv2d(c_in, first_width, 3, 1, 1)] if first_width > 0 else []
        convs += [nn.Conv2d(c_in, c_out, 4, 2, 1) for c_in, c_out in zip(ins, ch)]
        fc = nn.Linear((ch[-1] + (minibatch_std > 1)) * 16, 1)
        _dcgan_init(nn.ModuleList([*convs, fc]))  # before the parametrisation wraps the weights
        for conv in convs:
            layers += [sn(conv), nn.LeakyReLU(0.2, True)]
        self.body = nn.Sequential(*layers)
        self.fc = sn(fc)
        self.q_dim = q_dim
        if q_dim:  # registered only when asked: without it the state dict is what it always was
            self.q = QHead(ch[-1] * 16, q_dim)

    def forward(self, x: torch.Tensor, with_q: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        if self.pack > 1:
            x = pack_images(x, self.pack)
        h = self.body(x)
        if self.minibatch_std <= 1:
            logits = self.fc(h.flatten(1)).squeeze(1)
        else:
            # fc(flatten(cat[h, s·1])) without materialising the constant channel: its 16 weights act on the
            # same value s, so they contribute s · Σ w_std (same result, no slow channels_last concatenation)
            w, n_h = self.fc.weight, h.shape[1] * 16
            s = minibatch_stddev(h, self.minibatch_std)[:, 0, 0, 0]
            logits = (F.linear(h.flatten(1), w[:, :n_h], self.fc.bias) + s[:, None] * w[:, n_h:].sum(1)).squeeze(1)
        return (logits, _q(self, h.flatten(1))) if with_q else logits

    def predict_q(self, x: torch.Tensor) -> torch.Tensor:
        """Q's outputs alone (no logit, so no minibatch-std group: any batch size; reading real images)."""
        return _q(self, self.body(x).flatten(1))


def _q(d: nn.Module, features: torch.Tensor, **kw) -> torch.Tensor:
    if not getattr(d, "q_dim", 0):
        raise ValueError("this discriminator has no InfoGAN Q head (build it with q_dim > 0)")
    return d.q(features, **kw)


def pack_images(x: torch.Tensor, pack: int) -> torch.Tensor:
    """N×C×H×W → (N/pack)×(pack·C)×H×W: each run of ``pack`` consecutive images becomes one input."""
    n, c, h, w = x.shape
    if n % pack:
        raise ValueError(f"a discriminator with pack={pack} needs a batch size divisible by {pack}, got {n}")
    cl = x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
    out = x.contiguous().view(n // pack, pack * c, h, w)
    return out.contiguous(memory_format=torch.channels_last) if cl else out


def minibatch_stddev(h: torch.Tensor, group: int) -> torch.Tensor:
    """N×1×H×W map: per group of ``group`` consecutive rows, mean over (C, H, W) of the group's std."""
    n, c, hh, ww = h.shape
    if n % group:
        raise ValueError(f"minibatch standard deviation needs a batch size divisible by {group}, got {n}")
    # statistics are over (C, H, W), so the memory order is free: take it as stored (NHWC for channels_last
    # inputs), which keeps the gradient flowing back into the convolutions in their fast layout
    nhwc = h.is_contiguous(memory_format=torch.channels_last) and not h.is_contiguous()
    g = (h.permute(0, 2, 3, 1) if nhwc else h).reshape(n // group, group, -1)
    # written out: torch.var over a short middle dimension is ~50× slower on CPU than these ops
    var = (g - g.mean(dim=1, keepdim=True)).square().mean(dim=1)
    s = (var + 1e-8).sqrt().mean(dim=1)  # one value per group
    return s.repeat_interleave(group)[:, None, None, None].expand(n, 1, hh, ww).to(h.dtype)


class _GBlock(nn.Module):
    """Pre-activation up-sampling residual block: BN-ReLU-up-conv3-BN-ReLU-conv3, shortcut up-conv1."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.bn1, self.bn2 = nn.BatchNorm2d(cin), nn.BatchNorm2d(cout)
        self.conv1 = nn.Conv2d(cin, cout, 3, 1, 1)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1)
        self.skip = nn.Conv2d(cin, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.interpolate(F.relu(self.bn1(x)), scale_factor=2.0, mode="nearest")
        h = self.conv2(F.relu(self.bn2(self.conv1(h))))
        return h + self.skip(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class ResNetGenerator(nn.Module):
    """SNGAN-style ResNet generator: Linear → 4×4 → up-sampling residual blocks → BN-ReLU-conv3 → tanh."""

    def __init__(self, latent_dim: int = 128, size: int = 32, width: int = 64):
        super().__init__()
        self.latent_dim, self.size, self.width = latent_dim, size, width
        ch = _channels(size, width)
        ch = ch + [ch[-1]]  # one block per doubling; the last keeps ``width`` channels
        self.c0 = ch[0]
        self.fc = nn.Linear(latent_dim, ch[0] * 16)
        self.blocks = nn.Sequential(*[_GBlock(a, b) for a, b in zip(ch[:-1], ch[1:])])
        self.bn = nn.BatchNorm2d(ch[-1])
        self.out = nn.Conv2d(ch[-1], 3, 3, 1, 1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.blocks(self.fc(z).view(z.shape[0], self.c0, 4, 4))
        return torch.tanh(self.out(F.relu(self.bn(h))))


class _DBlock(nn.Module):
    """Spectral-norm down-sampling residual block; the first block skips the leading ReLU (raw pixels)."""

    def __init__(self, cin: int, cout: int, first: bool):
        super().__init__()
        self.first = first
        self.conv1 = spectral_norm(nn.Conv2d(cin, cout, 3, 1, 1))
        self.conv2 = spectral_norm(nn.Conv2d(cout, cout, 3, 1, 1))
        self.skip = spectral_norm(nn.Conv2d(cin, cout, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x if self.first else F.relu(x)
        h = F.avg_pool2d(self.conv2(F.relu(self.conv1(h))), 2)
        s = self.skip(F.avg_pool2d(x, 2)) if self.first else F.avg_pool2d(self.skip(x), 2)
        return h + s


class SNResNetDiscriminator(nn.Module):
    """Spectral-norm ResNet discriminator: down-sampling blocks to 4×4 → ReLU → sum-pool → SN linear."""

    def __init__(self, size: int = 32, width: int = 64, q_dim: int = 0):
        super().__init__()
        self.size, self.width = size, width
        ch = _channels(size, width)[::-1]
        blocks, cin = [], 3
        for i, cout in enumerate(ch):
            blocks.append(_DBlock(cin, cout, first=i == 0))
            cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.fc = spectral_norm(nn.Linear(cin, 1))
        self.q_dim = q_dim
        if q_dim:  # InfoGAN's Q head on the pooled features (see QHead)
            self.q = QHead(cin, q_dim)

    def forward(self, x: torch.Tensor, with_q: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        h = F.relu(self.blocks(x)).sum(dim=(2, 3))
        logits = self.fc(h).squeeze(1)
        return (logits, _q(self, h)) if with_q else logits

    def predict_q(self, x: torch.Tensor) -> torch.Tensor:
        """Q's outputs alone (no logit)."""
        return _q(self, F.relu(self.blocks(x)).sum(dim=(2, 3)))


# --- InfoGAN's reference MNIST networks -------------------------------------------------------------

INFOGAN_MNIST_LEAK = 0.01  # the reference's leaky_rectify slope (the DCGAN pair here uses 0.2)


def batch_norm_groups(bn: nn.Module, h: torch.Tensor, groups: int = 1) -> torch.Tensor:
    """``bn`` (a 2-d batch norm) applied to ``h`` with training statistics taken over each of ``groups``
    equal consecutive runs of the batch on its own.

    ``h`` is N×C×H×W or N×C (a fully connected layer's output, normalised per unit as an N×C×1×1 map,
    like the reference's ``fc_batch_norm``; a ``BatchNorm2d`` so that :func:`~fairlatent.train.distributed.
    convert_batchnorm` makes it global under data parallelism). In eval mode the running statistics are
    used and ``groups`` does not matter; in training each group updates the running statistics in turn.
    """
    flat = h.dim() == 2
    x = h[:, :, None, None] if flat else h
    if groups > 1 and bn.training:
        if x.shape[0] % groups:
            raise ValueError(f"{x.shape[0]} images do not split into {groups} equal batch-norm groups")
        out = torch.cat([bn(part) for part in x.chunk(groups)])
    else:
        out = bn(x)
    return out.flatten(1) if flat else out


def _check_infogan_mnist_size(size: int) -> int:
    if size < 4 or size % 4:
        raise ValueError(f"the infogan_mnist networks need an image size divisible by 4 (two stride-2 layers), "
                         f"got {size}")  # fmt: skip
    return size // 4


class InfoGANMNISTGenerator(nn.Module):
    """InfoGAN's reference MNIST generator (openai/InfoGAN), re-implemented for S×S RGB images in [−1, 1]:

    z → FC 16w → BN → ReLU → FC (S/4)²·2w → BN → ReLU → reshape 2w×(S/4)×(S/4)
      → ConvTranspose(w, 4, stride 2) → BN → ReLU → ConvTranspose(3, 4, stride 2) → tanh.

    ``width`` (w) is the channels of the S/2 feature map; the reference is ``width=64`` (FC 1024, FC
    7·7·128 at 28 px, here 8·8·128 at 32 px, deconv 64), and every layer scales with it. Deviations: the
    output is 3 channels through tanh (fairlatent's images are RGB in [−1, 1]; the reference draws one
    channel as the mean of a Bernoulli, i.e. a sigmoid on [0, 1]), and layers followed by batch norm have
    no bias (the norm's shift replaces it). Batch norm on the FC layers is per unit, as the reference's
    ``fc_batch_norm``.
    """

    def __init__(self, latent_dim: int = 74, size: int = 32, width: int = 64):
        super().__init__()
        self.latent_dim, self.size, self.width = latent_dim, size, width
        self.s4 = _check_infogan_mnist_size(size)
        self.fc1 = nn.Linear(latent_dim, 16 * width, bias=False)
        self.bn1 = nn.BatchNorm2d(16 * width)
        self.fc2 = nn.Linear(16 * width, 2 * width * self.s4**2, bias=False)
        self.bn2 = nn.BatchNorm2d(2 * width * self.s4**2)
        self.up1 = nn.ConvTranspose2d(2 * width, width, 4, 2, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(width)
        self.up2 = nn.ConvTranspose2d(width, 3, 4, 2, 1)
        _dcgan_init(self)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = F.relu(batch_norm_groups(self.bn1, self.fc1(z)))
        h = F.relu(batch_norm_groups(self.bn2, self.fc2(h)))
        h = h.view(z.shape[0], 2 * self.width, self.s4, self.s4)
        h = F.relu(self.bn3(self.up1(h)))
        return torch.tanh(self.up2(h))


class InfoGANMNISTQHead(nn.Module):
    """The reference MNIST model's Q: Linear(2w) → BN → LeakyReLU(0.01) → Linear to ``q_dim``, on D's trunk
    features (batch norm per group, as D's trunk; see :func:`batch_norm_groups`)."""

    def __init__(self, in_features: int, q_dim: int, hidden: int = 128):
        super().__init__()
        self.in_features, self.q_dim = in_features, q_dim
        self.fc1 = nn.Linear(in_features, hidden, bias=False)
        self.bn = nn.BatchNorm2d(hidden)
        self.fc2 = nn.Linear(hidden, q_dim)
        _dcgan_init(self)

    def forward(self, h: torch.Tensor, groups: int = 1) -> torch.Tensor:
        return self.fc2(F.leaky_relu(batch_norm_groups(self.bn, self.fc1(h), groups), INFOGAN_MNIST_LEAK))


class InfoGANMNISTDiscriminator(nn.Module):
    """InfoGAN's reference MNIST discriminator (openai/InfoGAN), re-implemented for S×S RGB images:

    trunk: Conv(w, 4, stride 2) → LeakyReLU → Conv(2w, 4, stride 2) → BN → LeakyReLU → flatten
           → FC 16w → BN → LeakyReLU;   D: FC → 1 logit;   Q (``q_dim`` > 0): :class:`InfoGANMNISTQHead`
           (FC 2w → BN → LeakyReLU → FC ``q_dim``) on the trunk's 16w features.

    ``width`` (w) is the first convolution's channels; the reference is ``width=64`` (conv 64, conv 128,
    FC 1024, Q's FC 128), and every layer scales with it. LeakyReLU slope 0.01 (the reference's).

    Batch norm makes an image's logit depend on the other images of its batch in training. The reference
    calls D on the real batch and on the generated batch separately, so each is normalised with its own
    statistics; here ``forward(x, groups=2)`` does the same for a batch [real; generated] passed at once
    (the trainer passes ``groups=2`` to discriminators whose :attr:`batch_groups` is true). In eval mode
    the running statistics are used, so Q's reading of an image (:meth:`predict_q`, used in eval mode by
    :func:`fairlatent.models.infogan.predict_codes`) depends on that image alone. Not offered: PacGAN
    packing, the minibatch-std feature, spectral norm, and WGAN-GP (its per-sample penalty needs a
    discriminator without batch norm); the trainer's settings refuse them for this architecture.
    """

    batch_groups = True  # the trainer normalises real and generated images apart (``groups=2``)

    def __init__(self, size: int = 32, width: int = 64, q_dim: int = 0):
        super().__init__()
        self.size, self.width, self.pack = size, width, 1
        s4 = _check_infogan_mnist_size(size)
        self.conv1 = nn.Conv2d(3, width, 4, 2, 1)
        self.conv2 = nn.Conv2d(width, 2 * width, 4, 2, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(2 * width)
        self.fc1 = nn.Linear(2 * width * s4**2, 16 * width, bias=False)
        self.bn3 = nn.BatchNorm2d(16 * width)
        self.fc = nn.Linear(16 * width, 1)
        _dcgan_init(self)
        self.q_dim = q_dim
        if q_dim:  # registered only when asked, as for the other discriminators
            self.q = InfoGANMNISTQHead(16 * width, q_dim, hidden=2 * width)

    def trunk(self, x: torch.Tensor, groups: int = 1) -> torch.Tensor:
        """The shared 16w features of each image (batch norm per group of the batch in training)."""
        h = F.leaky_relu(self.conv1(x), INFOGAN_MNIST_LEAK)
        h = F.leaky_relu(batch_norm_groups(self.bn2, self.conv2(h), groups), INFOGAN_MNIST_LEAK)
        return F.leaky_relu(batch_norm_groups(self.bn3, self.fc1(h.flatten(1)), groups), INFOGAN_MNIST_LEAK)

    def forward(self, x: torch.Tensor, with_q: bool = False, groups: int = 1
                ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
        h = self.trunk(x, groups)
        logits = self.fc(h).squeeze(1)
        if not with_q:
            return logits
        return logits, _q(self, h, groups=groups)

    def predict_q(self, x: torch.Tensor) -> torch.Tensor:
        """Q's outputs alone (no logit); call in eval mode to read images one by one."""
        return _q(self, self.trunk(x))


def build_generator(arch: str, *, size: int, latent_dim: int, width: int, final_width: int = 0) -> nn.Module:
    """The generator of ``arch`` ("dcgan", "resnet" or "infogan_mnist"); ``final_width`` applies to DCGAN only
    (see its class)."""
    if arch == "dcgan":
        return DCGANGenerator(latent_dim, size, width, final_width)
    if final_width:
        raise ValueError(f"final_width={final_width} applies to the DCGAN generator only, not {arch!r}")
    if arch == "resnet":
        return ResNetGenerator(latent_dim, size, width)
    if arch == "infogan_mnist":
        return InfoGANMNISTGenerator(latent_dim, size, width)
    raise ValueError(f"unknown GAN architecture {arch!r}; choose from {', '.join(ARCHITECTURES)}")


def build_discriminator(arch: str, *, size: int, width: int, spectral_norm: bool = False,
                        minibatch_std: int = 0, first_width: int = 0, pack: int = 1, q_dim: int = 0) -> nn.Module:  # fmt: skip
    """The discriminator paired with ``arch``'s generator (DCGAN, optionally spectral-norm, SN-ResNet, or
    InfoGAN's MNIST one); ``q_dim`` > 0 adds an InfoGAN Q head with that many outputs (see :class:`QHead`,
    :class:`InfoGANMNISTQHead`). ``minibatch_std`` applies to DCGAN only and is ignored by the others."""
    if arch == "dcgan":
        return DCGANDiscriminator(size, width, spectral=spectral_norm, minibatch_std=minibatch_std,
                                  first_width=first_width, pack=pack, q_dim=q_dim)  # fmt: skip
    if first_width:
        raise ValueError(f"first_width={first_width} applies to the DCGAN discriminator only, not {arch!r}")
    if pack > 1:
        raise ValueError(f"pack={pack} applies to the DCGAN discriminator only, not {arch!r}")
    if arch == "resnet":
        return SNResNetDiscriminator(size, width, q_dim=q_dim)
    if arch == "infogan_mnist":
        if spectral_norm:
            raise ValueError("spectral_norm applies to the DCGAN discriminator only (the infogan_mnist one uses "
                             "batch norm, as the reference)")  # fmt: skip
        return InfoGANMNISTDiscriminator(size, width, q_dim=q_dim)
    raise ValueError(f"unknown GAN architecture {arch!r}; choose from {', '.join(ARCHITECTURES)}")
