"""Tabular data: readers (Adult, COMPAS, German credit, any CSV), CTGAN, FairGAN, fair conditional sampling,
and the evaluation of synthetic tables (fidelity, machine-learning efficacy, fairness, privacy).

Layer: beside :mod:`fairlatent.pipeline`; it uses the training engine (:mod:`fairlatent.train.engine`) and the
fairness metrics (:mod:`fairlatent.metrics`). Modules:

- :mod:`~fairlatent.tabular.table`: :class:`TabularData` (train/test tables, column types, target, protected
  attributes) and the validation every reader goes through (missing values, constants, infinities, …);
- :mod:`~fairlatent.tabular.readers`: :func:`read_adult`, :func:`read_compas`, :func:`read_german`,
  :func:`read_csv_table`, :func:`load_table` (by file name);
- :mod:`~fairlatent.tabular.transformer`: mode-specific normalisation and one-hot encoding;
- :mod:`~fairlatent.tabular.sampler`: CTGAN's conditional vector and training-by-sampling;
- :mod:`~fairlatent.tabular.ctgan`, :mod:`~fairlatent.tabular.fairgan`: the models, trained by the engine;
- :mod:`~fairlatent.tabular.synthesizer`: a trained run loaded for sampling (``sample(n, conditions=...)``);
- :mod:`~fairlatent.tabular.fair_sampling`: a synthetic set with a requested (target, protected) joint;
- :mod:`~fairlatent.tabular.evaluate`, :mod:`~fairlatent.tabular.competitors`: the evaluation.
"""
