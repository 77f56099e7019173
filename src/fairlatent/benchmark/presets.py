"""Named starting points for a benchmark config (CelebA: ``PRESETS``; ToyFaces: ``TOYFACES_PRESETS``), on which the command line's options and ``--set`` overrides (:mod:`fairlatent.utils.settings`) are applied.

``test``: a few hundred images and tiny models; it shows the mechanics end to end in about a minute (the
test suite runs it), not the paper's effect. ``default``: nothing preset, the
:class:`~fairlatent.benchmark.celeba.CelebABenchmarkConfig` defaults apply. Presets are plain dicts so a
command line can merge its options into them before validation names any misspelt key.
"""

from __future__ import annotations

import copy
from typing import Any

from fairlatent.errors import FairlatentError

TEST_PRESET: dict[str, Any] = {
    "limit": 600, "size": 32, "min_positives": 20,
    "gan": {"arch": "dcgan", "width": 16, "steps": 400, "batch_size": 32, "checkpoint_every": 200, "sample_every": 200},
    "classifier": {"width": 8, "epochs": 6, "stages": 2},
    # calibrated: a tiny labeler's F1-best threshold can sit below every score and label all of G(z) alike
    "latent": {"n_fit": 200, "n_holdout": 100, "n_pairs": 100, "batch_size": 128, "threshold": "calibrated"},
    "evaluation": {"n_boot": 20, "n_generative": 100},
    # methods that train their own generator keep to the minute too: a CycleGAN translator at its default
    # 10,000 steps of batch 1 took 18 min here under load, the RAE's 2,000 steps several minutes
    "translator": {"width": 8, "n_blocks": 2, "steps": 200, "checkpoint_every": 100, "sample_every": 100},
    "oversample": {"width": 4, "hidden": 32, "mixer_hidden": 32, "mixer_layers": 2, "batch_size": 16, "steps": 50,
                   "checkpoint_every": 50},
    "skews": [0.5, 0.7],
}
PRESETS: dict[str, dict[str, Any]] = {"default": {}, "test": TEST_PRESET}

# ToyFaces: two pairs (a faint target with the demo's small protected attribute; a smile with a large colour
# protected attribute at the milder skew), one seed, 600 faces and the CelebA test preset's tiny models. The
# smile is drawn bold: drawn faint, the tiny GAN drew it on one CPU (AMD) and not on another (Intel, whose
# floating point differs), and the run then stopped, rightly, for want of generated smiles
TOYFACES_TEST_PRESET: dict[str, Any] = {
    "n": 600, "seeds": [0],
    "pairs": [{"target": "Wearing_Hat", "protected": "Eyeglasses", "skew": 0.9, "faint": {"Wearing_Hat": 0.5},
               "note": "the demo's case"},
              {"target": "Smiling", "protected": "Pale_Skin", "skew": 0.7,
               "note": "large colour protected, milder skew"}],
    **{k: copy.deepcopy(v) for k, v in TEST_PRESET.items()
       if k in ("gan", "classifier", "latent", "evaluation", "translator", "oversample")},
}
TOYFACES_PRESETS: dict[str, dict[str, Any]] = {"default": {}, "test": TOYFACES_TEST_PRESET}


def preset(name: str, presets: dict[str, dict[str, Any]] = PRESETS) -> dict[str, Any]:
    """A fresh (deep) copy of preset ``name`` of ``presets`` (the CelebA ones by default), safe to modify."""
    if name not in presets:
        raise FairlatentError(f"--preset {name!r}: choose {' or '.join(repr(p) for p in presets)}")
    return copy.deepcopy(presets[name])


__all__ = ["PRESETS", "TEST_PRESET", "TOYFACES_PRESETS", "TOYFACES_TEST_PRESET", "preset"]
