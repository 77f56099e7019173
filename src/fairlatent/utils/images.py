"""Image conventions shared by every area.

On disk and between stages: ``uint8`` arrays of shape N×H×W×3 (RGB). Inside models: ``float32`` tensors
N×3×H×W in [-1, 1]. These two functions are the only conversion points.
"""

from __future__ import annotations

import numpy as np
import torch


def to_tensor(images: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """uint8 N×H×W×3 → float32 N×3×H×W in [-1, 1]."""
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"expected uint8 N×H×W×3 images, got {images.dtype} {images.shape}")
    t = torch.from_numpy(np.ascontiguousarray(images)).to(device)
    return t.permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """float N×3×H×W in [-1, 1] → uint8 N×H×W×3 (rounded, clipped)."""
    x = images.detach().float().clamp(-1, 1).add(1).mul(127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).cpu().numpy()


def image_grid(images: np.ndarray, nrow: int, pad: int = 2, pad_value: int = 255) -> np.ndarray:
    """Tile uint8 N×H×W×3 images into one uint8 image with ``nrow`` images per row."""
    n, h, w, c = images.shape
    ncol = nrow
    nrows = (n + ncol - 1) // ncol
    grid = np.full((nrows * (h + pad) + pad, ncol * (w + pad) + pad, c), pad_value, dtype=np.uint8)
    for i in range(n):
        r, q = divmod(i, ncol)
        y, x = pad + r * (h + pad), pad + q * (w + pad)
        grid[y : y + h, x : x + w] = images[i]
    return grid


def save_png(path, image: np.ndarray, scale: int = 1) -> None:
    """Save a uint8 H×W×3 image as PNG (lossless), optionally upscaled by nearest neighbour, atomically."""
    from PIL import Image

    from fairlatent.utils.io import atomic_file

    img = Image.fromarray(image)
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    with atomic_file(path) as tmp:
        img.save(tmp, format="PNG")
