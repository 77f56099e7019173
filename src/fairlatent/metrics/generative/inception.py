"""Inception-v3 as ported from the 2015-12-05 TensorFlow graph used by the original FID / IS code.

This is the network behind the standard FID and IS numbers: it differs from torchvision's Inception-v3 in
ways that change the features (1008 output classes; average pools that exclude padding; the last mixed
block pools with *max*, a quirk of the TF graph; TF 1.x bilinear resize to 299 × 299; input scaled as
(x − 128) / 128). Outputs: pool3 features (2048-d, for FID/KID/PR), ``logits_unbiased`` (fc without its
bias, what the TF reference fed to the Inception Score) and ``logits`` (1008).

Weights are never downloaded: they are read from a local file given as ``weights=``, the environment
variable ``FAIRLATENT_INCEPTION_WEIGHTS``, or torch hub's checkpoint folder (``~/.cache/torch/hub/
checkpoints/``). Both published conversions are accepted: pytorch-fid's ``pt_inception-2015-12-05-6726825d.pth``
(torchvision ``Inception3`` key names) and torch-fidelity's ``weights-inception-2015-12-05-6726825d.pth``;
both are plain state dicts, loaded with ``torch.load(..., weights_only=True)`` and mapped onto the
parameter names used here (:func:`canonical_state_dict`).

Speed: at load time each convolution's batch norm is folded into the convolution (w' = w·γ/√(σ²+ε),
b' = β − μ·γ/√(σ²+ε)), halving the number of passes over activations; the network runs in channels-last
layout. Folding changes round-off only (≈1e-7 relative per layer).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from fairlatent.errors import FairlatentError

INPUT_SIZE = 299
WEIGHT_FILES = ("pt_inception-2015-12-05-6726825d.pth", "weights-inception-2015-12-05-6726825d.pth")
ENV_VAR = "FAIRLATENT_INCEPTION_WEIGHTS"


# --------------------------------------------------------------------------------------------- layers
class ConvBN(nn.Module):
    """Convolution without bias → batch norm (ε = 1e-3) → ReLU; after :meth:`fold` a biased convolution → ReLU."""

    def __init__(self, cin: int, cout: int, kernel, stride=1, padding=0):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=1e-3)
        self.folded: nn.Conv2d | None = None

    def fold(self) -> None:
        scale = self.bn.weight / torch.sqrt(self.bn.running_var + self.bn.eps)
        conv = nn.Conv2d(
            self.conv.in_channels, self.conv.out_channels, self.conv.kernel_size,
            stride=self.conv.stride, padding=self.conv.padding, bias=True,
        ).to(self.conv.weight.dtype)
        with torch.no_grad():
            conv.weight.copy_(self.conv.weight * scale[:, None, None, None])
            conv.bias.copy_(self.bn.bias - self.bn.running_mean * scale)
        self.folded = conv

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.folded is not None:
            return F.relu(self.folded(x), inplace=True)
        return F.relu(self.bn(self.conv(x)), inplace=True)


def _avg3(x: torch.Tensor) -> torch.Tensor:
    # TF's SAME average pool divides by the number of real (non-padding) pixels.
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


class MixedA(nn.Module):
    """35×35 block (Mixed_5b/c/d): 1×1 | 1×1→5×5 | 1×1→3×3→3×3 | avgpool→1×1."""

    def __init__(self, cin: int, pool_features: int):
        super().__init__()
        self.branch1x1 = ConvBN(cin, 64, 1)
        self.branch5x5_1 = ConvBN(cin, 48, 1)
        self.branch5x5_2 = ConvBN(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = ConvBN(cin, 64, 1)
        self.branch3x3dbl_2 = ConvBN(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = ConvBN(96, 96, 3, padding=1)
        self.branch_pool = ConvBN(cin, pool_features, 1)

    def forward(self, x):
        a = self.branch1x1(x)
        b = self.branch5x5_2(self.branch5x5_1(x))
        c = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        d = self.branch_pool(_avg3(x))
        return torch.cat([a, b, c, d], 1)


class ReductionB(nn.Module):
    """35→17 grid reduction (Mixed_6a)."""

    def __init__(self, cin: int):
        super().__init__()
        self.branch3x3 = ConvBN(cin, 384, 3, stride=2)
        self.branch3x3dbl_1 = ConvBN(cin, 64, 1)
        self.branch3x3dbl_2 = ConvBN(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = ConvBN(96, 96, 3, stride=2)

    def forward(self, x):
        a = self.branch3x3(x)
        b = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([a, b, F.max_pool2d(x, kernel_size=3, stride=2)], 1)


class MixedC(nn.Module):
    """17×17 block with factorised 7×7 convolutions (Mixed_6b..e)."""

    def __init__(self, cin: int, c7: int):
        super().__init__()
        self.branch1x1 = ConvBN(cin, 192, 1)
        self.branch7x7_1 = ConvBN(cin, c7, 1)
        self.branch7x7_2 = ConvBN(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7_3 = ConvBN(c7, 192, (7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = ConvBN(cin, c7, 1)
        self.branch7x7dbl_2 = ConvBN(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = ConvBN(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = ConvBN(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = ConvBN(c7, 192, (1, 7), padding=(0, 3))
        self.branch_pool = ConvBN(cin, 192, 1)

    def forward(self, x):
        a = self.branch1x1(x)
        b = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        c = x
        for layer in (self.branch7x7dbl_1, self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4,
                      self.branch7x7dbl_5):
            c = layer(c)
        d = self.branch_pool(_avg3(x))
        return torch.cat([a, b, c, d], 1)


class ReductionD(nn.Module):
    """17→8 grid reduction (Mixed_7a)."""

    def __init__(self, cin: int):
        super().__init__()
        self.branch3x3_1 = ConvBN(cin, 192, 1)
        self.branch3x3_2 = ConvBN(192, 320, 3, stride=2)
        self.branch7x7x3_1 = ConvBN(cin, 192, 1)
        self.branch7x7x3_2 = ConvBN(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = ConvBN(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = ConvBN(192, 192, 3, stride=2)

    def forward(self, x):
        a = self.branch3x3_2(self.branch3x3_1(x))
        b = self.branch7x7x3_4(self.branch7x7x3_3(self.branch7x7x3_2(self.branch7x7x3_1(x))))
        return torch.cat([a, b, F.max_pool2d(x, kernel_size=3, stride=2)], 1)


class MixedE(nn.Module):
    """8×8 block with split 1×3 / 3×1 branches (Mixed_7b pools with average, Mixed_7c with max: TF quirk)."""

    def __init__(self, cin: int, pool: str):
        super().__init__()
        self.pool = pool
        self.branch1x1 = ConvBN(cin, 320, 1)
        self.branch3x3_1 = ConvBN(cin, 384, 1)
        self.branch3x3_2a = ConvBN(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = ConvBN(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = ConvBN(cin, 448, 1)
        self.branch3x3dbl_2 = ConvBN(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = ConvBN(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = ConvBN(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = ConvBN(cin, 192, 1)

    def forward(self, x):
        a = self.branch1x1(x)
        b = self.branch3x3_1(x)
        b = torch.cat([self.branch3x3_2a(b), self.branch3x3_2b(b)], 1)
        c = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        c = torch.cat([self.branch3x3dbl_3a(c), self.branch3x3dbl_3b(c)], 1)
        pooled = _avg3(x) if self.pool == "avg" else F.max_pool2d(x, kernel_size=3, stride=1, padding=1)
        d = self.branch_pool(pooled)
        return torch.cat([a, b, c, d], 1)


# --------------------------------------------------------------------------------------------- resize
def resize_bilinear_tf1(x: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear resize exactly as TensorFlow 1.x ``resize_bilinear`` (align_corners=False, no half-pixel).

    Source coordinate of output pixel o is s = o · (in/out) (no half-pixel offset, unlike PyTorch's
    ``interpolate``); the value is a + (b − a)·(s − ⌊s⌋) with a, b the pixels at ⌊s⌋ and min(⌊s⌋+1, in−1),
    first along width, then along height. The arithmetic order matches the TF kernel, so on CPU the result is
    bit-identical to it.
    """
    n, c, h, w = x.shape
    if h == size and w == size:
        return x

    def axis(in_size: int):
        pos = torch.arange(size, dtype=x.dtype, device=x.device) * torch.tensor(
            in_size / size, dtype=torch.float32, device=x.device
        )
        lo = pos.long()
        hi = (lo + 1).clamp_max(in_size - 1)
        return lo, hi, pos - lo.to(pos.dtype)

    ylo, yhi, dy = axis(h)
    xlo, xhi, dx = axis(w)
    left = x.index_select(3, xlo)
    across = left + (x.index_select(3, xhi) - left) * dx.view(1, 1, 1, size)
    top = across.index_select(2, ylo)
    return top + (across.index_select(2, yhi) - top) * dy.view(1, 1, size, 1)


