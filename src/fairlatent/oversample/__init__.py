"""Minority oversampling with class-preserving regularized autoencoders (Mondal et al., AISTATS 2023).

- :mod:`.data`: long-tailed splits with balanced test sets (a small MNIST reader, fixed profiles);
- :mod:`.models`: encoder, class-conditional decoder, mixer, critic, linear probe;
- :mod:`.rae`: training on the project's engine (:func:`fit_rae`), the fitted model (:func:`load_rae`:
  ``predict``, ``sample``);
- :mod:`.baselines` and :mod:`.benchmark`: the competitors and the imbalance benchmark.
"""
