"""Generative-model metrics: FID, KID, Inception Score, precision/recall, density/coverage.

Exact (float64 FID by the symmetric eigendecomposition route), fast and memory-bounded (chunked nearest
neighbours), with pluggable feature extractors (Inception-v3 TF port, a fairlatent classifier's
penultimate layer, pixels). Entry points: :func:`compute_generative_metrics` and :func:`extract_features`.
"""

from fairlatent.metrics.generative.api import compute_generative_metrics, extract_features, resize_images
from fairlatent.metrics.generative.features import (
    CallableExtractor,
    DomainExtractor,
    FeatureCache,
    FeatureExtractor,
    Features,
    InceptionExtractor,
    PixelsExtractor,
    make_extractor,
)
from fairlatent.metrics.generative.fid import MetricNote, feature_statistics, fid_from_features, frechet_distance
from fairlatent.metrics.generative.inception_score import inception_score
from fairlatent.metrics.generative.inputs import DatasetSelection, GeneratorSamples, resolve_source
from fairlatent.metrics.generative.kid import kernel_inception_distance, mmd2_unbiased
from fairlatent.metrics.generative.prdc import compute_prdc, kth_neighbour_sq_radii

__all__ = [
    "MetricNote",
    "CallableExtractor",
    "DatasetSelection",
    "DomainExtractor",
    "FeatureCache",
    "FeatureExtractor",
    "Features",
    "GeneratorSamples",
    "InceptionExtractor",
    "PixelsExtractor",
    "compute_generative_metrics",
    "compute_prdc",
    "extract_features",
    "feature_statistics",
    "fid_from_features",
    "frechet_distance",
    "inception_score",
    "kernel_inception_distance",
    "kth_neighbour_sq_radii",
    "make_extractor",
    "mmd2_unbiased",
    "resize_images",
    "resolve_source",
]
