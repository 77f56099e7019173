"""fairlatent: find and remove spurious target/protected correlations through a generative model's latent space.

Areas (one sub-package each): ``data`` (the on-disk data set format, ToyFaces, real-data readers),
``models`` (GAN and classifier architectures), ``train`` (training loops), ``latent`` (hyperplanes and
latent edits), ``metrics`` (fairness and generative-model metrics), ``pipeline`` (the staged de-biasing run),
``report`` (HTML/terminal reports) and ``cli`` (the ``fairlatent`` command, a thin layer over the same functions).
"""

from fairlatent.errors import FairlatentError

__version__ = "0.1.0"
__all__ = ["FairlatentError", "__version__"]
