"""The concepts units are compared with: spatial part masks and image-level attributes of a data set.

Two kinds, following network dissection's Broden data:

* **spatial** concepts are per-pixel masks — ToyFaces' ``masks.npy`` parts (``background, face, hair, hat,
  glasses, mouth, beard, earrings``; bit-packed N×P×H×W along W), at the image resolution;
* **image-level** concepts are the data set's attribute columns (CelebA's 40, ToyFaces' 9). Network dissection
  defines the rule for labels without a location (Broden's *scene* labels): the label covers **every pixel**
  of each image that has it. So an image-level concept's mask is all-ones on the images with the attribute
  and all-zeros elsewhere, and its IoU with a unit, computed pixel-wise over the whole data set like any
  other concept, rewards a unit that fires on those images (and only on them) over a large area. It also
  makes formulas that mix the kinds meaningful, e.g. ``mouth AND Smiling``.

If a part and an attribute share a name, the attribute is called ``NAME@image``. Masks are compared at the
resolution they are stored at (the image size); without part masks, image-level concepts use the image size
too, so unit masks are the same whether a data set has part masks or not.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from fairlatent.data.dataset import Dataset
from fairlatent.errors import FairlatentError


@dataclass
class ConceptSet:
    """Concept names (spatial first, then image-level) and the data to build their masks, batch by batch."""

    names: list[str]
    n_spatial: int
    mask_size: tuple[int, int]
    data: Dataset
    indices: np.ndarray  # the probe rows of ``data``
    image_labels: np.ndarray = field(repr=False)  # bool (len(indices), n_image)
    attribute_parts: dict[str, str] = field(default_factory=dict)

    @property
    def n_image(self) -> int:
        return len(self.names) - self.n_spatial

    @property
    def kinds(self) -> list[str]:
        return ["spatial"] * self.n_spatial + ["image"] * self.n_image

    def __len__(self) -> int:
        return len(self.names)

    def spatial(self, rows: slice | np.ndarray) -> np.ndarray | None:
        """Part masks bool ``(B, n_spatial, H, W)`` of probe rows ``rows`` (None without parts)."""
        if self.n_spatial == 0:
            return None
        return self.data.masks(self.indices[rows])

    def image(self, rows: slice | np.ndarray) -> np.ndarray:
        """Image-level labels bool ``(B, n_image)`` of probe rows ``rows``."""
        return self.image_labels[rows]

    def full_masks(self, rows: slice | np.ndarray | None = None) -> list[np.ndarray]:
        """Every concept as a full boolean ``(B, H, W)`` mask, image-level ones broadcast over all pixels.

        Memory ``K·B·H·W`` bytes: for tests and the plain reference search only."""
        rows = slice(None) if rows is None else rows
        spatial = self.spatial(rows)
        labels = self.image(rows)
        b = len(labels)
        out = [spatial[:, k] for k in range(self.n_spatial)] if spatial is not None else []
        for j in range(self.n_image):
            out.append(np.broadcast_to(labels[:, j, None, None], (b, *self.mask_size)).copy())
        return out

    def index(self, name: str) -> int:
        try:
            return self.names.index(name)
        except ValueError:
            raise FairlatentError(f"unknown concept {name!r}; concepts are: {', '.join(self.names)}") from None


def dataset_concepts(data: Dataset, indices: np.ndarray | None = None, *, parts: bool = True,
                     attributes: bool | Sequence[str] = True) -> ConceptSet:
    """The concepts of a data set: its part masks (when it has ``masks.npy``) and attribute columns.

    ``attributes`` may name a subset of the columns. A data set with neither gives an error naming it."""
    idx = np.arange(len(data)) if indices is None else np.asarray(indices)
    spatial = list(data.part_names) if (parts and data.has_masks) else []
    if attributes is True:
        columns = list(data.attribute_names)
    elif attributes is False:
        columns = []
    else:
        columns = list(attributes)
        data.check_attributes(columns)
    if not spatial and not columns:
        raise FairlatentError(
            f"{data.path}: no concepts to explain units with: the data set has no part masks (masks.npy) "
            "and no attribute columns"
        )
    names = spatial + [f"{c}@image" if c in spatial else c for c in columns]
    labels = (data.table[columns].to_numpy()[idx].astype(bool) if columns
              else np.zeros((len(idx), 0), dtype=bool))
    mask_size = (int(data.images.shape[1]), int(data.images.shape[2]))
    meta_parts = data.meta.get("attribute_parts") or {}
    attribute_parts = {a: p for a, p in meta_parts.items() if isinstance(p, str) and p in spatial and a in columns}
    return ConceptSet(names=names, n_spatial=len(spatial), mask_size=mask_size, data=data, indices=idx,
                      image_labels=labels, attribute_parts=attribute_parts)