# --------------------------------------------------------------------------------------------- network
class InceptionV3TF(nn.Module):
    """The TF-graph Inception-v3. ``forward(uint8 N×3×H×W) -> (pool3 N×2048, logits_unbiased, logits)``."""

    def __init__(self):
        super().__init__()
        self.Conv2d_1a_3x3 = ConvBN(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = ConvBN(32, 32, 3)
        self.Conv2d_2b_3x3 = ConvBN(32, 64, 3, padding=1)
        self.Conv2d_3b_1x1 = ConvBN(64, 80, 1)
        self.Conv2d_4a_3x3 = ConvBN(80, 192, 3)
        self.Mixed_5b = MixedA(192, 32)
        self.Mixed_5c = MixedA(256, 64)
        self.Mixed_5d = MixedA(288, 64)
        self.Mixed_6a = ReductionB(288)
        self.Mixed_6b = MixedC(768, 128)
        self.Mixed_6c = MixedC(768, 160)
        self.Mixed_6d = MixedC(768, 160)
        self.Mixed_6e = MixedC(768, 192)
        self.Mixed_7a = ReductionD(768)
        self.Mixed_7b = MixedE(1280, pool="avg")
        self.Mixed_7c = MixedE(2048, pool="max")
        self.fc = nn.Linear(2048, 1008)
        self.fused = False

    def fuse(self) -> "InceptionV3TF":
        """Fold every batch norm into its convolution (inference only; see the module docstring)."""
        for module in self.modules():
            if isinstance(module, ConvBN):
                module.fold()
        self.fused = True
        return self

    def forward(self, images: torch.Tensor):
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"expected uint8 N×3×H×W images, got {images.dtype} {tuple(images.shape)}")
        x = images.to(self.fc.weight.dtype)
        x = resize_bilinear_tf1(x, INPUT_SIZE)
        x = (x - 128) / 128
        if self.fused:
            x = x.contiguous(memory_format=torch.channels_last)
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        for block in (self.Mixed_5b, self.Mixed_5c, self.Mixed_5d, self.Mixed_6a, self.Mixed_6b, self.Mixed_6c,
                      self.Mixed_6d, self.Mixed_6e, self.Mixed_7a, self.Mixed_7b, self.Mixed_7c):
            x = block(x)
        pool3 = x.mean(dim=(2, 3))
        logits_unbiased = pool3 @ self.fc.weight.T
        logits = logits_unbiased + self.fc.bias
        return pool3, logits_unbiased, logits


