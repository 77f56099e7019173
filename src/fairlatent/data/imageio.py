"""Reading image collections (a folder or a zip) into one uint8 N×S×S×3 array.

Every real-data reader (CelebA, FairFace, a user's folder) goes through the same three steps, kept here so
they behave the same way everywhere:

1. :func:`open_image_source` indexes a directory or a zip by *relative name* (``000001.jpg``,
   ``train/1.jpg``). A zip whose members all sit under one top folder (``img_align_celeba/000001.jpg``) is
   indexed without that folder, so a zip and the unpacked folder give the same names.
2. :func:`decode_rgb` decodes one file with Pillow. An undecodable or truncated file is a
   :class:`~fairlatent.errors.FairlatentError` naming it; grayscale, palette, CMYK or RGBA images are
   converted to RGB (alpha is dropped) and *counted*, so the caller can say so once.
3. :func:`decode_images` runs a per-image transform (crop box + resize, see :func:`crop_resize`) over many
   files in a thread pool (Pillow releases the GIL while decoding and resampling) with a rich progress bar.

Resampling uses Pillow's Lanczos filter (``Image.LANCZOS``), which Pillow applies with a support scaled by
the reduction factor, i.e. an antialiased downsample. When the crop is already the target size no
resampling happens at all: the output bytes are exactly the decoded JPEG pixels.
"""

from __future__ import annotations

import io
import os
import threading
import warnings
import zipfile
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
from PIL import Image

from fairlatent.errors import FairlatentError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif")  # a GIF gives its first frame
RESAMPLE_FILTER = Image.LANCZOS
RESAMPLE_FILTER_NAME = "lanczos (Pillow Image.LANCZOS, antialiased)"

Box = tuple[int, int, int, int]  # left, upper, right, lower (Pillow convention), pixels


