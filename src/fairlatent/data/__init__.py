"""Data layer: the on-disk format (:mod:`.dataset`), the built-in ToyFaces benchmark and real-data readers."""

from fairlatent.data.dataset import SPLITS, Dataset, load_dataset, write_dataset

__all__ = ["SPLITS", "Dataset", "load_dataset", "write_dataset"]
