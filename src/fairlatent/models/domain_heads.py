"""The two ways a classifier can use the protected group in training and not at inference (Wang et al., CVPR
2020, "Towards fairness in visual recognition: effective strategies for bias mitigation").

- ``"independent"``: one target head per group over shared features, each image trained through its own
  group's head, scored with the mean of the heads' logits (the paper's domain-independent training).
- ``"discriminative"``: one softmax per attribute over the (value, group) cells, each image trained on its
  own cell, scored with the group summed out, P(value = 1) = Σ_d P(1, d) (the paper's domain-discriminative
  training with its "sum of probabilities" inference).

A torch-free module so that the method registry (:mod:`fairlatent.pipeline.methods`), read when a config is
validated, can name them before torch loads; the networks are
:class:`fairlatent.models.classifier.AttributeClassifier`'s ``domain_head``.
"""

from fairlatent.errors import FairlatentError

DOMAIN_HEADS = ("independent", "discriminative")


def check_domain_head(domain_head: str, where: str) -> str:
    """``domain_head`` itself when it is one of :data:`DOMAIN_HEADS`; else an error that names ``where``."""
    if domain_head not in DOMAIN_HEADS:
        raise FairlatentError(f"{where}: domain_head must be one of {', '.join(DOMAIN_HEADS)}, got {domain_head!r}")
    return domain_head
