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

DOMAIN_HEADS = ("independent", "discriminative")