# --------------------------------------------------------------------------------------------- weights
def canonical_state_dict(state: dict) -> dict:
    """Map a pytorch-fid or torch-fidelity Inception state dict onto this module's parameter names.

    pytorch-fid saved torchvision ``Inception3`` (possibly with ``AuxLogits.*`` and BN ``num_batches_tracked``
    entries, possibly wrapped as ``module.``/``model.``); torch-fidelity saved its own module, whose pooling
    layers have no parameters. Both use the TF layer names (``Conv2d_1a_3x3.conv.weight``,
    ``Mixed_7c.branch_pool.bn.running_var``, ``fc.bias``) that this module keeps.
    """
    out = {}
    for key, value in state.items():
        for prefix in ("module.", "model.", "net."):
            if key.startswith(prefix):
                key = key[len(prefix):]
        if key.startswith("AuxLogits.") or key.endswith("num_batches_tracked"):
            continue
        out[key] = value
    return out


def find_inception_weights(weights: str | os.PathLike | None = None) -> Path:
    """Resolve the weights file: explicit path, then ``$FAIRLATENT_INCEPTION_WEIGHTS``, then torch hub's folder."""
    if weights is not None:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise FairlatentError(f"Inception weights file {path} does not exist")
        return path
    env = os.environ.get(ENV_VAR)
    if env:
        path = Path(env).expanduser()
        if not path.is_file():
            raise FairlatentError(f"${ENV_VAR}={env}: no such file")
        return path
    hub = Path(torch.hub.get_dir()) / "checkpoints"
    for name in WEIGHT_FILES:
        if (hub / name).is_file():
            return hub / name
    raise FairlatentError(
        "Inception-v3 (FID) weights not found. Get pytorch-fid's pt_inception-2015-12-05-6726825d.pth "
        "(https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth) "
        "or torch-fidelity's weights-inception-2015-12-05-6726825d.pth, and put it in "
        f"{hub}/, or pass inception_weights=PATH (CLI: --inception-weights PATH), or set ${ENV_VAR}=PATH. "
        "Without Inception weights use features='domain' with a trained fairlatent classifier."
    )


def load_inception(weights: str | os.PathLike | None = None, *, fuse: bool = True) -> InceptionV3TF:
    """Build the network and load weights from a local file (never downloaded; never unpickled)."""
    path = find_inception_weights(weights)
    import pickle

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # torch's own message is a page long and suggests weights_only=False, i.e. running the file's code
        if "Unsupported global" not in str(exc):  # not an object refused, just not a torch.save file
            detail = str(exc).split("WeightsUnpickler error:")[-1].strip().split("\n\n")[0].strip()
            raise FairlatentError(f"{path}: cannot read as a PyTorch state dict (not a torch.save file: "
                                  f"{detail.splitlines()[0] if detail else 'unreadable'})") from None
        raise FairlatentError(f"{path}: holds pickled Python objects besides tensors; fairlatent loads only plain "
                              "state dicts of tensors and never unpickles code (convert the file to a state dict "
                              "where it came from)") from None
    except Exception as exc:  # noqa: BLE001 - any failure here is a bad user file
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise FairlatentError(f"{path}: cannot read as a PyTorch state dict ({first})") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    net = InceptionV3TF()
    state = canonical_state_dict(state)
    try:
        missing, unexpected = net.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # shape mismatches
        missing, unexpected = [str(exc).splitlines()[-1].strip()], []
    if missing or unexpected:
        raise FairlatentError(
            f"{path}: not an Inception-v3 FID checkpoint (missing {missing[:3]}…, unexpected {unexpected[:3]}…)"
        )
    net.requires_grad_(False).eval()
    return net.fuse() if fuse else net
