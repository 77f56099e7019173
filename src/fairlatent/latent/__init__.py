"""Latent-space geometry: attribute hyperplanes and the edits that flip a protected attribute."""

from fairlatent.latent.edits import (
    DOMAIN_EDIT,
    EDIT_KINDS,
    MULTI_EDIT,
    affine_minimum_norm_edit,
    agreement_mask,
    verified_mask,
    complementary_latents,
    complementary_latents_domain,
    edit_latents,
    minimum_norm_edit,
    multi_protected_edits,
    multi_protected_jobs,
)
from fairlatent.latent.hyperplane import Hyperplane, cell_balanced_weights, fit_domain_hyperplanes, fit_hyperplane

__all__ = [
    "DOMAIN_EDIT",
    "EDIT_KINDS",
    "Hyperplane",
    "MULTI_EDIT",
    "affine_minimum_norm_edit",
    "agreement_mask",
    "cell_balanced_weights",
    "complementary_latents",
    "complementary_latents_domain",
    "edit_latents",
    "fit_domain_hyperplanes",
    "fit_hyperplane",
    "minimum_norm_edit",
    "multi_protected_edits",
    "multi_protected_jobs",
    "verified_mask",
]