class ImageSource:
    """Files of a directory or a zip, addressed by relative POSIX name (``sub/dir/file.jpg``)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._zip: zipfile.ZipFile | None = None
        self._members: dict[str, str] = {}
        self._local = threading.local()
        if self.path.is_dir():
            root = self.path
            for dirpath, _dirs, files in os.walk(root):
                for f in files:
                    if f.lower().endswith(IMAGE_EXTENSIONS):
                        rel = Path(dirpath, f).relative_to(root).as_posix()
                        self._members[rel] = rel
        elif self.path.is_file() and zipfile.is_zipfile(self.path):
            with zipfile.ZipFile(self.path) as zf:
                names = [n for n in zf.namelist() if not n.endswith("/") and n.lower().endswith(IMAGE_EXTENSIONS)]
            # Skip macOS resource forks, which carry image extensions but are not images.
            names = [n for n in names if "__MACOSX/" not in n and not Path(n).name.startswith("._")]
            tops = {n.split("/", 1)[0] for n in names if "/" in n}
            strip = len(tops) == 1 and all("/" in n for n in names)
            for n in names:
                self._members[n.split("/", 1)[1] if strip else n] = n
        elif self.path.exists():
            raise FairlatentError(f"{self.path}: neither a directory nor a zip file of images")
        else:
            raise FairlatentError(f"{self.path}: no such file or directory")

    @property
    def kind(self) -> str:
        return "directory" if self.path.is_dir() else "zip"

    def names(self) -> list[str]:
        """Relative names of every image file, sorted."""
        return sorted(self._members)

    def __contains__(self, name: str) -> bool:
        return name in self._members

    def __len__(self) -> int:
        return len(self._members)

    def display_name(self, name: str) -> str:
        """Where a file lives, for error messages (``archive.zip:member`` or a path)."""
        if self.kind == "zip":
            return f"{self.path}:{self._members.get(name, name)}"
        return str(self.path / name)

    def read(self, name: str) -> bytes:
        if name not in self._members:
            raise FairlatentError(f"{self.display_name(name)}: no such image")
        if self.kind == "directory":
            return (self.path / self._members[name]).read_bytes()
        # One ZipFile handle per thread: reads from a shared handle would serialise on its lock.
        zf = getattr(self._local, "zf", None)
        if zf is None:
            zf = self._local.zf = zipfile.ZipFile(self.path)
        try:
            return zf.read(self._members[name])
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            raise FairlatentError(f"{self.display_name(name)}: cannot read from the zip ({exc})") from None


def open_image_source(path: str | os.PathLike) -> ImageSource:
    """Index a directory (recursively) or a zip of images; see :class:`ImageSource`."""
    return ImageSource(path)


def decode_rgb(data: bytes, where: str) -> tuple[Image.Image, str]:
    """Decode image bytes fully; return the RGB image and its original mode.

    ``img.load()`` forces the whole decode so that truncated files fail here (Pillow is lazy otherwise).
    """
    try:
        img = Image.open(io.BytesIO(data))
        img.load()
    except Image.UnidentifiedImageError:
        what = "an empty file" if not data else "not an image format Pillow can read"
        raise FairlatentError(f"{where}: cannot decode image ({what})") from None
    except Exception as exc:  # Pillow raises OSError, SyntaxError, ValueError, DecompressionBombError...
        raise FairlatentError(f"{where}: cannot decode image ({type(exc).__name__}: {exc})") from None
    mode = img.mode
    if mode.startswith("I;16") or mode == "I":
        img = _sixteen_to_eight(img)
    elif mode == "F":
        img = _float_to_eight(img)
    if img.mode != "RGB":
        img = img.convert("RGB")
    return img, mode


def _sixteen_to_eight(img: Image.Image) -> Image.Image:
    """A 16-bit grayscale image (``I;16``, ``I;16B``, ``I;16L``; ``I`` as Pillow opens some 16-bit files) as
    8-bit ``L`` by ``v >> 8``. Pillow's own ``convert`` clips every value above 255 to white, which turned
    16-bit scans into near-white images. (16-bit RGB PNGs Pillow already opens as 8-bit ``RGB``.)"""
    arr = np.asarray(img).astype(np.int64)
    return Image.fromarray((np.clip(arr, 0, 65535) >> 8).astype(np.uint8), mode="L")


def _float_to_eight(img: Image.Image) -> Image.Image:
    """A 32-bit float grayscale image (``F``, e.g. a float TIFF) as 8-bit ``L``: values in [0, 1] (the usual
    convention of float images) are scaled by 255, anything else is taken as 0–255 and clipped. Pillow's
    own ``convert`` truncates, so a [0, 1] image became black."""
    arr = np.nan_to_num(np.asarray(img, dtype=np.float64), nan=0.0, posinf=255.0, neginf=0.0)
    if arr.size and arr.min() >= 0.0 and arr.max() <= 1.0:
        arr = arr * 255.0
    return Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8), mode="L")


def crop_resize(img: Image.Image, box: Box | None, size: int) -> np.ndarray:
    """Crop ``img`` to ``box`` (left, upper, right, lower; None = whole image) and resize to size×size.

    No resampling when the crop is already size×size, so the result is bit-identical to slicing the
    decoded array ``np.asarray(img)[upper:lower, left:right]``.
    """
    if box is not None:
        img = img.crop(box)
    if img.size != (size, size):
        img = img.resize((size, size), RESAMPLE_FILTER)
    return np.asarray(img, dtype=np.uint8)


def center_square_box(width: int, height: int) -> Box:
    """The largest centred square of a width×height image (Pillow box)."""
    s = min(width, height)
    left, upper = (width - s) // 2, (height - s) // 2
    return (left, upper, left + s, upper + s)


@dataclass
class DecodeResult:
    """Output of :func:`decode_images`: images in input order, plus what was converted or skipped."""

    images: np.ndarray
    kept: list[int]
    converted_modes: Counter = field(default_factory=Counter)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (name, reason)
    sizes: Counter = field(default_factory=Counter)


def decode_images(
    source: ImageSource,
    names: Sequence[str],
    transform: Callable[[Image.Image, str], np.ndarray],
    size: int,
    *,
    skip_bad: bool = False,
    workers: int | None = None,
    progress: bool = True,
    description: str = "decoding",
) -> DecodeResult:
    """Decode ``names`` from ``source`` and apply ``transform(rgb_image, name) -> uint8 size×size×3``.

    ``transform`` may raise :class:`FairlatentError` (e.g. for an unexpected image size). By default the
    first bad file stops the run with an error naming it; with ``skip_bad=True`` bad files are skipped
    and listed in ``skipped``. Results keep the order of ``names`` (``kept`` are the positions kept).
    """
    n = len(names)
    out = np.empty((n, size, size, 3), dtype=np.uint8)
    ok = np.zeros(n, dtype=bool)
    modes: Counter = Counter()
    sizes: Counter = Counter()
    skipped: list[tuple[str, str]] = []
    lock = threading.Lock()
    workers = workers or min(4, (os.cpu_count() or 1) + 1)

    def work(i: int) -> None:
        name = names[i]
        try:
            img, mode = decode_rgb(source.read(name), source.display_name(name))
            orig_size = img.size
            arr = transform(img, name)
        except FairlatentError as exc:
            if not skip_bad:
                raise
            with lock:
                skipped.append((name, str(exc)))
            return
        if arr.shape != (size, size, 3):  # a transform bug, not a user error
            raise AssertionError(f"transform returned {arr.shape} for {name}")
        out[i] = arr
        ok[i] = True
        with lock:
            sizes[orig_size] += 1
            if mode != "RGB":
                modes[mode] += 1

    bar = _progress(progress)
    with bar:
        task = bar.add_task(description, total=n)
        chunk = 256
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for start in range(0, n, chunk):
                # list() re-raises the first worker exception here, in order.
                list(pool.map(work, range(start, min(n, start + chunk))))
                bar.update(task, completed=min(n, start + chunk))
    kept = np.flatnonzero(ok).tolist()
    skipped.sort()
    note = mode_conversion_note(modes)
    if note:
        warnings.warn(f"{source.path}: {note}", UserWarning, stacklevel=2)  # once per run, with the count
    return DecodeResult(images=out[ok] if len(kept) < n else out, kept=kept, converted_modes=modes,
                        skipped=skipped, sizes=sizes)


def _progress(enabled: bool):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from rich.console import Console

    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        disable=not enabled,
        transient=False,
        console=Console(stderr=True),
    )


def mode_conversion_note(modes: Counter) -> str | None:
    """One sentence saying how many images were converted to RGB from which modes (None if none were)."""
    if not modes:
        return None
    total = sum(modes.values())
    parts = ", ".join(f"{c} {m}" for m, c in sorted(modes.items()))
    how = []
    if any(m.startswith("I") or m == "F" for m in modes):
        how.append("16-bit and float values scaled to 0–255")
    if any(m in ("RGBA", "LA", "PA", "La", "RGBa") or m.endswith("A") for m in modes):
        how.append("alpha channels dropped")
    return f"converted {total} non-RGB image(s) to RGB ({parts})" + (f"; {', '.join(how)}" if how else "")


def examples(items: Iterable[str], k: int = 5) -> list[str]:
    """The first ``k`` items, for reporting a long list by count plus examples."""
    out = []
    for x in items:
        if len(out) == k:
            break
        out.append(x)
    return out


def refuse_existing(out: str | os.PathLike, overwrite: bool) -> None:
    """Fail before the (slow) decoding when the output exists and may not be replaced."""
    if Path(out).exists() and not overwrite:
        raise FairlatentError(f"{out} already exists; pass --overwrite (overwrite=True in Python) to replace it")
